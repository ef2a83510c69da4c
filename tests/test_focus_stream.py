"""GET /v1/export/focus streams: the CSV is read from PostgreSQL a FETCH at a
time and sent as a chunked reply that pauses while the client is behind, so a
month of any size costs the collector a bounded amount of memory, a client
that hangs up stops the export, and the bytes stay exactly the CLI's and the
manifest's."""

import hashlib
import json
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import VGC, run_vgc, sanitizer_env, wait_until
from test_focus import export, month_start, period_name, seed

# ASan keeps freed memory in quarantine (256 MB by default), which would count
# as resident; a small one keeps RSS meaning what it means without ASan.
ASAN_SMALL_QUARANTINE = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=66:quarantine_size_mb=8"}


def add_lines(db, month, n):
    """n FOCUS lines in the month, each its own (day, tenant, agent) group,
    written straight into the daily rollups the export reads (fast: no
    ingest)."""
    db.query(
        "INSERT INTO cost_rollup_daily (day, project, agent_id, tenant_id, modality, provider,"
        " model_id, requests, cost_usd, rated_price_usd, input_units, output_units)"
        " SELECT %s::timestamptz + (i %% 28) * interval '1 day', 'default', 'agent-' || i,"
        " 'tenant-' || (i %% 50), 'llm', 'openai', 'openai/gpt-4o-mini', 3,"
        " 0.0001 * (i %% 97 + 1), 0.0002 * (i %% 89 + 1), 1000 + i, 200"
        " FROM generate_series(1, %s) i", month, n)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def request_socket(c, key, period, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", c.port))
    s.sendall(f"GET /v1/export/focus?billing_period={period} HTTP/1.1\r\nHost: t\r\n"
              f"Authorization: Bearer {key}\r\nConnection: close\r\n\r\n".encode())
    return s


def dechunk(raw):
    """(head, body) of a whole HTTP/1.1 reply with a chunked body; fails on a
    body cut before its last chunk."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    body, pos = bytearray(), 0
    while True:
        eol = rest.index(b"\r\n", pos)
        size = int(rest[pos:eol].split(b";")[0], 16)
        if size == 0:
            return head, bytes(body)
        body += rest[eol + 2:eol + 2 + size]
        pos = eol + 2 + size + 2


def cli_export(db, period, tmp_path):
    out = tmp_path / f"focus-{period}.csv"
    r = run_vgc("export", "focus", "--period", period, "--out", str(out), "--db", db.conninfo,
                timeout=600)
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


def manifest(c, key, period):
    r = c.get("/v1/export/focus/manifest", key=key, params={"billing_period": period},
              timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def test_streamed_export_is_chunked_and_the_clis_bytes_and_the_manifests_hash(db, collectors,
                                                                              tmp_path):
    """With two lines per FETCH and the smallest buffer, the reply is chunked
    and its body is byte for byte the CLI's file (read a thousand lines at a
    time), whose sha256 the manifest names, for an open and a closed month."""
    c = collectors(db, config_text="export_fetch_rows = 2\nexport_buffer_bytes = 4096\n")
    ingest_key, read_key = db.create_key("ingest"), db.create_key("read")
    admin_key = db.create_key("admin")
    month = month_start(2)
    seed(c, ingest_key, month)
    period = period_name(month)
    for state in ("open", "closed"):
        r = c.get("/v1/export/focus", key=read_key, params={"billing_period": period})
        assert r.status_code == 200, r.text
        assert r.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in r.headers
        assert r.headers["content-disposition"] == f'attachment; filename="focus-{period}.csv"'
        assert r.content.count(b"\r\n") == 6  # the header and five lines
        assert r.content == cli_export(db, period, tmp_path)
        m = manifest(c, read_key, period)
        assert m["state"] == state and m["ties_out"] is True
        assert m["sha256"] == hashlib.sha256(r.content).hexdigest()
        if state == "open":
            r = c.post(f"/v1/periods/{period}/close", key=admin_key, json={"force": True})
            assert r.status_code == 200, r.text


def test_keep_alive_connection_serves_the_next_request_after_a_streamed_export(db, collectors):
    """Before, the connection that had carried a streamed export never read
    another request: the last chunk was written by the gate's filter before
    evhttp asked to be told, so the answer never completed and the client's
    next request on it met a closed connection ("Server disconnected without
    sending a response"); `make bench-rollup`'s keep-alive client hit it. Now
    exports, manifests and other reads alternate on one connection."""
    import httpx

    c = collectors(db, config_text="export_fetch_rows = 2\nexport_buffer_bytes = 4096\n")
    ingest_key, read_key = db.create_key("ingest"), db.create_key("read")
    month = month_start(2)
    seed(c, ingest_key, month)
    period = period_name(month)
    headers = {"Authorization": f"Bearer {read_key}"}
    with httpx.Client(base_url=c.url, headers=headers, timeout=30) as http:
        bodies = []
        for _ in range(3):
            r = http.get("/v1/export/focus", params={"billing_period": period})
            assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
            bodies.append(r.content)
            r = http.get("/v1/export/focus/manifest", params={"billing_period": period})
            assert r.status_code == 200, r.text
            assert r.json()["sha256"] == hashlib.sha256(bodies[-1]).hexdigest()
            assert http.get("/v1/whoami").status_code == 200
        assert bodies[0] == bodies[1] == bodies[2]


@pytest.mark.hand_made_rows
def test_streamed_export_of_a_big_month_to_a_slow_client_keeps_memory_bounded(db, collectors):
    """200k lines (about 67 MB of CSV) exported to a client that reads slowly
    at first: the collector's RSS grows by a bounded amount, far below the
    CSV's size, and the streamed bytes hash to the manifest's sha256.

    Before streaming, the collector built the whole CSV in memory before its
    first byte: its RSS grew by 179 MB for this 67 MB export (measured with
    this test on the code before)."""
    c = collectors(db, env=ASAN_SMALL_QUARANTINE)
    read_key = db.create_key("read")
    month = month_start(3)
    period = period_name(month)
    add_lines(db, month, 200_000)
    assert c.get("/v1/export/focus", key=read_key,
                 params={"billing_period": period_name(month_start(5))}).status_code == 200
    before = rss_kb(c.proc.pid)
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(c.proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        s = request_socket(c, read_key, period, rcvbuf=16384)
        raw, slow_until = bytearray(), time.monotonic() + 5
        while True:
            slow = time.monotonic() < slow_until
            got = s.recv(4096 if slow else 1 << 20)
            if not got:
                break
            raw += got
            if slow:
                time.sleep(0.01)
        s.close()
    finally:
        done.set()
        sampler.join()
    growth_mb = (peak[0] - before) / 1024
    print(f"reply {len(raw) / 2**20:.1f} MB; collector RSS grew {growth_mb:.1f} MB")
    head, body = dechunk(bytes(raw))
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body.count(b"\r\n") == 200_001
    assert growth_mb < 32 and growth_mb < len(body) / 2**20 / 3, \
        f"RSS grew {growth_mb:.1f} MB for a {len(body) / 2**20:.1f} MB CSV"
    assert manifest(c, read_key, period)["sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.hand_made_rows
def test_client_hanging_up_mid_export_stops_it_and_frees_everything(db, collectors, tmp_path):
    """A client that hangs up after the first few KB of a big export: the
    collector stops reading the export (its producer stops far short of the
    CSV, and its transaction ends), logs it, keeps serving, and (ASan build)
    leaks nothing; a whole export afterwards is still the CLI's bytes."""
    c = collectors(db)
    read_key = db.create_key("read")
    month = month_start(3)
    period = period_name(month)
    add_lines(db, month, 100_000)
    for _ in range(2):
        s = request_socket(c, read_key, period, rcvbuf=16384)
        got = b""
        while len(got) < 8192:
            more = s.recv(4096)
            assert more, got
            got += more
        assert got.startswith(b"HTTP/1.1 200"), got[:200]
        s.close()
    wait_until(lambda: c.output().count("client went away") >= 2, 60,
               "the collector noticing both clients went away")

    def idle():
        return db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND (state LIKE 'idle in transaction%%'"
            " OR query LIKE 'FETCH%%' AND state = 'active')") == 0

    wait_until(idle, 60, "the export's transactions ending")
    def producers_stopped():
        got = re.findall(r"the stream's producer stopped after (\d+) bytes", c.output())
        return [int(n) for n in got] if len(got) >= 2 else None

    stopped = wait_until(producers_stopped, 30, "both producers stopping")
    assert c.get("/healthz").status_code == 200
    whole = export(c, read_key, period)
    assert whole == cli_export(db, period, tmp_path)
    print(f"stopped after {stopped} bytes of {len(whole)}")
    assert len(stopped) == 2 and max(stopped) < len(whole) / 2, (stopped, len(whole))
    assert c.stop() == 0


def test_export_failing_before_its_first_byte_is_an_ordinary_error(db, collectors):
    """An export that fails before anything was sent (here: a table it reads
    is missing) gets an ordinary JSON error naming the request id, never the
    database's text, and not a cut stream."""
    c = collectors(db)
    read_key = db.create_key("read")
    db.query("ALTER TABLE billing_period_lines RENAME TO billing_period_lines_gone")
    try:
        r = c.get("/v1/export/focus", key=read_key,
                  params={"billing_period": period_name(month_start(1))})
    finally:
        db.query("ALTER TABLE billing_period_lines_gone RENAME TO billing_period_lines")
    assert r.status_code >= 500
    assert r.headers["content-type"].startswith("application/json")
    assert "request id" in r.json()["error"]
    assert "billing_period_lines" not in r.text


def read_all(s, slow_s=0.0):
    """Everything the server sends until it closes, the first slow_s seconds
    4 KB at a time with a pause between reads."""
    raw, slow_until = bytearray(), time.monotonic() + slow_s
    while True:
        slow = time.monotonic() < slow_until
        got = s.recv(4096 if slow else 1 << 20)
        if not got:
            return bytes(raw)
        raw += got
        if slow:
            time.sleep(0.01)


def no_export_transaction(db):
    return db.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND (state LIKE 'idle in transaction%%'"
        " OR query LIKE 'FETCH%%' AND state = 'active')") == 0


@pytest.mark.hand_made_rows
def test_slow_client_that_keeps_reading_gets_the_whole_export_past_idle_timeout(db, collectors):
    """idle_timeout_s bounds how long a client may take nothing, not how long
    an export may last: a client that reads slowly but steadily, and sends
    nothing, for three times idle_timeout_s gets the whole export."""
    c = collectors(db, config_text="idle_timeout_s = 2\nexport_buffer_bytes = 64K\n")
    read_key = db.create_key("read")
    month = month_start(3)
    period = period_name(month)
    add_lines(db, month, 30_000)
    s = request_socket(c, read_key, period, rcvbuf=16384)
    head, body = dechunk(read_all(s, slow_s=6))
    s.close()
    assert head.startswith(b"HTTP/1.1 200"), head
    assert body.count(b"\r\n") == 30_001
    assert manifest(c, read_key, period)["sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.hand_made_rows
def test_client_that_reads_nothing_is_cut_after_idle_timeout(db, collectors):
    """A client that stops reading holds at most export_buffer_bytes of the
    collector's memory, and for idle_timeout_s only: then the collector drops
    it (the reply cut, no last chunk), logs it, and the export's transaction
    ends."""
    c = collectors(db, config_text="idle_timeout_s = 2\n")
    read_key = db.create_key("read")
    month = month_start(3)
    add_lines(db, month, 50_000)
    s = request_socket(c, read_key, period_name(month), rcvbuf=4096)
    # evhttp's write timeout, or the stream's own stall timer, whichever first.
    wait_until(lambda: "client went away" in c.output() or "read nothing for 2 s" in c.output(),
               30, "the collector dropping the client")
    wait_until(lambda: no_export_transaction(db), 60, "the export's transaction ending")
    raw = read_all(s)
    s.close()
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    assert not raw.endswith(b"\r\n0\r\n\r\n")
    assert c.get("/healthz").status_code == 200


def cli_peak_rss_mb(db, period, out):
    """Runs `vgcollector export focus` under a fresh Python whose only child
    it is, and returns the CLI's peak RSS (ru_maxrss) in MB."""
    env = sanitizer_env()
    env.update(ASAN_SMALL_QUARANTINE)
    probe = ("import json, resource, subprocess, sys;"
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
             "print(json.dumps([r.returncode, r.stderr,"
             " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")
    r = subprocess.run([sys.executable, "-c", probe, VGC, "export", "focus", "--period", period,
                        "--out", str(out), "--db", db.conninfo],
                       capture_output=True, text=True, env=env, timeout=600)
    rc, err, maxrss_kb = json.loads(r.stdout)
    assert rc == 0, err
    return maxrss_kb / 1024


@pytest.mark.hand_made_rows
def test_cli_export_of_a_big_month_streams_to_its_file_with_bounded_memory(db, tmp_path):
    """`vgcollector export focus --out FILE` writes each piece as it is read:
    for 200k lines (about 67 MB) its peak RSS is within a few MB of what an
    empty month costs it, and the file hashes to the manifest's sha256.

    Before streaming, the CLI held the whole CSV (and every line as libpq's
    result) in memory: its peak RSS grew by 145 MB over an empty month's for
    this export (measured with this test on the code before)."""
    month = month_start(3)
    period = period_name(month)
    add_lines(db, month, 200_000)
    empty = cli_peak_rss_mb(db, period_name(month_start(5)), tmp_path / "empty.csv")
    big = cli_peak_rss_mb(db, period, tmp_path / "big.csv")
    size_mb = (tmp_path / "big.csv").stat().st_size / 2**20
    print(f"CSV {size_mb:.1f} MB; CLI peak RSS {big:.1f} MB (empty month {empty:.1f} MB)")
    assert size_mb > 50
    assert big - empty < 32 and big - empty < size_mb / 3, \
        f"CLI peak RSS grew {big - empty:.1f} MB for a {size_mb:.1f} MB CSV"
    assert (tmp_path / "big.csv").read_bytes().count(b"\r\n") == 200_001


@pytest.mark.hand_made_rows
def test_database_failing_mid_export_cuts_the_reply_and_the_collector_recovers(db, collectors,
                                                                              tmp_path):
    """The export's PostgreSQL session dies after the first bytes left: the
    status cannot change any more, so the collector closes the connection
    without the last chunk (the client sees a cut transfer, not a short file
    that looks whole), logs why, and the next export is whole again."""
    c = collectors(db)
    read_key = db.create_key("read")
    month = month_start(3)
    period = period_name(month)
    add_lines(db, month, 50_000)
    s = request_socket(c, read_key, period, rcvbuf=4096)
    assert s.recv(4096).startswith(b"HTTP/1.1 200")

    def kill_export_session():
        return db.scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND query LIKE 'FETCH%%'")

    wait_until(kill_export_session, 30, "the export's session, to end it")
    raw = read_all(s)
    s.close()
    assert not raw.endswith(b"\r\n0\r\n\r\n"), raw[-200:]
    wait_until(lambda: "stream cut after" in c.output(), 30, "the cut in the log")
    assert export(c, read_key, period) == cli_export(db, period, tmp_path)
