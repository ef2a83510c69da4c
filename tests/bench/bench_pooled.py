#!/usr/bin/env python3
"""make bench-pooled (also run by make bench-ingest): rows/s committed through
POST /v1/ingest with the collector on PostgreSQL directly, and with it behind
pgbouncer in pool_mode = transaction, in the same run on the same cluster.
The two alternate (direct, pooled, direct, pooled, ...), each on a fresh
database, and the median of each is compared: pooled must be within 10%.

The workload is this file's own minimal generator: 1000-row gzip batches of
rows with random UUIDv4 ids, each batch's timestamps within one second (a live
fleet's stream), over BENCH_CONNS keep-alive connections. A batch answered
5xx is resent (ingest is idempotent by id) and counted.

Environment: BENCH_ROWS per run (default 200000), BENCH_BATCH (1000),
BENCH_CONNS (4), BENCH_POOL (collector pool_size, 4), BENCH_ROUNDS (3),
BENCH_BOUNCER_POOL (pgbouncer default_pool_size, 8)."""

import gzip
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "scale"))
from conftest import Collector, Db, PgCluster  # noqa: E402
from parts import Pgbouncer  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "200000"))
BATCH = int(os.environ.get("BENCH_BATCH", "1000"))
CONNS = int(os.environ.get("BENCH_CONNS", "4"))
POOL = os.environ.get("BENCH_POOL", "4")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BOUNCER_POOL = int(os.environ.get("BENCH_BOUNCER_POOL", "8"))
RESENDS_MAX = 20


def batches(n_rows, batch_rows, seed):
    """gzip'd JSON bodies of batch_rows rows each; every batch's rows share
    one second, batches walk forward in time towards now."""
    rnd = random.Random(seed)
    n_batches = (n_rows + batch_rows - 1) // batch_rows
    start = time.time() - n_batches - 60
    out = []
    for b in range(n_batches):
        t0 = start + b
        rows = []
        for i in range(min(batch_rows, n_rows - b * batch_rows)):
            rows.append({
                "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                "timestamp": t0 + rnd.random(),
                "modality": "llm", "provider": "openai",
                "model_id": rnd.choice(["gpt-4o-mini", "gpt-4o", "o3-mini"]),
                "project": rnd.choice(["voice", "support", "sales"]),
                "agent_id": f"agent-{rnd.randrange(50)}",
                "tenant_id": f"tenant-{rnd.randrange(10)}",
                "input_units": rnd.randrange(100, 4000), "output_units": rnd.randrange(10, 800),
                "cached_input_units": 0,
                "cost_usd": rnd.randrange(1, 99999) / 1e5,
                "rated_price_usd": rnd.randrange(1, 99999) / 1e5,
                "pricing_source": "catalog", "rate_rule": "per_token",
                "ttfb_ms": 420.5, "total_latency_ms": 1830.25, "status": "success",
                "session_id": f"sess-{rnd.randrange(1000)}", "turn_index": i,
            })
        out.append(gzip.compress(json.dumps(rows).encode(), 1))
    return out


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
                bodies = batches(ROWS, BATCH, seed=rnd * 2 + (mode == "pooled"))
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
