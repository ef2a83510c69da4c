"""Running as a service: the sample config stays generated from the code, the
systemd unit verifies, config errors name file:line, sd_notify states around
reload and stop, a bad reload keeps the old config, and make install."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import BUILD, ROOT, VGC, make_row, run_vgc


def test_sample_config_matches_the_config_table():
    r = run_vgc("config-sample")
    assert r.returncode == 0
    with open(os.path.join(ROOT, "deploy", "vgcollector.conf")) as f:
        assert f.read() == r.stdout, "deploy/vgcollector.conf is stale: regenerate with config-sample"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path):
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    shutil.copy(VGC, prefix / "bin" / "vgcollector")
    with open(os.path.join(ROOT, "deploy", "vgcollector.service")) as f:
        unit = f.read().replace("@PREFIX@", str(prefix))
    path = tmp_path / "vgcollector.service"
    path.write_text(unit)
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=",
                 "SystemCallFilter=@system-service", "UMask=0077"):
        assert line in unit


@pytest.mark.parametrize("text,expect", [
    ("pool_size = 2\nno_such_key = 1\n", ':2: unknown key "no_such_key"'),
    ("# ok\n\nmax_batch_rows = many\n", ':3: max_batch_rows = "many"'),
])
def test_bad_config_is_refused_with_file_and_line(db, tmp_path, text, expect):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    r = run_vgc("serve", "--config", str(conf), "--db", db.conninfo, "--listen", "127.0.0.1:1")
    assert r.returncode != 0
    assert str(conf) + expect in r.stderr, r.stderr


class NotifySocket:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vgc-notify-")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(15)

    def expect(self, state):
        deadline = time.time() + 15
        while time.time() < deadline:
            msg = self.sock.recv(4096).decode()
            if state in msg.split("\n"):
                return
        raise AssertionError(f"no {state} from the collector")

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_sd_notify_ready_reload_stop_and_bad_reload_keeps_config(db, collectors):
    note = NotifySocket()
    try:
        key = db.create_key("ingest")
        c = collectors(db, config_text="max_batch_rows = 5\n", env={"NOTIFY_SOCKET": note.path})
        note.expect("READY=1")
        assert c.post("/v1/ingest", json=[make_row(i) for i in range(6)], key=key).status_code == 413

        with open(c.config_path, "w") as f:
            f.write("max_batch_rows = 10\n")
        c.signal(signal.SIGHUP)
        note.expect("RELOADING=1")
        note.expect("READY=1")
        assert c.post("/v1/ingest", json=[make_row(i) for i in range(6)], key=key).status_code == 200

        with open(c.config_path, "w") as f:
            f.write("max_batch_rows = 10\nbogus_key = 1\n")
        c.signal(signal.SIGHUP)
        note.expect("RELOADING=1")
        note.expect("READY=1")
        assert c.post("/v1/ingest", json=[make_row(i) for i in range(11)], key=key).status_code == 413
        assert c.post("/v1/ingest", json=[make_row(i) for i in range(10)], key=key).status_code == 200
        assert "keeping the running configuration" in c.output()

        c.signal(signal.SIGTERM)
        note.expect("STOPPING=1")
        assert c.stop() == 0
    finally:
        note.close()


def test_sigterm_answers_in_flight_batches_or_503(db, collectors):
    import threading
    import httpx
    key = db.create_key("ingest")
    c = collectors(db)
    results = []

    def push(j):
        rows = [make_row(i, id=f"term-{j}-{i}") for i in range(500)]
        try:
            r = httpx.post(c.url + "/v1/ingest", json=rows, timeout=30,
                           headers={"Authorization": f"Bearer {key}"})
            results.append((j, r.status_code, r.json() if r.status_code == 200 else None))
        except httpx.HTTPError:
            results.append((j, None, None))  # refused after close: never acknowledged

    threads = [threading.Thread(target=push, args=(j,)) for j in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    c.signal(signal.SIGTERM)
    for t in threads:
        t.join()
    assert c.stop() == 0
    for j, status, body in results:
        assert status in (200, 503, None), status
        stored = db.scalar("SELECT count(*) FROM cost_rows WHERE id LIKE %s", f"term-{j}-%")
        if status == 200:
            assert body["accepted"] == 500 and stored == 500, (j, stored)


def test_make_install_places_the_documented_files(tmp_path):
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-s", "install", f"BUILD={os.path.relpath(BUILD, ROOT)}",
                        f"DESTDIR={dest}", "PREFIX=/usr"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    files = ["usr/bin/vgcollector", "lib/systemd/system/vgcollector.service",
             "etc/vgcollector/vgcollector.conf", "usr/share/vgcollector/schema/0001_init.sql"]
    if os.path.exists(os.path.join(ROOT, "sink", "vgsink.h")):  # libvgsink (issue 3)
        files += ["usr/include/vgsink.h", "usr/lib/pkgconfig/vgsink.pc", "usr/lib/libvgsink.a"]
    for rel in files:
        assert (dest / rel).exists(), rel
    unit = (dest / "lib/systemd/system/vgcollector.service").read_text()
    assert "ExecStart=/usr/bin/vgcollector serve" in unit
    conf = dest / "etc/vgcollector/vgcollector.conf"
    conf.write_text("# mine\n")
    r = subprocess.run(["make", "-s", "install", f"BUILD={os.path.relpath(BUILD, ROOT)}",
                        f"DESTDIR={dest}", "PREFIX=/usr"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert conf.read_text() == "# mine\n", "make install overwrote an existing config"
