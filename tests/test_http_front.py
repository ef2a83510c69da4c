"""The HTTP front, over the real binary: a request without a valid key
is refused before its body is read, bytes buffered for requests not
yet dispatched are bounded by max_pending_body_bytes, two different
Content-Length headers are refused, and a TLS listener never answers
plaintext."""

import json
import os
import resource
import select
import socket
import ssl
import tempfile
import time

from conftest import BUILD, make_certs, make_row, wait_until

MIB = 1024 * 1024
# ASan's shadow memory and quarantine make every allocation cost several
# times its size, and the runtime alone starts near 30 MiB of RSS.
RSS_LIMIT = (400 if "san" in os.path.basename(BUILD.rstrip("/")) else 150) * MIB


def proc_status(pid, field):
    """A /proc/<pid>/status figure in bytes (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def head(path, length, key=None, extra=b""):
    h = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         f"Content-Length: {length}\r\n").encode()
    if key:
        h += f"Authorization: Bearer {key}\r\n".encode()
    return h + extra + b"\r\n"


def read_response(s, deadline):
    """Reads one HTTP response (head and Content-Length body) from s before
    deadline; returns (status, headers, body), status None on EOF or reset."""
    data = b""
    s.setblocking(True)
    while True:
        left = deadline - time.time()
        assert left > 0, f"no complete response before the deadline: {data[:200]!r}"
        s.settimeout(left)
        if b"\r\n\r\n" in data:
            top, rest = data.split(b"\r\n\r\n", 1)
            lines = top.decode("latin-1").split("\r\n")
            hdrs = {k.strip().lower(): v.strip()
                    for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            n = int(hdrs.get("content-length", "0"))
            if len(rest) >= n:
                return int(lines[0].split()[1]), hdrs, rest[:n]
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        except socket.timeout:
            raise AssertionError(f"no complete response in time: {data[:200]!r}") from None
        if not chunk:
            assert not data.startswith(b"HTTP/"), f"response cut short: {data[:200]!r}"
            return None, {}, data
        data += chunk


def rows_body(rows, size):
    """A JSON array of rows padded with JSON whitespace to exactly size bytes."""
    b = json.dumps(rows).encode()
    assert len(b) <= size
    return b + b" " * (size - len(b))


class Upload:
    """A raw-socket POST sent in pieces: the head, then the body as told."""

    def __init__(self, c, path, body, key=None, declared=None):
        self.s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        self.body = body
        self.sent = 0
        self.s.sendall(head(path, len(body) if declared is None else declared, key))

    def send(self, upto):
        self.s.sendall(self.body[self.sent:upto])
        self.sent = max(self.sent, upto)

    def response(self, seconds=10):
        return read_response(self.s, time.time() + seconds)

    def close(self):
        self.s.close()


# ---- key-less bodies ------------------------------------------------------


def test_keyless_uploads_get_401_before_their_body_is_read(db, collectors):
    """200 connections without a key each declare 8 MiB and send all but one
    byte. Each is answered 401 while its body is still coming, the collector's
    peak RSS stays bounded, and a keyed client is served meanwhile."""
    raise_nofile(4096)
    c = collectors(db, "--max-connections", "1000")
    key = db.create_key("ingest")
    declared = 8 * MIB
    n = 200
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
        s.sendall(head("/v1/ingest", declared))
        s.setblocking(False)
        socks.append(s)
    sent = [0] * n
    chunk = b"x" * (256 * 1024)
    deadline = time.time() + 20
    rss_peak = 0
    try:
        # Push bodies until every one is sent or the server stops reading
        # (kernel buffers full); stop early if RSS goes past the limit, so the
        # unfixed collector does not eat gigabytes before failing.
        active = set(range(n))
        while active and time.time() < deadline:
            rss_peak = max(rss_peak, proc_status(c.proc.pid, "VmRSS"))
            if rss_peak > RSS_LIMIT:
                break
            _, writable, _ = select.select([], [socks[i] for i in active], [], 0.5)
            if not writable:
                break  # nobody can send: the collector is not reading bodies
            for s in writable:
                i = socks.index(s)
                want = min(len(chunk), declared - 1 - sent[i])
                try:
                    sent[i] += s.send(chunk[:want])
                except (BlockingIOError, InterruptedError):
                    pass
                except (ConnectionResetError, BrokenPipeError):
                    active.discard(i)  # refused and closed: fine
                    continue
                if sent[i] >= declared - 1:
                    active.discard(i)
        # A keyed client is served while all of them are held open.
        r = c.post("/v1/ingest", key=key, json=[make_row(0, id="keyed-during-keyless")],
                   timeout=20)
        assert r.status_code == 200, r.text
        hwm = proc_status(c.proc.pid, "VmHWM")
        assert hwm < RSS_LIMIT, (
            f"collector peak RSS {hwm / MIB:.0f} MiB with {n} key-less 8 MiB uploads "
            f"(limit {RSS_LIMIT / MIB:.0f} MiB); client sent {sum(sent) / MIB:.0f} MiB")
        statuses = []
        answer_deadline = time.time() + 20
        for s in socks:
            status, hdrs, body = read_response(s, answer_deadline)
            statuses.append(status)
            if status == 401:
                assert hdrs.get("connection", "").lower() == "close"
                assert "Authorization" in json.loads(body)["error"]
        assert statuses == [401] * n, (
            f"answers to key-less uploads: {sorted(set(map(str, statuses)))}; "
            f"{statuses.count(401)} of {n} got 401")
        # None of those bodies was read: far less than was sent reached memory.
        assert hwm < RSS_LIMIT
    finally:
        for s in socks:
            s.close()
    assert db.scalar("SELECT count(*) FROM cost_rows") == 1


def test_bad_key_upload_gets_401_before_its_body(db, collectors):
    c = collectors(db)
    up = Upload(c, "/v1/ingest", b" " * MIB, key="vgk_" + "A" * 43)
    try:
        up.send(1000)  # most of the body never comes
        status, hdrs, body = up.response()
        assert status == 401, body
        assert json.loads(body)["error"] == "unknown or revoked API key"
        assert hdrs.get("www-authenticate") == "Bearer"
    finally:
        up.close()


def test_pending_body_budget_refuses_uploads_beyond_it_with_503(db, collectors):
    """max_pending_body_bytes = max_body_bytes = 3 MiB: a 2 MiB upload in progress holds 2 MiB;
    another 2 MiB one is refused 503 at once, a small one fits and succeeds;
    once they are done the budget is whole again (a 2.5 MiB upload succeeds)."""
    c = collectors(db, "--max-pending-body-bytes", str(3 * MIB), "--max-body-bytes", str(3 * MIB))
    key = db.create_key("ingest")
    big = Upload(c, "/v1/ingest", rows_body([make_row(0, id="budget-big")], 2 * MIB), key)
    over = small = None
    try:
        big.send(MIB)  # half its body: the reservation is held
        time.sleep(0.2)
        over = Upload(c, "/v1/ingest", rows_body([make_row(1, id="budget-over")], 2 * MIB),
                      key)
        status, hdrs, body = over.response()
        assert status == 503, f"upload past the pending budget got {status}: {body[:200]!r}"
        assert hdrs.get("retry-after")
        assert "max_pending_body_bytes" in json.loads(body)["error"]
        small = Upload(c, "/v1/ingest", rows_body([make_row(2, id="budget-small")], 64 * 1024),
                       key)
        small.send(64 * 1024)
        status, _, body = small.response()
        assert status == 200, body
        big.send(2 * MIB)
        status, _, body = big.response()
        assert status == 200, body
    finally:
        for u in (big, over, small):
            if u:
                u.close()
    after = Upload(c, "/v1/ingest", rows_body([make_row(3, id="budget-after")], 5 * MIB // 2),
                   key)
    try:
        after.send(5 * MIB // 2)
        status, _, body = after.response()
        assert status == 200, f"budget not released after the uploads finished: {body[:200]!r}"
    finally:
        after.close()
    m = c.get("/metrics").text
    assert "vgcollector_pending_body_refused_total 1" in m
    assert db.scalar("SELECT count(*) FROM cost_rows") == 3


def test_oversized_content_length_gets_json_413_before_the_body(db, collectors):
    c = collectors(db)
    key = db.create_key("ingest")
    up = Upload(c, "/v1/ingest", b"", key, declared=9 * MIB)
    try:
        status, hdrs, body = up.response()
        assert status == 413
        assert hdrs.get("content-type") == "application/json"
        err = json.loads(body)["error"]
        assert err.startswith("body of ") and "max_body_bytes" in err, err
    finally:
        up.close()


# ---- two Content-Length headers ------------------------------------------


def test_two_different_content_lengths_are_refused_400(db, collectors):
    c = collectors(db)
    key = db.create_key("ingest")
    body = json.dumps([make_row(0, id="two-cl")]).encode()
    s = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    try:
        s.sendall(head("/v1/ingest", len(body), key,
                       extra=f"Content-Length: {len(body) + 10}\r\n".encode()) + body)
        status, _, answer = read_response(s, time.time() + 10)
        assert status == 400, answer
        err = json.loads(answer)["error"]
        assert err.startswith("two different Content-Length headers"), err
    finally:
        s.close()
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0


# ---- a TLS listener at the cap ------------------------------------------


def test_tls_listener_at_the_cap_never_answers_plaintext(db, collectors):
    certs = make_certs(tempfile.mkdtemp(prefix="vgc-front-tls-"))
    c = collectors(db, "--max-connections", "2", "--tls-cert", certs["good.pem"],
                   "--tls-key", certs["good.key"], scheme="https")
    ctx = ssl.create_default_context(cafile=certs["ca.pem"])
    held = []

    def hold_one():
        t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", c.port), timeout=5),
                            server_hostname="127.0.0.1")
        t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = read_response(t, time.time() + 5)
        if status == 200:
            held.append(t)
        else:
            t.close()
        return len(held) == 2

    try:
        # wait_ready's connection may still count: hold 2 once it has gone.
        wait_until(hold_one, 5, "holding 2 TLS connections", interval=0.1)
        plain = socket.create_connection(("127.0.0.1", c.port), timeout=5)
        try:
            plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, data = read_response(plain, time.time() + 5)
            assert status is None and not data.startswith(b"HTTP/"), (
                f"plaintext answered on a TLS listener: {data[:100]!r}")
        finally:
            plain.close()
        for t in held:
            t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _ = read_response(t, time.time() + 5)
            assert status == 200
    finally:
        for t in held:
            t.close()
