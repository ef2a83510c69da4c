"""Operations over the real binary: systemd notifications, signals
(reload, drain), config errors, the unit file, keys across replicas, idle
connections and the connection cap (plain and TLS), /metrics, logs,
retention and `make install`."""

import gzip
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import httpx
import pytest

from conftest import BUILD, ROOT, VGC, free_port, make_row, metrics_map, run_vgc, wait_until


def gz(obj):
    return gzip.compress(json.dumps(obj).encode())


def ingest(c, key, rows, client=None, timeout=30):
    h = {"Authorization": f"Bearer {key}", "Content-Encoding": "gzip"}
    if client is not None:
        return client.post(c.url + "/v1/ingest", content=gz(rows), headers=h)
    return httpx.post(c.url + "/v1/ingest", content=gz(rows), headers=h, timeout=timeout,
                      verify=False)


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vgc-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def expect(self, state, timeout=20):
        """Reads datagrams until one equals state; returns those read before it."""
        seen = []

        def got():
            self.sock.settimeout(0.1)
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                return False
            seen.append(msg)
            return msg == state

        try:
            wait_until(got, timeout, f"{state} on NOTIFY_SOCKET", interval=0)
        except AssertionError as e:
            raise AssertionError(f"{e}; saw {seen}") from None
        return seen[:-1]

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


# ---- systemd notifications and signals ----------------------------------------


def test_notify_ready_reload_stopping_and_watchdog(db, collectors, notify):
    c = collectors(db, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
    notify.expect("READY=1")
    notify.expect("WATCHDOG=1")
    c.signal(signal.SIGHUP)
    before = notify.expect("RELOADING=1")
    assert "READY=1" not in before
    notify.expect("READY=1")
    c.signal(signal.SIGTERM)
    notify.expect("STOPPING=1")
    assert c.proc.wait(timeout=30) == 0
    assert c.stop() == 0


def test_notify_socket_in_abstract_namespace(db, collectors):
    name = f"vgc-test-{os.getpid()}-{time.time_ns()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(20)
    try:
        collectors(db, env={"NOTIFY_SOCKET": "@" + name})
        assert s.recv(4096) == b"READY=1"
    finally:
        s.close()


def test_sigterm_acked_batches_are_stored_others_get_503(db, collectors):
    c = collectors(db, "--shutdown-grace-s", "20")
    key = db.create_key("ingest")
    results = []  # (status or exception name, ids, when it was answered)
    lock = threading.Lock()
    started = threading.Event()
    stop = threading.Event()

    def worker(n):
        with httpx.Client(timeout=30) as client:
            j = 0
            while not stop.is_set():
                rows = [make_row(i, id=f"term-{n}-{j}-{i}") for i in range(300)]
                ids = [r["id"] for r in rows]
                try:
                    r = ingest(c, key, rows, client=client)
                    outcome = r.status_code
                except httpx.HTTPError as e:
                    outcome = type(e).__name__
                with lock:
                    results.append((outcome, ids, time.monotonic()))
                started.set()
                if not isinstance(outcome, int):
                    return  # the listener is gone: nothing more to send
                j += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    assert started.wait(30)
    time.sleep(0.3)
    signalled = time.monotonic()
    c.signal(signal.SIGTERM)
    assert c.proc.wait(timeout=30) == 0
    stop.set()
    for t in threads:
        t.join()
    assert c.stop() == 0

    stored = {r[0] for r in db.query("SELECT id FROM cost_row_ids")}
    acked = [ids for outcome, ids, _ in results if outcome == 200]
    assert acked, results[:3]
    for outcome, ids, _ in results:
        if outcome == 200:
            missing = [i for i in ids if i not in stored]
            assert not missing, f"acked with 200 but not stored: {missing[:3]}"
        else:
            assert outcome == 503 or isinstance(outcome, str), outcome
    # The process drained rather than stopping: requests were still answered
    # (200 in flight, 503 new) after the signal, and it left because nothing
    # was in flight, not because shutdown_grace_s ran out.
    answered = [o for o, _, when in results if when > signalled and isinstance(o, int)]
    assert answered, "nothing was answered after SIGTERM: the collector did not drain"
    out = c.output()
    assert "drained: every in-flight batch was answered" in out, out[-2000:]
    assert "exiting without answering" not in out, out[-2000:]


def test_sigterm_answers_every_batch_already_in_flight(db, collectors):
    # Every batch is held in PostgreSQL when SIGTERM arrives, so all are in
    # flight: the drain must answer each 200 and store it, none 503 or dropped.
    n = 16
    c = collectors(db, "--pool-size", str(n), "--rate-limit-rps", "0",
                   "--shutdown-grace-s", "30")
    key = db.create_key("ingest")
    blocker = db.cluster.connect(db.name)
    blocker.autocommit = False
    blocker.cursor().execute("LOCK TABLE cost_row_ids IN ACCESS EXCLUSIVE MODE")
    results = {}

    def push(j):
        rows = [make_row(i, id=f"term-{j}-{i}") for i in range(200)]
        try:
            r = ingest(c, key, rows)
            results[j] = (r.status_code, r.json() if r.status_code == 200 else r.text)
        except httpx.HTTPError as e:
            results[j] = (type(e).__name__, None)

    threads = [threading.Thread(target=push, args=(j,)) for j in range(n)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: db.scalar("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                                     "relation = 'cost_row_ids'::regclass") == n,
                   30, f"{n} batches waiting on cost_row_ids")
        c.signal(signal.SIGTERM)
        wait_until(lambda: not accepts(c.port), 10, "the listener closed by SIGTERM")
    finally:
        blocker.rollback()
        blocker.close()
    for t in threads:
        t.join()
    assert c.proc.wait(timeout=30) == 0
    assert sorted(results) == list(range(n))
    for j, (status, body) in results.items():
        assert status == 200, (j, status, body)
        stored = db.scalar("SELECT count(*) FROM cost_rows WHERE id LIKE %s", f"term-{j}-%")
        assert body["accepted"] == 200 and stored == 200, (j, body, stored)


def test_second_sigterm_exits_at_once(db, collectors):
    c = collectors(db, "--shutdown-grace-s", "60")
    # An idle keep-alive connection does not hold the drain up; a second
    # signal must end the process even if something were still in flight.
    c.signal(signal.SIGTERM)
    c.signal(signal.SIGTERM)
    assert c.proc.wait(timeout=10) == 0


def test_drain_closes_every_listener_even_past_sixteen(db, collectors):
    # A request held in PostgreSQL keeps the collector draining; meanwhile
    # none of its 17 listeners may take a new connection.
    ports = [free_port() for _ in range(17)]
    listen = ",".join(f"127.0.0.1:{p}" for p in ports)
    c = collectors(db, "--listen", listen, "--shutdown-grace-s", "30", port=ports[0])
    key = db.create_key("ingest")
    for p in ports:
        socket.create_connection(("127.0.0.1", p), timeout=5).close()
    blocker = db.cluster.connect(db.name)
    blocker.autocommit = False
    blocker.cursor().execute("LOCK TABLE cost_row_ids IN ACCESS EXCLUSIVE MODE")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=ingest(c, key, [make_row(1)])))
    t.start()
    try:
        wait_until(lambda: db.scalar("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                                     "relation = 'cost_row_ids'::regclass") == 1,
                   10, "the batch waiting on cost_row_ids")
        c.signal(signal.SIGTERM)
        wait_until(lambda: not [p for p in ports if accepts(p)], 10,
                   "every listener closed while draining")
        assert c.proc.poll() is None  # the held request keeps it draining
    finally:
        blocker.rollback()
        blocker.close()
    t.join(30)
    assert result["r"].status_code == 200, result["r"].text
    assert c.proc.wait(timeout=30) == 0


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


# ---- configuration ------------------------------------------------------------


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("text,line,reason", [
    ("# comment\npool_size = 2\nno_such_key = 1\n", 3, 'unknown key "no_such_key"'),
    ("\n\n\n\nmax_batch_rows = lots\n", 5, "expected a whole number"),
    ("max_body_bytes = 12Q\n", 1, "expected a size"),
    ("rate_limit_rps = -1\n", 1, "expected a number"),
    ("listen\n", 1, 'expected "key = value"'),
])
def test_bad_config_refused_with_file_and_line(db, text, line, reason):
    d = tempfile.mkdtemp(prefix="vgc-conf-")
    path = write(os.path.join(d, "vgcollector.conf"), text)
    r = run_vgc("serve", "--config", path, "--db", db.conninfo, timeout=30)
    assert r.returncode != 0
    # The message starts by naming where: "vgcollector serve: <file>:<line>: ...".
    assert re.search(rf"^vgcollector serve: {re.escape(path)}:{line}: .*{re.escape(reason)}",
                     r.stderr, re.M), r.stderr


def test_env_overrides_file_and_flag_overrides_env(db):
    d = tempfile.mkdtemp(prefix="vgc-conf-")
    path = write(os.path.join(d, "vgcollector.conf"), "retention_months = bad\n")
    # The file's bad value is reported even though the environment sets the key too:
    # sources are applied in order, and each is checked.
    r = run_vgc("retention", "--dry-run", "--config", path, "--db", db.conninfo,
                env={"VGC_RETENTION_MONTHS": "2"})
    assert r.returncode != 0 and f"{path}:1" in r.stderr
    write(path, "retention_months = 1\npartitions_ahead = 1\nmax_row_age_days = 28\n")
    r = run_vgc("retention", "--dry-run", "--config", path, "--db", db.conninfo,
                env={"VGC_RETENTION_MONTHS": "bogus"})
    assert r.returncode != 0 and "environment VGC_RETENTION_MONTHS: " in r.stderr, r.stderr
    r = run_vgc("retention", "--dry-run", "--config", path, "--db", db.conninfo,
                "--partitions-ahead", "7", env={"VGC_PARTITIONS_AHEAD": "4"})
    assert r.returncode == 0, r.stderr
    # migrate creates no partition: this month plus 7 ahead (the flag) would be
    # created; the environment's 4 would give 5 and the file's 1 would give 2.
    assert r.stdout.count("would create") == 8, r.stdout


def test_sample_config_is_generated_from_the_table(db):
    r = run_vgc("config-sample")
    assert r.returncode == 0
    with open(os.path.join(ROOT, "deploy", "vgcollector.conf")) as f:
        assert f.read() == r.stdout, \
            "deploy/vgcollector.conf is stale: build/vgcollector config-sample > deploy/vgcollector.conf"
    keys = re.findall(r"^#(\w+) = ", r.stdout, re.M)
    assert {"listen", "db", "db_file", "pool_size", "max_body_bytes", "rate_limit_rps",
            "tls_cert_file", "log_format", "retention_months", "partitions_ahead",
            "max_connections", "idle_timeout_s", "shutdown_grace_s"} <= set(keys)
    # Every line of the sample, uncommented, is a valid config with the defaults.
    d = tempfile.mkdtemp(prefix="vgc-conf-")
    path = write(os.path.join(d, "all.conf"),
                 re.sub(r"^#(\w+ = )", r"\1", r.stdout, flags=re.M))
    r = run_vgc("retention", "--dry-run", "--config", path, "--db", db.conninfo)
    assert r.returncode == 0, r.stderr


def test_sighup_applies_reloadable_limit_and_bad_file_keeps_old(db, collectors, notify):
    key = db.create_key("ingest")
    c = collectors(db, config_text="max_batch_rows = 10\n",
                   env={"NOTIFY_SOCKET": notify.path})
    notify.expect("READY=1")
    rows = lambda n, p: [make_row(i, id=f"{p}-{i}") for i in range(n)]
    assert ingest(c, key, rows(20, "a")).status_code == 413

    write(c.config_path, "max_batch_rows = 30\n")
    c.signal(signal.SIGHUP)
    notify.expect("RELOADING=1")
    notify.expect("READY=1")
    assert ingest(c, key, rows(20, "b")).status_code == 200

    write(c.config_path, "max_batch_rows = 5\nthis_is_not_a_key = 1\n")
    c.signal(signal.SIGHUP)
    notify.expect("RELOADING=1")
    notify.expect("READY=1")
    assert ingest(c, key, rows(20, "c")).status_code == 200
    assert ingest(c, key, rows(40, "d")).status_code == 413
    out = c.output()
    assert "reload failed" in out and f"{c.config_path}:2" in out, out[-2000:]

    write(c.config_path, "max_batch_rows = nope\n")
    c.signal(signal.SIGHUP)
    notify.expect("READY=1")
    assert ingest(c, key, rows(20, "e")).status_code == 200
    assert c.proc.poll() is None


# ---- the unit file ------------------------------------------------------------


def test_systemd_unit_verifies_and_has_the_hardening():
    with open(os.path.join(ROOT, "deploy", "vgcollector.service")) as f:
        unit = f.read()
    for line in ["Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "CapabilityBoundingSet=",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "SystemCallFilter=@system-service", "UMask=0077",
                 "ExecStart=@PREFIX@/bin/vgcollector serve --config /etc/vgcollector/vgcollector.conf"]:
        assert re.search("^" + re.escape(line) + "$", unit, re.M), line
    assert re.search(r"^LimitNOFILE=\d+$", unit, re.M)
    assert re.search(r"^(DynamicUser=yes|User=\w+)$", unit, re.M)
    # As `make install` writes it: @PREFIX@ replaced, the binary in place.
    prefix = tempfile.mkdtemp(prefix="vgc-prefix-")
    os.makedirs(os.path.join(prefix, "bin"))
    shutil.copy(VGC, os.path.join(prefix, "bin", "vgcollector"))
    path = os.path.join(prefix, "vgcollector.service")
    write(path, unit.replace("@PREFIX@", prefix))
    r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vgcollector.service" not in r.stderr, r.stderr  # no warnings about our unit


# ---- keys across replicas -----------------------------------------------------


def test_key_revoked_through_one_collector_refused_by_other_within_1s(db, collectors):
    a, b = collectors(db), collectors(db)
    key = db.create_key("ingest")
    assert a.get("/v1/whoami", key=key).status_code == 200
    assert b.get("/v1/whoami", key=key).status_code == 200
    r = run_vgc("keys", "revoke", key[:12], "--db", a.db.conninfo)
    assert r.returncode == 0, r.stderr
    with httpx.Client(timeout=5) as client:
        wait_until(lambda: client.get(b.url + "/v1/whoami", headers={
            "Authorization": f"Bearer {key}"}).status_code == 401,
                   1.0, "the other collector refusing the revoked key", interval=0.01)
    assert a.get("/v1/whoami", key=key).status_code == 401


def test_key_created_is_known_to_both_within_1s(db, collectors):
    a, b = collectors(db), collectors(db)
    r = run_vgc("keys", "create", "--role", "ingest", "--db", db.conninfo)
    assert r.returncode == 0
    key = r.stdout.splitlines()[0]
    made = time.monotonic()
    for c in (a, b):
        wait_until(lambda: c.get("/v1/whoami", key=key, timeout=5).status_code == 200,
                   max(0.0, made + 1.0 - time.monotonic()), f"{c.url} knowing the new key",
                   interval=0.01)


def test_rows_sent_to_both_collectors_concurrently_stored_once(db, collectors):
    a, b = collectors(db), collectors(db)
    key = db.create_key("ingest")
    # Batches overlap: every row goes out three times across the two collectors.
    all_rows = [make_row(i, id=f"both-{i}") for i in range(1500)]
    plan = {a: [all_rows[i:i + 150] for i in range(0, 1500, 150)],
            b: [all_rows[i:i + 100] for i in range(0, 1500, 100)] +
               [all_rows[i:i + 250] for i in range(0, 1500, 250)]}
    totals = []
    lock = threading.Lock()

    def push(c, batches):
        with httpx.Client(timeout=60) as client:
            for batch in batches:
                r = ingest(c, key, batch, client=client)
                assert r.status_code == 200, r.text
                with lock:
                    totals.append(r.json())

    threads = [threading.Thread(target=push, args=(c, plan[c][k::2]))
               for c in (a, b) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(totals) == sum(len(v) for v in plan.values())
    assert sum(t["accepted"] for t in totals) == 1500
    assert sum(t["duplicates"] for t in totals) == 3000
    assert db.scalar("SELECT count(*) FROM cost_rows") == 1500
    assert db.scalar("SELECT count(DISTINCT id) FROM cost_rows") == 1500


# ---- slow and idle clients ------------------------------------------------------


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {n}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def open_idle(c, n, partial=True):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        if partial and i % 2:
            s.sendall(b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\n")  # and never finish
        socks.append(s)
    return socks


def test_1000_idle_connections_do_not_stop_ingest(db, collectors):
    raise_nofile(4096)  # the collector inherits it
    c = collectors(db)
    key = db.create_key("ingest")
    socks = open_idle(c, 1000)
    try:
        with httpx.Client(timeout=10) as client:
            for j in range(20):
                rows = [make_row(i, id=f"idle-{j}-{i}") for i in range(50)]
                r = ingest(c, key, rows, client=client)
                assert r.status_code == 200, r.text
        m = metrics_map(c.get("/metrics").text)
        assert m["vgcollector_open_connections"] >= 1000
    finally:
        for s in socks:
            s.close()
    assert db.scalar("SELECT count(*) FROM cost_rows") == 1000


def wait_closed(s, timeout=5):
    """True when the peer closes s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def settle_connections(c):
    """Waits until only the asking connection is open: httpx's own connection
    from wait_ready may still be closing."""
    wait_until(lambda: metrics_map(c.get("/metrics").text)["vgcollector_open_connections"] <= 1,
               5, "earlier connections closed")


def test_connection_cap_refuses_at_once_and_recovers(db, collectors):
    c = collectors(db, "--max-connections", "20")
    key = db.create_key("ingest")
    settle_connections(c)
    socks = open_idle(c, 20, partial=False)
    try:
        extra = socket.create_connection(("127.0.0.1", c.port), timeout=5)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_closed(extra), "connection past max_connections was not closed"
        extra.close()
    finally:
        for s in socks:
            s.close()
    wait_ingest_ok(c, key, make_row(0))
    m = metrics_map(c.get("/metrics").text)
    assert m["vgcollector_connections_refused_total"] >= 1


def wait_ingest_ok(c, key, row, seconds=10):
    """Retries one row until the collector answers 200 (after a cap recovers)."""
    def ok():
        try:
            return ingest(c, key, [row], timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ok, seconds, "the collector storing a row again")


def test_idle_timeout_closes_silent_connection(db, collectors):
    c = collectors(db, "--idle-timeout-s", "1")
    s = socket.create_connection(("127.0.0.1", c.port))
    s.sendall(b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\n")
    assert wait_closed(s, timeout=10)
    s.close()


@pytest.fixture(scope="module")
def tls_cert():
    d = tempfile.mkdtemp(prefix="vgc-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def test_connection_cap_with_tls(db, collectors, tls_cert):
    cert, keyf = tls_cert
    c = collectors(db, "--max-connections", "5", "--tls-cert", cert, "--tls-key", keyf,
                   scheme="https")
    key = db.create_key("ingest")
    r = ingest(c, key, [make_row(0, id="tls-0")])
    assert r.status_code == 200, r.text
    ctx = ssl.create_default_context(cafile=cert)
    settle_connections(c)
    socks = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", c.port), timeout=10),
                             server_hostname="127.0.0.1") for _ in range(5)]
    try:
        refused = False
        raw = socket.create_connection(("127.0.0.1", c.port), timeout=5)
        try:
            t = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = wait_closed(t)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError, socket.timeout) as e:
            refused = not isinstance(e, socket.timeout)
        assert refused, "TLS connection past max_connections was not closed"
        raw.close()
    finally:
        for s in socks:
            s.close()
    wait_ingest_ok(c, key, make_row(0, id="tls-1"))


# ---- metrics and logs -------------------------------------------------------------


def test_metrics_pass_promtool_and_count_what_was_sent(db, collectors):
    c = collectors(db)
    key = db.create_key("ingest")
    accepted = 0
    for j in range(5):
        rows = [make_row(i, id=f"m-{j}-{i}") for i in range(10 + j)]
        assert ingest(c, key, rows).status_code == 200
        accepted += len(rows)
    dup = [make_row(i, id=f"m-0-{i}") for i in range(4)]
    assert ingest(c, key, dup).status_code == 200
    bad = [make_row(0, id="m-bad", modality="video"), make_row(1, id="m-ok")]
    assert ingest(c, key, bad).status_code == 200
    accepted += 1
    # create_key polls /v1/whoami until the collector knows the key, and those
    # early 401s count too: measure the bad keys' failures as a difference.
    before = metrics_map(c.get("/metrics").text)["vgcollector_auth_failures_total"]
    for _ in range(3):
        assert ingest(c, "vgk_" + "0" * 40, [make_row(0)]).status_code == 401

    text = c.get("/metrics").text
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    m = metrics_map(text)
    assert m['vgcollector_rows_total{outcome="accepted"}'] == accepted
    assert m['vgcollector_rows_total{outcome="duplicate"}'] == 4
    assert m['vgcollector_rows_total{outcome="rejected"}'] == 1
    assert m["vgcollector_auth_failures_total"] - before == 3
    assert m['vgcollector_http_requests_total{route="/v1/ingest",status="200"}'] == 7
    assert m['vgcollector_http_requests_total{route="/v1/ingest",status="401"}'] == 3
    assert m["vgcollector_ingest_duration_seconds_count"] == 7
    assert m['vgcollector_ingest_duration_seconds_bucket{le="+Inf"}'] == 7
    assert any(k.startswith("vgcollector_build_info{") for k in m)
    assert "vgcollector_db_pool_in_use" in m and "vgcollector_db_pool_waiting" in m


def test_logs_never_contain_a_full_key(db, collectors):
    c = collectors(db, "--log-level", "debug")
    key = db.create_key("ingest", project="proj-a")
    assert ingest(c, key, [make_row(0, id="log-0", project="proj-a")]).status_code == 200
    assert ingest(c, key, [make_row(0, id="log-1", modality="x")]).status_code == 200
    unknown = key[:-6] + "ZZZZZZ"
    assert ingest(c, unknown, [make_row(0)]).status_code == 401
    assert c.get("/v1/whoami", headers={"Authorization": "Basic " + key}).status_code == 401
    r = run_vgc("keys", "revoke", key, "--db", db.conninfo)
    assert r.returncode == 0
    c.wait_ready()
    wait_until(lambda: ingest(c, key, [make_row(0)]).status_code == 401, 5,
               "the revoked key refused")
    out = c.output() + r.stdout + r.stderr
    assert key not in out and unknown not in out
    assert key[len(key) // 2:] not in out  # not even the secret half
    assert key[:12] in c.output()  # the display prefix is what identifies it
    assert "project=proj-a" in c.output()


def test_json_log_format(db, collectors):
    c = collectors(db, "--log-format", "json", "--log-level", "debug")
    key = db.create_key("ingest", project="proj-j")
    r = ingest(c, key, [make_row(0, id="j-bad", modality="video", project="proj-j")])
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    assert ingest(c, "vgk_" + "1" * 40, [make_row(0)]).status_code == 401
    c.stop()
    lines = [l for l in c.output().splitlines() if l.strip()]
    assert lines
    parsed = [json.loads(l) for l in lines]  # every line is one JSON object
    assert all("level" in p for p in parsed)
    mine = [p for p in parsed if p.get("request_id") == rid]
    assert mine, parsed[-5:]
    assert any(p.get("project") == "proj-j" and p.get("key") == key[:len(p.get("key", ""))]
               and p.get("key") for p in mine)


# ---- retention and partitions -------------------------------------------------------


def old_partition(db, month, ids):
    """A partition for month ('2020-01-15') with rows whose ids are also in cost_row_ids."""
    db.query("SELECT vgc_ensure_partition(%s::timestamptz)", month)
    for i in ids:
        db.query("INSERT INTO cost_row_ids (id, ts) VALUES (%s, %s::timestamptz)", i, month)
        db.query("INSERT INTO cost_rows (id, ts, modality, project) VALUES (%s, %s, 'llm', 'p')",
                 i, month)
    db.conn.commit()


def partitions(db):
    return sorted(r[0] for r in db.query(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'cost_rows'::regclass"))


def month_name(months_from_now):
    t = time.gmtime()
    m = t.tm_year * 12 + (t.tm_mon - 1) + months_from_now
    return f"cost_rows_{m // 12:04d}{m % 12 + 1:02d}"


def test_retention_dry_run_then_drop(db):
    old_partition(db, "2020-01-15 12:00+00", ["old-1", "old-2"])
    old_partition(db, "2020-03-31 23:59:59+00", ["old-3"])
    edge = month_name(-2)  # entirely older than 1 month: dropped
    keep = month_name(-1)  # partly within the last month: kept
    for name in (edge, keep):
        db.query("SELECT vgc_ensure_partition(to_date(%s, 'YYYYMM') + 14)", name[-6:])
    db.query("INSERT INTO cost_row_ids VALUES ('new-1', now())")
    db.conn.commit()

    r = run_vgc("retention", "--dry-run", "--db", db.conninfo, "--retention-months", "1", "--max-row-age-days", "28",
                "--partitions-ahead", "5")
    assert r.returncode == 0, r.stderr
    for name in ("cost_rows_202001", "cost_rows_202003", edge):
        assert f"would drop {name}" in r.stdout, r.stdout
    assert keep not in r.stdout
    assert f"would create {month_name(5)}" in r.stdout
    assert "cost_rows_202001" in partitions(db)  # nothing done

    lock = db.cluster.connect(db.name)
    lock.autocommit = True
    with lock.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext('vgcollector.retention'))")
    r = run_vgc("retention", "--db", db.conninfo, "--retention-months", "1", "--max-row-age-days", "28")
    assert r.returncode != 0 and "lock" in r.stderr, r.stdout + r.stderr
    assert "cost_rows_202001" in partitions(db)
    lock.close()

    r = run_vgc("retention", "--db", db.conninfo, "--retention-months", "1", "--max-row-age-days", "28",
                "--partitions-ahead", "5")
    assert r.returncode == 0, r.stderr
    now = partitions(db)
    assert "cost_rows_202001" not in now and "cost_rows_202003" not in now and edge not in now
    assert keep in now and month_name(0) in now and month_name(5) in now
    ids = {r[0] for r in db.query("SELECT id FROM cost_row_ids")}
    assert ids == {"new-1"}
    assert "dropped cost_rows_202001" in r.stdout and "3 ids" in r.stdout, r.stdout


@pytest.mark.hand_made_rows
def test_retention_zero_keeps_everything(db):
    old_partition(db, "2019-06-01 00:00+00", ["x"])
    r = run_vgc("retention", "--db", db.conninfo, "--retention-months", "0")
    assert r.returncode == 0, r.stderr
    assert "cost_rows_201906" in partitions(db)


def test_serve_runs_retention_at_startup(db, collectors):
    old_partition(db, "2021-02-10 00:00+00", ["s-1"])
    c = collectors(db, "--retention-months", "3", "--partitions-ahead", "4",
                   "--max-row-age-days", "84")
    wait_until(lambda: "cost_rows_202102" not in partitions(db)
               and month_name(4) in partitions(db), 15,
               "retention at startup dropping 2021-02 and creating 4 months ahead", interval=0.1)
    assert db.scalar("SELECT count(*) FROM cost_row_ids WHERE id = 's-1'") == 0
    # Ingest still works, including into a month created ahead.
    key = db.create_key("ingest")
    assert ingest(c, key, [make_row(0, id="after")]).status_code == 200
    assert "retention: dropped cost_rows_202102" in c.output()


# ---- make install -------------------------------------------------------------------


def test_make_install_and_pkg_config(tmp_path):
    if not os.path.exists(os.path.join(ROOT, "sink", "vgsink.h")):
        pytest.fail("sink/vgsink.h does not exist yet: libvgsink is not written")
    dest = tmp_path / "root"
    conf = dest / "etc" / "vgcollector" / "vgcollector.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("# mine\nretention_months = 6\n")
    build = os.path.relpath(BUILD, ROOT)
    r = subprocess.run(["make", "-s", "install", f"BUILD={build}", "PREFIX=/usr/local",
                        f"DESTDIR={dest}"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    p = dest / "usr" / "local"
    for f in ["bin/vgcollector", "lib/libvgsink.a", "lib/libvgsink.so", "lib/libvgsink.so.0",
              "include/vgsink.h", "lib/pkgconfig/vgsink.pc",
              "share/vgcollector/schema/0001_init.sql"]:
        assert (p / f).exists(), f
    assert os.access(p / "bin" / "vgcollector", os.X_OK)
    unit = (dest / "lib" / "systemd" / "system" / "vgcollector.service").read_text()
    assert "ExecStart=/usr/local/bin/vgcollector serve" in unit and "@PREFIX@" not in unit
    assert conf.read_text() == "# mine\nretention_months = 6\n"  # not overwritten

    dest2 = tmp_path / "fresh"
    r = subprocess.run(["make", "-s", "install", f"BUILD={build}", "PREFIX=/usr/local",
                        f"DESTDIR={dest2}"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(ROOT, "deploy", "vgcollector.conf")) as f:
        assert (dest2 / "etc" / "vgcollector" / "vgcollector.conf").read_text() == f.read()

    src = tmp_path / "prog.c"
    src.write_text(
        '#include <stdio.h>\n#include <vgsink.h>\n'
        'int main(void)\n{\n'
        '\tvgsink_config cfg;\n\tchar err[256] = "";\n\tvgsink *s;\n\n'
        '\tvgsink_config_init(&cfg);\n'
        '\ts = vgsink_open(&cfg, err, sizeof(err));\n'
        '\tif (s)\n\t\tvgsink_close(s, 0);\n'
        '\tprintf("linked %s\\n", s ? "open" : err);\n'
        '\treturn 0;\n}\n')
    env = dict(os.environ, PKG_CONFIG_PATH=str(p / "lib" / "pkgconfig"),
               PKG_CONFIG_SYSROOT_DIR=str(dest))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "vgsink"], env=env,
                           capture_output=True, text=True)
    assert flags.returncode == 0, flags.stderr
    exe = tmp_path / "prog"
    # A sanitizer build's library needs its program built with the same runtime.
    needed = subprocess.run(["readelf", "-d", str(p / "lib" / "libvgsink.so.0")],
                            capture_output=True, text=True).stdout
    san = ["-fsanitize=address,undefined"] if "libasan" in needed else []
    r = subprocess.run(["cc", *san, "-o", str(exe), str(src), *flags.stdout.split()],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True,
                       env=dict(os.environ, LD_LIBRARY_PATH=str(p / "lib"),
                                VOICEGW_COLLECTOR_URL="http://127.0.0.1:9",
                                VOICEGW_API_KEY="vgk_" + "0" * 40))
    # vgsink_open needs no collector to be up: it must succeed, not just link.
    assert r.returncode == 0 and r.stdout == "linked open\n", r.stdout + r.stderr


def test_no_synchronous_standby_warns_at_startup_and_on_reload_and_metric_says_0(db, collectors):
    """A database without a synchronous standby (the test cluster has none:
    synchronous_standby_names is empty) can lose acknowledged rows in a
    failover. The collector says so in its log at startup and again on
    reload, and /metrics carries vgcollector_db_synchronous_standby 0."""
    c = collectors(db)
    warning = "the database has no synchronous standby (synchronous_standby_names is empty)"
    wait_until(lambda: warning in c.output(), 20, "the startup warning")
    text = wait_until(lambda: (t := c.get("/metrics").text) and
                      "vgcollector_db_synchronous_standby" in t and t, 20,
                      "vgcollector_db_synchronous_standby in /metrics")
    assert metrics_map(text)["vgcollector_db_synchronous_standby"] == 0
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr

    c.signal(signal.SIGHUP)
    wait_until(lambda: c.output().count(warning) == 2, 20, "the warning again after SIGHUP")
    assert "level=warn" in [l for l in c.output().splitlines() if warning in l][-1]
    assert metrics_map(c.get("/metrics").text)["vgcollector_db_synchronous_standby"] == 0
