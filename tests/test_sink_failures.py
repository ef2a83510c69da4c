"""libvgsink under faults (5xx answers, oversized batches, a full disk, a full
spool), through the real sink
(vgsink-sim, vgsink-replay) against the real collector and PostgreSQL. Every
test checks the sink's accounting identity on its final stats and on every
sample taken while it ran, and the rows stored."""

import http.client
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from decimal import Decimal

from conftest import SANITIZER_MARKS, assert_sink_stats_add_up, free_port
from test_sink import assert_stored_exactly, spool_files, tool

FAST_RETRY = ("--retry-initial-ms", 20, "--retry-max-ms", 100)


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of the collector. plan(n) gives the
    status to answer the n-th POST (from 0) with, or None to forward it."""

    def __init__(self, upstream_port, plan):
        self.upstream_port = upstream_port
        self.plan = plan
        self.lock = threading.Lock()
        self.posts = 0
        self.injected = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    n = proxy.posts
                    proxy.posts += 1
                status = proxy.plan(n)
                if status is not None:
                    with proxy.lock:
                        proxy.injected.append(status)
                    self.answer(status, b'{"error":"injected by the test proxy"}', {})
                    return
                up = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    hdrs = {k: v for k, v in self.headers.items()
                            if k.lower() in ("authorization", "content-type",
                                             "content-encoding", "user-agent")}
                    up.request("POST", self.path, body=body, headers=hdrs)
                    r = up.getresponse()
                    data = r.read()
                    extra = {k: v for k, v in r.getheaders() if k.lower() == "retry-after"}
                    self.answer(r.status, data, extra)
                finally:
                    up.close()

            def answer(self, status, data, extra):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class Sim:
    """vgsink-sim in the background; a thread collects its stats samples
    (JSON lines on stderr) so the test can wait on them, each wait bounded."""

    def __init__(self, *args):
        self.proc = tool("vgsink-sim", *args, background=True)
        self.samples, self.errlines = [], []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                if line.startswith("{"):
                    self.samples.append(json.loads(line))
                else:
                    self.errlines.append(line)
                self.cond.notify_all()

    def wait_sample(self, pred, timeout=30):
        """The first sample matching pred, or None once the sim has exited
        (its final stats then tell what happened)."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                hit = [s for s in self.samples if pred(s)]
                if hit:
                    return hit[0]
                if self.proc.poll() is not None:
                    return None
                left = deadline - time.time()
                assert left > 0, f"no stats sample matched in {timeout}s; last: " \
                    f"{self.samples[-1:]}\n{''.join(self.errlines[-20:])}"
                self.cond.wait(min(left, 0.5))

    def finish(self, timeout=180):
        self.proc.wait(timeout=timeout)  # stdout holds one short line: no pipe fills
        out = self.proc.stdout.read()
        self.reader.join(timeout=10)
        err = "".join(self.errlines)
        assert not any(m in err for m in SANITIZER_MARKS), err
        return json.loads(out.strip().splitlines()[-1]), err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def assert_every_sample_adds_up(samples, final):
    for s in samples:
        assert_sink_stats_add_up(s)
    assert_sink_stats_add_up(final)


def rows_in_names(files):
    return sum(int(f.split("-")[1].split(".")[0], 16) for f in files)


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".vgb"))


# ---- a 500 or an unlisted 5xx is retried, never a rejection ----------------------

def test_500_and_unlisted_5xx_are_retried_until_stored_never_rejected(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    faults = [500, 500, 507, 500, 501, 500]
    proxy = FaultProxy(c.port, lambda n: faults[n] if n < len(faults) else None)
    spool = tempfile.mkdtemp(prefix="vgsink-spool-")
    try:
        sim = Sim("--url", proxy.url, "--key", key, "--threads", 1, "--rows", 50,
                  "--batch-rows", 10, "--spool", spool, "--stats-every-ms", 20,
                  "--close-timeout-ms", 60000, *FAST_RETRY)
        try:
            st, err = sim.finish()
        finally:
            sim.kill()
    finally:
        proxy.close()
    assert st["rejected"] == 0 and st["dropped"] == 0, st
    assert proxy.injected == faults  # every fault was really answered
    assert sim.proc.returncode == 0, err
    assert st["sent"] == st["recorded"] == 50 and st["retries"] >= len(faults), st
    assert spool_files(spool, "rejected") == [] and spool_files(spool) == []
    assert_every_sample_adds_up(sim.samples, st)
    assert_stored_exactly(db, 50, st["cost_usd_recorded"])


def test_404_stays_a_permanent_rejection(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    proxy = FaultProxy(c.port, lambda n: 404)
    spool = tempfile.mkdtemp(prefix="vgsink-spool-")
    try:
        r = tool("vgsink-sim", "--url", proxy.url, "--key", key, "--threads", 1, "--rows", 30,
                 "--batch-rows", 10, "--spool", spool, "--close-timeout-ms", 20000, *FAST_RETRY)
    finally:
        proxy.close()
    st = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0, r.stderr  # every batch was answered, with 404
    assert st["rejected"] == 30 and st["retries"] == 0 and st["sent"] == 0, st
    assert rows_in_names(spool_files(spool, "rejected")) == 30
    assert_sink_stats_add_up(st)
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0


# ---- an oversized batch is split, never a reason to drop older rows -------------

def test_oversized_batch_is_split_and_never_evicts_older_spooled_rows(db, collectors):
    port = free_port()  # closed until the collector starts below
    url = f"http://127.0.0.1:{port}"
    key = db.create_key("ingest")
    spool = tempfile.mkdtemp(prefix="vgsink-spool-")
    common = ("--url", url, "--key", key, "--threads", 1, "--batch-rows", 200,
              "--spool", spool, "--spool-max-bytes", 65536, "--pad-bytes", 800)
    costs, earlier = Decimal(0), []
    # Three workers in turn leave 10 rows each in the spool.
    for i in range(3):
        r = tool("vgsink-sim", *common, "--rows", 10, "--close-timeout-ms", 300)
        st = json.loads(r.stdout.strip().splitlines()[-1])
        assert r.returncode == 1 and st["dropped"] == 0, (st, r.stderr)
        earlier.append(st)
        costs += Decimal(st["cost_usd_recorded"])
    pending = spool_files(spool)
    assert len(pending) == 3 and rows_in_names(pending) == 30

    # A fourth records 200 rows: one batch of about 137 KB, twice spool_max_bytes.
    sim = Sim(*common, "--rows", 200, "--stats-every-ms", 20, "--close-timeout-ms", 120000,
              *FAST_RETRY)
    try:
        first = sim.wait_sample(lambda s: s["recorded"] - s["adopted"] == 200
                                and s["retries"] > 0)
        # Let it fail a few more times with every row in hand, then bring the collector up.
        if first:
            sim.wait_sample(lambda s: s["retries"] >= first["retries"] + 3)
        collectors(db, "--rate-limit-rps", "0", port=port)
        st, err = sim.finish()
    finally:
        sim.kill()
    costs += Decimal(st["cost_usd_recorded"])
    assert sim.proc.returncode == 0, err
    assert st["dropped"] == 0 and st["rejected"] == 0, st
    assert st["recorded"] == st["sent"] == 230 and st["adopted"] == 30, st
    assert all(s["spool_bytes"] <= 65536 for s in sim.samples)
    assert_every_sample_adds_up(earlier + sim.samples, st)
    assert spool_files(spool) == []
    assert_stored_exactly(db, 230, costs)


# ---- a full disk loses nothing and reports no loss ----------------------------

def test_full_disk_spool_drops_nothing_and_stats_add_up_at_every_sample(db, collectors):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    key = db.create_key("ingest")
    mnt = tempfile.mkdtemp(prefix="vgsink-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], check=True)
    sim = None
    try:
        spool = os.path.join(mnt, "spool")
        os.makedirs(os.path.join(spool, "rejected"))
        with open(os.path.join(spool, "lock"), "w"):
            pass
        filled = 0
        with open(os.path.join(mnt, "filler"), "wb", buffering=0) as f:
            try:
                while filled < 1 << 20:  # tmpfs refuses long before this
                    f.write(b"\0" * 4096)
                    filled += 4096
            except OSError:
                pass
        assert 0 < filled < 1 << 20
        sim = Sim("--url", url, "--key", key, "--threads", 1, "--rows", 10, "--spool", spool,
                  "--stats-every-ms", 20, "--close-timeout-ms", 120000, *FAST_RETRY)
        # Unreachable for a while: every retry tries the full disk again.
        sim.wait_sample(lambda s: s["recorded"] == 10 and s["retries"] >= 20)
        collectors(db, "--rate-limit-rps", "0", port=port)
        st, err = sim.finish()
        assert spool_files(spool) == [] and spool_files(spool, "rejected") == []
    finally:
        if sim:
            sim.kill()
        subprocess.run(["umount", mnt], check=False)
        shutil.rmtree(mnt, ignore_errors=True)
    assert sim.proc.returncode == 0, err
    assert st["dropped"] == 0 and st["sent"] == st["recorded"] == 10, st
    # The disk really was full: the rows waited in memory, never in a file.
    assert all(s["spooled_rows"] == 0 for s in sim.samples)
    assert any(s["queued"] == 10 and s["retries"] > 0 for s in sim.samples)
    assert_every_sample_adds_up(sim.samples, st)
    assert_stored_exactly(db, 10, st["cost_usd_recorded"])


# ---- rejected/ counts toward spool_max_bytes -----------------------------------

def test_rejected_dir_stays_under_spool_max_bytes_and_says_what_it_removed(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    proxy = FaultProxy(c.port, lambda n: 400)
    spool = tempfile.mkdtemp(prefix="vgsink-spool-")
    cap = 32768
    try:
        sim = Sim("--url", proxy.url, "--key", key, "--threads", 1, "--rows", 200,
                  "--batch-rows", 10, "--pad-bytes", 800, "--spool", spool,
                  "--spool-max-bytes", cap, "--stats-every-ms", 20, "--close-timeout-ms", 60000,
                  "--verbose")
        try:
            st, err = sim.finish()
        finally:
            sim.kill()
    finally:
        proxy.close()
    assert sim.proc.returncode == 0, err
    kept = spool_files(spool, "rejected")
    # 20 batches of about 7 KB were refused: only the newest fit the cap.
    assert st["rejected"] == 200 and st["sent"] == 0 and st["dropped"] == 0, st
    assert dir_bytes(os.path.join(spool, "rejected")) <= cap
    assert 0 < rows_in_names(kept) < 200
    assert st["rejected_discarded"] == 200 - rows_in_names(kept), st
    assert st["rejected_bytes"] == dir_bytes(os.path.join(spool, "rejected"))
    assert "to stay under spool_max_bytes" in err
    assert_every_sample_adds_up(sim.samples, st)
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0

    # What was kept is still whole: an operator replays it.
    r = tool("vgsink-replay", spool, "--url", c.url, "--key", key, "--rejected")
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0, r.stderr
    assert rep["sent"] == rep["adopted"] == rows_in_names(kept), rep
    assert_sink_stats_add_up(rep)
    assert db.scalar("SELECT count(*) FROM cost_rows") == rows_in_names(kept)
