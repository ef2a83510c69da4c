#!/usr/bin/env python3
"""make bench-ingest: rows/s committed through POST /v1/ingest (1000-row gzip
batches over several keep-alive connections) next to a raw COPY of the same
rows into a same-shaped table, in the same run on the same cluster.

Environment: BENCH_ROWS (default 1000000), BENCH_BATCH (1000), BENCH_CONNS (4),
BENCH_POOL (collector pool_size, default 4), BENCH_SPREAD_S (3600): the rows'
timestamps run in order over that many seconds before now, as a live fleet's
stream does; a large value (864000 = 10 days) models a backfill, where almost
every row lands in its own hourly rollup group."""

import gzip
import http.client
import io
import json
import os
import platform
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from conftest import Collector, Db, PgCluster  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
BATCH = int(os.environ.get("BENCH_BATCH", "1000"))
CONNS = int(os.environ.get("BENCH_CONNS", "4"))
POOL = os.environ.get("BENCH_POOL", "4")
SPREAD_S = float(os.environ.get("BENCH_SPREAD_S", "3600"))

COLUMNS = ["id", "ts", "modality", "model_id", "provider", "project", "input_units",
           "output_units", "cached_input_units", "cost_usd", "rated_price_usd",
           "pricing_source", "rate_rule", "ttfb_ms", "total_latency_ms", "status",
           "fallback_from", "error_message", "metadata", "session_id", "agent_id",
           "tenant_id", "revision", "turn_index"]


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def make_rows(n, seed=7):
    rnd = random.Random(seed)
    now = time.time()
    models = [("llm", "openai/gpt-4o-mini", "openai"), ("stt", "deepgram/nova-3", "deepgram"),
              ("tts", "cartesia/sonic", "cartesia")]
    rows = []
    for i in range(n):
        modality, model, provider = models[i % 3]
        rows.append({
            "id": f"bench-{i:08d}", "timestamp": now - SPREAD_S * (1 - i / n),
            "modality": modality, "model_id": model, "provider": provider,
            "project": f"proj-{i % 4}", "input_units": rnd.randint(10, 4000),
            "output_units": rnd.randint(0, 800), "cached_input_units": 0,
            "cost_usd": round(rnd.random() / 100, 6), "rated_price_usd": round(rnd.random() / 100, 6),
            "pricing_source": "catalog", "rate_rule": "per_token",
            "ttfb_ms": round(rnd.random() * 900, 2), "total_latency_ms": round(rnd.random() * 3000, 2),
            "status": "error" if i % 97 == 0 else "success", "fallback_from": None,
            "error_message": None, "metadata": {"tenant": f"tenant-{i % 20}", "region": "eu"},
            "session_id": f"sess-{i // 20}", "agent_id": f"agent-{i % 50}", "revision": "r1",
            "turn_index": i % 20, "tenant_id": None,
        })
    return rows


def copy_text(rows):
    def esc(v):
        if v is None:
            return "\\N"
        s = v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)
        return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    out = io.StringIO()
    for r in rows:
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["timestamp"]))
        ts += f".{int((r['timestamp'] % 1) * 1e6):06d}+00"
        vals = [r["id"], ts, r["modality"], r["model_id"], r["provider"], r["project"],
                r["input_units"], r["output_units"], r["cached_input_units"], r["cost_usd"],
                r["rated_price_usd"], r["pricing_source"], r["rate_rule"], r["ttfb_ms"],
                r["total_latency_ms"], r["status"], r["fallback_from"], r["error_message"],
                json.dumps(r["metadata"]), r["session_id"], r["agent_id"],
                r["metadata"]["tenant"], r["revision"], r["turn_index"]]
        out.write("\t".join(esc(v) for v in vals))
        out.write("\n")
    out.seek(0)
    return out


def send_all(collector, key, bodies):
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    failures = []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=120)
        headers = {"Authorization": f"Bearer {key}", "Content-Encoding": "gzip",
                   "Content-Type": "application/json"}
        while True:
            with lock:
                if not queue:
                    break
                _, body = queue.pop()
            while True:
                conn.request("POST", "/v1/ingest", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 200:
                    break
                if resp.status in (429, 503):
                    time.sleep(0.05)
                    continue
                failures.append((resp.status, data[:200]))
                break
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(CONNS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, failures


def main():
    print(f"bench-ingest: {ROWS} rows in {BATCH}-row gzip batches over {CONNS} connections,"
          f" pool_size={POOL}, timestamps spread over {SPREAD_S:.0f} s")
    print(f"machine: {machine()}")
    t0 = time.perf_counter()
    rows = make_rows(ROWS)
    bodies = [gzip.compress(json.dumps(rows[i:i + BATCH]).encode(), 6)
              for i in range(0, ROWS, BATCH)]
    print(f"setup: generated and gzipped {len(bodies)} batches in {time.perf_counter() - t0:.1f} s"
          f" ({sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB per batch)")

    cluster = PgCluster(fsync=True).start()
    try:
        db = Db(cluster, cluster.createdb()).migrate()
        key = db.create_key("ingest")
        collector = Collector(db, args=("--pool-size", POOL, "--rate-limit-rps", "0",
                                        "--db-queue-max", "1024"))
        elapsed, failures = send_all(collector, key, bodies)
        stored = db.scalar("SELECT count(*) FROM cost_rows")
        collector.stop()
        if failures or stored != ROWS:
            print(f"FAILED: {len(failures)} failed batches {failures[:3]}, {stored} rows stored")
            return 1
        ingest_rate = ROWS / elapsed

        db.query("CREATE TABLE bench_copy (LIKE cost_rows INCLUDING ALL)")
        text = copy_text(rows)
        with db.conn.cursor() as cur:
            start = time.perf_counter()
            cur.copy_expert(f"COPY bench_copy ({', '.join(COLUMNS)}) FROM STDIN", text)
            copy_elapsed = time.perf_counter() - start
        copied = db.scalar("SELECT count(*) FROM bench_copy")
        assert copied == ROWS, copied
        copy_rate = ROWS / copy_elapsed

        print(f"ingest:   {ROWS} rows committed in {elapsed:.2f} s = {ingest_rate:,.0f} rows/s"
              f" (dedup ids, partitions and hourly rollup included)")
        print(f"raw COPY: {ROWS} rows in {copy_elapsed:.2f} s = {copy_rate:,.0f} rows/s"
              f" (one connection, into LIKE cost_rows INCLUDING ALL)")
        print(f"ratio:    {ingest_rate / copy_rate:.2f} of raw COPY (target >= 0.5)")
        db.close()
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
