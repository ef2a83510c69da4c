"""libvgsink end to end, through its tools (vgsink-sim,
vgsink-replay, vgsink-forktest) against the real collector and PostgreSQL."""

import json
import os
import signal
import subprocess
import tempfile
import time
from decimal import Decimal

from conftest import (BUILD, ROOT, SANITIZER_MARKS, free_port, make_certs, sanitizer_env,
                      run_vgc)
from conftest import wait_until


def tool(name, *args, env=None, timeout=300, background=False, prefix=()):
    e = sanitizer_env()
    e.pop("VOICEGW_COLLECTOR_URL", None)
    e.pop("VOICEGW_API_KEY", None)
    if env:
        e.update(env)
    cmd = list(prefix) + [os.path.join(BUILD, name)] + [str(a) for a in args]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=e)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)
    assert not any(m in r.stderr for m in SANITIZER_MARKS), r.stderr
    return r


def stats_of(r):
    assert r.stdout.strip(), r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def assert_stored_exactly(db, n, cost_recorded):
    """n distinct rows are stored, and their cost and the rollup's both equal
    what the sink recorded, to the last digit."""
    rows, distinct, cost, rollup = stored(db)
    assert rows == distinct == n, (rows, distinct, n)
    assert cost == rollup == Decimal(cost_recorded), (cost, rollup, cost_recorded)


def stored(db):
    n, distinct, cost = db.query(
        "SELECT count(*), count(DISTINCT id), coalesce(sum(cost_usd), 0) FROM cost_rows")[0]
    rollup = db.scalar("SELECT coalesce(sum(cost_usd), 0) FROM vgc_rollup_hourly_live")
    return n, distinct, Decimal(cost), Decimal(rollup)


def spool_files(d, sub=""):
    p = os.path.join(d, sub)
    return sorted(f for f in os.listdir(p) if f.endswith(".vgb"))


def test_8_threads_x_50000_rows_stored_exactly_and_sums_match(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    # Correctness, not speed: under ASan both sides are slow, so flush may take minutes.
    r = tool("vgsink-sim", "--url", c.url, "--key", key, "--threads", 8, "--rows", 50000,
             "--close-timeout-ms", 600000, timeout=900)
    st = stats_of(r)
    assert r.returncode == 0, r.stderr
    assert st["recorded"] == 400000 and st["sent"] == 400000
    assert st["dropped"] == 0 and st["rejected"] == 0 and st["queued"] == 0
    assert_stored_exactly(db, 400000, st["cost_usd_recorded"])


def test_a_few_rows_per_thread_are_delivered_by_flush(db, collectors):
    # 7 rows on each of 5 threads stay in the recording shards (a shard hands
    # rows on at 64): flush must still deliver every one of them.
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    r = tool("vgsink-sim", "--url", c.url, "--key", key, "--threads", 5, "--rows", 7,
             "--close-timeout-ms", 60000)
    st = stats_of(r)
    assert r.returncode == 0, r.stderr
    assert st["recorded"] == st["sent"] == 35 and st["queued"] == 0
    assert_stored_exactly(db, 35, st["cost_usd_recorded"])


def test_collector_sigkilled_twice_mid_stream_loses_and_duplicates_nothing(db, collectors):
    port = free_port()
    key = db.create_key("ingest")
    spool = tempfile.mkdtemp(prefix="vgsink-spool-")
    # Through the fixture, so the last collector is stopped after the test.
    c = collectors(db, "--rate-limit-rps", "0", port=port)
    sim = tool("vgsink-sim", "--url", c.url, "--key", key, "--threads", 4, "--rows", 4000,
               "--rate", 800, "--spool", spool, "--batch-rows", 200, background=True)
    for _ in range(2):
        time.sleep(1.5)
        c.kill()
        time.sleep(0.5)
        c = collectors(db, "--rate-limit-rps", "0", port=port)
    out, err = sim.communicate(timeout=300)
    assert not any(m in err for m in SANITIZER_MARKS), err
    st = json.loads(out.strip().splitlines()[-1])
    assert sim.returncode == 0, err
    assert st["recorded"] == 16000 and st["dropped"] == 0
    assert st["retries"] > 0  # the kills were noticed
    assert_stored_exactly(db, 16000, st["cost_usd_recorded"])
    # sent counts each row once, duplicates (resent after a kill) included.
    assert st["sent"] == 16000 and st["duplicates"] <= st["sent"]
    assert spool_files(spool) == []


def test_full_queue_spills_to_disk_while_a_slow_collector_holds_the_request(db, collectors):
    # The collector is stopped, not gone: the first request hangs in flight
    # while the workers keep recording far past queue_max_rows. With a spool
    # those rows must go to disk, never be dropped.
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    spool = tempfile.mkdtemp(prefix="vgsink-spool-")
    c.proc.send_signal(signal.SIGSTOP)
    try:
        sim = tool("vgsink-sim", "--url", c.url, "--key", key, "--threads", 2, "--rows", 6000,
                   "--rate", 2000, "--batch-rows", 100, "--queue-max-rows", 1000,
                   "--spool", spool, "--close-timeout-ms", 240000, background=True)
        time.sleep(2.5)
        assert spool_files(spool), "rows past the bound must be on disk by now"
    finally:
        c.proc.send_signal(signal.SIGCONT)
    out, err = sim.communicate(timeout=300)
    assert not any(m in err for m in SANITIZER_MARKS), err
    st = json.loads(out.strip().splitlines()[-1])
    assert sim.returncode == 0, err
    assert st["recorded"] == 12000 and st["dropped"] == 0 and st["spooled"] > 0
    assert_stored_exactly(db, 12000, st["cost_usd_recorded"])
    assert spool_files(spool) == []


def test_collector_down_at_start_new_process_delivers_the_spool(db, collectors):
    port = free_port()  # nothing listens here yet
    key = db.create_key("ingest")
    spool = tempfile.mkdtemp(prefix="vgsink-spool-")
    url = f"http://127.0.0.1:{port}"
    r = tool("vgsink-sim", "--url", url, "--key", key, "--threads", 2, "--rows", 1500,
             "--spool", spool, "--close-timeout-ms", 1000)
    st = stats_of(r)
    assert r.returncode == 1  # not delivered: the collector is down
    assert st["recorded"] == 3000 and st["dropped"] == 0 and st["sent"] == 0
    assert spool_files(spool), "the unsent rows must be on disk"
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0

    collectors(db, "--rate-limit-rps", "0", port=port)
    r = tool("vgsink-replay", spool, "--url", url, "--key", key)
    rep = stats_of(r)
    assert r.returncode == 0, r.stderr
    assert rep["complete"] is True and rep["sent"] == 3000
    assert_stored_exactly(db, 3000, st["cost_usd_recorded"])
    assert spool_files(spool) == []


def test_revoked_key_goes_to_rejected_without_looping(db, collectors):
    c = collectors(db)
    key = db.create_key("ingest")
    assert run_vgc("keys", "revoke", key, "--db", db.conninfo).returncode == 0
    wait_until(lambda: c.get("/v1/whoami", key=key).status_code == 401, 5,
               "the revoked key refused")
    spool = tempfile.mkdtemp(prefix="vgsink-spool-")
    start = time.time()
    r = tool("vgsink-sim", "--url", c.url, "--key", key, "--threads", 1, "--rows", 1200,
             "--batch-rows", 500, "--spool", spool, "--close-timeout-ms", 20000)
    st = stats_of(r)
    assert r.returncode == 0, r.stderr  # every batch was answered (with 401)
    assert time.time() - start < 15
    assert st["rejected"] == 1200 and st["sent"] == 0 and st["retries"] == 0
    assert len(spool_files(spool, "rejected")) == 3 and spool_files(spool) == []
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0

    # An operator replays them with a good key.
    good = db.create_key("ingest")
    r = tool("vgsink-replay", spool, "--url", c.url, "--key", good, "--rejected")
    rep = stats_of(r)
    assert r.returncode == 0 and rep["unrejected_batches"] == 3 and rep["sent"] == 1200
    assert db.scalar("SELECT count(*) FROM cost_rows") == 1200


def test_413_splits_the_batch_and_429_is_retried(db, collectors):
    c = collectors(db, "--max-batch-rows", "100", "--rate-limit-rps", "5",
                   "--rate-limit-burst", "2")
    key = db.create_key("ingest")
    r = tool("vgsink-sim", "--url", c.url, "--key", key, "--threads", 1, "--rows", 800,
             "--batch-rows", 400)
    st = stats_of(r)
    assert r.returncode == 0, r.stderr
    assert st["sent"] == 800 and st["rejected"] == 0 and st["retries"] > 0
    assert db.scalar("SELECT count(*) FROM cost_rows") == 800


def with_hosts(hosts_file):
    """A command prefix: run in a private mount namespace whose /etc/hosts is
    hosts_file. Needs root, as the whole suite does."""
    return ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
            str(hosts_file)]


def test_a_name_whose_first_address_refuses_is_reached_at_the_next(db, collectors, tmp_path):
    # libevent alone connects to a name's first address only. This name gives
    # ::1 first, where nothing listens, then 127.0.0.1, where the collector does.
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    hosts = tmp_path / "hosts"
    hosts.write_text("::1 vgc-dual\n127.0.0.1 vgc-dual\n")
    order = subprocess.run(with_hosts(hosts) + ["getent", "ahosts", "vgc-dual"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert order[0] == "::1" and "127.0.0.1" in order, order
    r = tool("vgsink-sim", "--url", f"http://vgc-dual:{c.port}", "--key", key,
             "--threads", 1, "--rows", 200, "--close-timeout-ms", 20000, prefix=with_hosts(hosts))
    assert r.returncode == 0, r.stderr
    st = stats_of(r)
    assert st["sent"] == 200 and st["retries"] == 0, st
    assert db.scalar("SELECT count(*) FROM cost_rows") == 200


def test_https_delivers_with_test_ca_and_refuses_wrong_hostname(db, collectors):
    certs = make_certs(tempfile.mkdtemp(prefix="vgsink-tls-"))
    key = db.create_key("ingest")
    good = collectors(db, "--tls-cert", certs["good.pem"], "--tls-key", certs["good.key"],
                      scheme="https")
    for host in ("localhost", "127.0.0.1"):
        r = tool("vgsink-sim", "--url", f"https://{host}:{good.port}", "--key", key,
                 "--threads", 1, "--rows", 300, "--ca-file", certs["ca.pem"])
        assert r.returncode == 0, r.stderr
        assert stats_of(r)["sent"] == 300
    # Without the test CA the chain is not trusted: nothing goes out.
    r = tool("vgsink-sim", "--url", f"https://localhost:{good.port}", "--key", key,
             "--threads", 1, "--rows", 10, "--close-timeout-ms", 1500)
    assert r.returncode == 1 and stats_of(r)["sent"] == 0

    wrong = collectors(db, "--tls-cert", certs["wrong.pem"], "--tls-key", certs["wrong.key"],
                       scheme="https")
    spool = tempfile.mkdtemp(prefix="vgsink-spool-")
    r = tool("vgsink-sim", "--url", f"https://localhost:{wrong.port}", "--key", key,
             "--threads", 1, "--rows", 200, "--ca-file", certs["ca.pem"], "--spool", spool,
             "--close-timeout-ms", 1500)
    st = stats_of(r)
    assert r.returncode == 1 and st["sent"] == 0 and st["retries"] > 0
    assert spool_files(spool), "rows refused by TLS stay spooled"
    assert db.scalar("SELECT count(*) FROM cost_rows") == 600


def test_fork_parent_and_child_both_record_without_deadlock(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    r = tool("vgsink-forktest", 2000, timeout=120,
             env={"VOICEGW_COLLECTOR_URL": c.url, "VOICEGW_API_KEY": key})
    assert r.returncode == 0, r.stdout + r.stderr
    out = stats_of(r)
    assert out["child_exit"] == 0
    n, distinct, _, _ = stored(db)
    assert n == distinct == out["rows_expected"] == 6000


def test_sim_help_and_bad_config_errors():
    r = tool("vgsink-sim", "--help")
    assert r.returncode == 0 and "--threads" in r.stdout
    r = tool("vgsink-sim", "--url", "ftp://x", "--key", "k", "--rows", 1)
    assert r.returncode == 2 and "ftp://x" in r.stderr
    r = tool("vgsink-sim", "--url", "http://127.0.0.1:9", "--rows", 1)
    assert r.returncode == 2 and "api_key" in r.stderr
    spool = tempfile.mkdtemp(prefix="vgsink-spool-")
    holder = tool("vgsink-sim", "--url", "http://127.0.0.1:9", "--key", "k", "--rows", 1,
                  "--spool", spool, "--close-timeout-ms", 3000, background=True)
    time.sleep(0.5)
    r = tool("vgsink-replay", spool, "--url", "http://127.0.0.1:9", "--key", "k")
    holder.communicate(timeout=30)
    assert r.returncode == 2 and "in use by another process" in r.stderr


# ---- the shared library as a worker links it ------------------------------------

PUBLIC_API = {"vgsink_config_init", "vgsink_config_init_sized", "vgsink_open", "vgsink_open_sized",
              "vgsink_record", "vgsink_record_sized", "vgsink_wait_room", "vgsink_flush",
              "vgsink_close", "vgsink_stats_get", "vgsink_stats_get_sized", "vgsink_errstr",
              "vgsink_set_presence"}


def test_shared_library_exports_only_the_vgsink_api():
    r = subprocess.run(["nm", "-D", "--defined-only", os.path.join(BUILD, "libvgsink.so")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = {line.split()[-1] for line in r.stdout.splitlines() if line.strip()}
    assert names == PUBLIC_API, f"exported besides the API: {sorted(names - PUBLIC_API)}; " \
        f"missing: {sorted(PUBLIC_API - names)}"


ABI_DIR = os.path.join(ROOT, "tests", "abi")


def build_abi_probe(tmp_path, header, *defines):
    """tests/abi/probe.c compiled against header and linked to this build's
    libvgsink.so.0, as a worker built elsewhere would be."""
    needed = subprocess.run(["readelf", "-d", os.path.join(BUILD, "libvgsink.so.0")],
                            capture_output=True, text=True).stdout
    san = ["-fsanitize=address,undefined"] if "libasan" in needed else []
    exe = tmp_path / "probe"
    r = subprocess.run(["cc", *san, "-std=c11", "-D_GNU_SOURCE", *defines, "-include", str(header),
                        "-o", str(exe), os.path.join(ABI_DIR, "probe.c"),
                        os.path.join(BUILD, "libvgsink.so.0"), "-Wl,-rpath," + BUILD],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "libvgsink.so.0" in subprocess.run(["readelf", "-d", str(exe)], capture_output=True,
                                              text=True).stdout
    return exe


def run_abi_probe(exe, *args):
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                       env=sanitizer_env(), timeout=120)
    assert not any(m in r.stderr for m in SANITIZER_MARKS), r.stderr
    assert r.stdout.strip(), r.stderr
    return r.returncode, json.loads(r.stdout.splitlines()[-1])


def test_program_built_against_the_first_header_runs_on_this_library(tmp_path, db, collector):
    """A worker built against vgsink.h as first released (tests/abi/vgsink_0.1.0.h,
    whose structs carry no size) links to today's libvgsink.so.0 and delivers
    its rows; its config, rows and stats sit at the end of a page with nothing
    mapped after, so the library touches nothing past the old structs."""
    key = db.create_key("ingest")
    exe = build_abi_probe(tmp_path, os.path.join(ABI_DIR, "vgsink_0.1.0.h"))
    rc, out = run_abi_probe(exe, collector.url, key, 50)
    assert rc == 0 and out["recorded"] == out["sent"] == 50, out
    assert db.scalar("SELECT count(*) FROM cost_rows WHERE session_id = 'abi-probe'") == 50


def test_config_from_a_newer_header_works_when_its_new_field_is_unset_and_is_refused_when_set(
        tmp_path, db, collector):
    """A worker built against a newer vgsink.h (its vgsink_config one field
    longer) and run on this library: with the new field left at its default
    the library reads the fields it knows and delivers; with it set, vgsink_open
    refuses, naming the struct, instead of silently ignoring what the worker
    asked for. Before the structs' sizes were passed, the library read its own
    sizeof of whatever the caller handed over."""
    key = db.create_key("ingest")
    with open(os.path.join(ROOT, "sink", "vgsink.h")) as f:
        newer = f.read().replace("} vgsink_config;", "\tint probe_newer_field;\n} vgsink_config;")
    header = tmp_path / "vgsink_newer.h"
    header.write_text(newer)
    exe = build_abi_probe(tmp_path, header, "-DPROBE_NEWER")
    rc, out = run_abi_probe(exe, collector.url, key, 20, 0)
    assert rc == 0 and out["sent"] == 20, out
    rc, out = run_abi_probe(exe, collector.url, key, 20, 7)
    assert rc == 1 and "vgsink_config of" in out["open_error"] and \
        "does not know" in out["open_error"], out
    assert db.scalar("SELECT count(*) FROM cost_rows WHERE session_id = 'abi-probe'") == 20


def test_make_install_puts_vgsink_replay_in_prefix_bin_and_it_delivers_a_spool(
        tmp_path, db, collectors):
    """vgsink-replay, the operator's tool for a spool left behind, lived in
    tests/tools and `make install` did not install it. Installed, it sends a
    spool a worker left while the collector was down."""
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-s", "install", f"BUILD={os.path.relpath(BUILD, ROOT)}",
                        "PREFIX=/opt/vgc", f"DESTDIR={dest}"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    replay = dest / "opt" / "vgc" / "bin" / "vgsink-replay"
    assert os.access(replay, os.X_OK)
    assert "libvgsink.so" not in subprocess.run(["readelf", "-d", str(replay)],
                                                capture_output=True, text=True).stdout

    port = free_port()  # nothing listens here yet
    key = db.create_key("ingest")
    spool = tmp_path / "spool"
    url = f"http://127.0.0.1:{port}"
    st = stats_of(tool("vgsink-sim", "--url", url, "--key", key, "--threads", 1, "--rows", 300,
                       "--spool", spool, "--close-timeout-ms", 500))
    assert st["recorded"] == 300 and st["sent"] == 0 and spool_files(str(spool))
    collectors(db, "--rate-limit-rps", "0", port=port)
    r = tool(str(replay), spool, "--url", url, "--key", key)
    assert r.returncode == 0, r.stderr
    assert stats_of(r)["sent"] == 300 and spool_files(str(spool)) == []
    assert db.scalar("SELECT count(*) FROM cost_rows") == 300


def test_build_tree_is_laid_out_as_installed():
    so = os.path.join(BUILD, "libvgsink.so")
    assert os.path.islink(so) and os.readlink(so) == "libvgsink.so.0"
    real = os.path.join(BUILD, "libvgsink.so.0")
    assert os.path.isfile(real) and not os.path.islink(real)
    r = subprocess.run(["readelf", "-d", real], capture_output=True, text=True)
    assert "Library soname: [libvgsink.so.0]" in r.stdout, r.stdout


# A worker with functions of its own named as the library's internals: they
# must never be called in place of the library's (nor the library's in place
# of the worker's).
WORKER_C = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <vgsink.h>

void log_emit(int level, const char *msg);
void row_init(void *row);
int buf_init(void *b, size_t cap);

void log_emit(int level, const char *msg) { printf("worker's log_emit %d %s\n", level, msg); }
void row_init(void *row) { (void)row; printf("worker's row_init\n"); }
int buf_init(void *b, size_t cap) { (void)b, (void)cap; printf("worker's buf_init\n"); return 0; }

int main(void)
{
	vgsink_config cfg;
	vgsink_row row;
	vgsink_stats st;
	char err[256] = "";
	vgsink *s;

	vgsink_config_init(&cfg);
	cfg.flush_interval_ms = 3600000;
	s = vgsink_open(&cfg, err, sizeof(err));
	if (!s) {
		printf("vgsink_open failed: %s\n", err);
		return 1;
	}
	memset(&row, 0, sizeof(row));
	row.modality = "llm";
	row.cost_usd = 0.25;
	row.turn_index = -1;
	row.ttfb_ms = row.total_latency_ms = NAN;
	if (vgsink_record(s, &row) != 0)
		printf("vgsink_record failed: %s\n", vgsink_errstr(s));
	vgsink_stats_get(s, &st);
	printf("opened; recorded %llu queued %llu\n", (unsigned long long)st.recorded,
	       (unsigned long long)st.queued);
	vgsink_close(s, 0);
	return 0;
}
"""


def test_program_linked_against_the_build_tree_runs(tmp_path):
    src = tmp_path / "worker.c"
    src.write_text(WORKER_C)
    exe = tmp_path / "worker"
    # A sanitizer build's library needs its program built with the same runtime.
    needed = subprocess.run(["readelf", "-d", os.path.join(BUILD, "libvgsink.so.0")],
                            capture_output=True, text=True).stdout
    san = ["-fsanitize=address,undefined"] if "libasan" in needed else []
    r = subprocess.run(["cc", *san, "-o", str(exe), str(src), "-I" + os.path.join(ROOT, "sink"),
                        "-L" + BUILD, "-lvgsink"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    env = sanitizer_env()
    env.update(LD_LIBRARY_PATH=BUILD, VOICEGW_COLLECTOR_URL="http://127.0.0.1:9",
               VOICEGW_API_KEY="k")
    r = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=60)
    assert not any(m in r.stderr for m in SANITIZER_MARKS), r.stderr
    assert r.returncode == 0 and r.stdout == "opened; recorded 1 queued 1\n", \
        r.stdout + r.stderr
