#!/usr/bin/env python3
"""make bench-pooled (also run by make bench-ingest): rows/s committed through
POST /v1/ingest with the collector on PostgreSQL directly, and with it behind
pgbouncer in pool_mode = transaction, in the same run on the same cluster.
The two alternate (direct, pooled, direct, pooled, ...), each on a fresh
database, and the median of each is compared: pooled must be within 10%.

The workload is bench-ingest's fleet mix (bench_ingest.fleet_mix_batches:
random UUIDv4 ids, 1000-row batches each within 10 minutes, 80% live and 20%
replays from the past 5 days, 20 tenants and unattributed rows), sent as gzip
over BENCH_CONNS keep-alive connections. A batch answered 5xx is resent
(ingest is idempotent by id) and counted.

Environment: BENCH_ROWS per run (default 200000), BENCH_BATCH (1000),
BENCH_CONNS (4), BENCH_POOL (collector pool_size, 4), BENCH_ROUNDS (3),
BENCH_BOUNCER_POOL (pgbouncer default_pool_size, 8)."""

import http.client
import json
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "scale"))
from conftest import Collector, Db, PgCluster  # noqa: E402
from parts import Pgbouncer  # noqa: E402
from bench_ingest import encode_batches, fleet_mix_batches  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "200000"))
BATCH = int(os.environ.get("BENCH_BATCH", "1000"))
CONNS = int(os.environ.get("BENCH_CONNS", "4"))
POOL = os.environ.get("BENCH_POOL", "4")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BOUNCER_POOL = int(os.environ.get("BENCH_BOUNCER_POOL", "8"))
RESENDS_MAX = 20


def send_all(port, key, bodies):
    """Posts bodies over CONNS connections; returns (seconds, resends)."""
    lock = threading.Lock()
    queue = list(enumerate(bodies))
    stats = {"resends": 0, "failed": None}

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                   "Content-Encoding": "gzip"}
        while True:
            with lock:
                if not queue or stats["failed"]:
                    break
                _, body = queue.pop()
            for attempt in range(RESENDS_MAX):
                try:
                    conn.request("POST", "/v1/ingest", body=body, headers=headers)
                    r = conn.getresponse()
                    text = r.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                    status, text = None, b""
                else:
                    status = r.status
                if status == 200:
                    answer = json.loads(text)
                    if answer["rejected"]:
                        with lock:
                            stats["failed"] = f"rows rejected: {text[:300]!r}"
                    break
                with lock:
                    stats["resends"] += 1
                time.sleep(0.01)
            else:
                stats["failed"] = f"{status}: {text[:200]!r}"
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if stats["failed"]:
        raise SystemExit(f"bench-pooled: a batch failed {RESENDS_MAX} times: {stats['failed']}")
    return time.monotonic() - t0, stats["resends"]


def one_run(cluster, bouncer, pooled, bodies):
    db = Db(cluster, cluster.createdb()).migrate()
    # Both over a unix socket: the collector and pgbouncer share a host, as
    # the collector and PostgreSQL do in the direct run.
    conninfo = bouncer.conninfo(db.name, unix=True) if pooled else db.conninfo
    key = db.create_key("ingest")
    c = Collector(None, args=["--db", conninfo, "--db-direct", db.conninfo, "--pool-size", POOL,
                              "--rate-limit-rps", "0", "--log-level", "error"])
    try:
        secs, resends = send_all(c.port, key, bodies)
        stored = db.scalar("SELECT count(*) FROM cost_rows")
        assert stored == ROWS, f"{stored} rows stored, {ROWS} sent"
    finally:
        c.stop()
        db.close()
    return ROWS / secs, resends


def main():
    cluster = PgCluster().start()
    bouncer = Pgbouncer(cluster, pool_size=BOUNCER_POOL).start()
    try:
        figures = {"direct": [], "pooled": []}
        resends = {"direct": 0, "pooled": 0}
        for rnd in range(ROUNDS):
            for mode in ("direct", "pooled"):
                bodies = encode_batches(fleet_mix_batches(ROWS, seed=rnd * 2 + (mode == "pooled"),
                                                            batch=BATCH))
                rate, n = one_run(cluster, bouncer, mode == "pooled", bodies)
                figures[mode].append(rate)
                resends[mode] += n
                print(f"round {rnd + 1} {mode:6}: {rate:10.0f} rows/s ({n} batches resent)",
                      flush=True)
        direct = statistics.median(figures["direct"])
        pooled = statistics.median(figures["pooled"])
        ratio = pooled / direct
        print(f"median direct {direct:.0f} rows/s, through pgbouncer (transaction mode) "
              f"{pooled:.0f} rows/s: {ratio:.1%} of direct; resent batches: direct "
              f"{resends['direct']}, pooled {resends['pooled']} "
              f"({ROWS} rows/run, {BATCH}-row batches, {CONNS} connections, pool_size {POOL})")
        if ratio < 0.9:
            print("bench-pooled: pooled is more than 10% below direct", file=sys.stderr)
            return 1
        return 0
    finally:
        bouncer.destroy()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
