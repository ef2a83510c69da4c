#!/usr/bin/env python3
"""make bench-otlp: rows/s committed through POST /v1/traces (binary protobuf
OTLP, as the OpenTelemetry SDKs' http/protobuf exporters send it) next to
POST /v1/ingest on the same rows, in the same run on the same cluster.

The workload is bench-ingest's fleet mix (random ids, 20 tenants plus
unattributed, 3 agents, 3 modalities, 80% live batches and 20% replays of the
past 5 days), each row made a GenAI span with a random 16-byte traceId and
8-byte spanId; the /v1/ingest side sends the very rows those spans map to (the
same id, tenant, agent, model, units, cost, latency and metadata). Both sides
send gzip bodies of BENCH_BATCH rows over BENCH_CONNS keep-alive connections,
each into a fresh database; the two run in turn, ROUNDS times, alternating
which goes first. Each line also gives the CPU seconds per 100k rows of the
collector and of PostgreSQL, steadier than rows/s on a busy machine.

Environment: BENCH_ROWS (100000), BENCH_BATCH (1000), BENCH_CONNS (4),
BENCH_POOL (collector pool_size, 4), BENCH_ROUNDS (2)."""

import gzip
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from conftest import Collector, Db, PgCluster  # noqa: E402
from bench_ingest import cluster_cpu, fleet_mix_batches, machine, proc_cpu  # noqa: E402
from test_otlp import to_proto  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "100000"))
BATCH = int(os.environ.get("BENCH_BATCH", "1000"))
CONNS = int(os.environ.get("BENCH_CONNS", "4"))
POOL = os.environ.get("BENCH_POOL", "4")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))


def _attr(k, v):
    if isinstance(v, int):
        return {"key": k, "value": {"intValue": str(v)}}
    if isinstance(v, float):
        return {"key": k, "value": {"doubleValue": v}}
    return {"key": k, "value": {"stringValue": v}}


def as_spans(batches, seed=29):
    """Each fleet-mix batch as (OTLP request, the /v1/ingest rows the spans map to)."""
    rnd = random.Random(seed)
    out = []
    for rows in batches:
        spans, same = [], []
        for r in rows:
            trace, span = f"{rnd.getrandbits(128):032x}", f"{rnd.getrandbits(64):016x}"
            provider, model = r["model_id"].split("/", 1)
            start = int(r["timestamp"] * 1e9)
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                     "gen_ai.request.model": model, "vg.modality": r["modality"],
                     "gen_ai.usage.output_tokens": r["output_units"],
                     "gen_ai.usage.cost.amount": r["cost_usd"],
                     "gen_ai.usage.cost.currency": "USD",
                     "gen_ai.conversation.id": r["session_id"], "gen_ai.agent.name": r["agent_id"]}
            attrs["gen_ai.usage.input_tokens" if r["modality"] == "llm"
                  else "vg.input_units"] = r["input_units"]
            if r["tenant_id"]:
                attrs["vg.tenant"] = r["tenant_id"]
            s = {"traceId": trace, "spanId": span, "name": f"chat {model}",
                 "startTimeUnixNano": str(start),
                 "endTimeUnixNano": str(start + int(r["total_latency_ms"] * 1e6)),
                 "attributes": [_attr(k, v) for k, v in attrs.items()]}
            if r["status"] == "error":
                s["status"] = {"code": 2, "message": "upstream error"}
            spans.append(s)
            same.append({
                "id": f"{trace}-{span}", "timestamp": start / 1e9, "modality": r["modality"],
                "model_id": r["model_id"], "provider": provider, "project": "voice",
                "input_units": r["input_units"], "output_units": r["output_units"],
                "cached_input_units": 0, "cost_usd": r["cost_usd"], "pricing_source": "otel",
                "total_latency_ms": r["total_latency_ms"], "status": r["status"],
                "error_message": "upstream error" if r["status"] == "error" else None,
                "session_id": r["session_id"], "agent_id": r["agent_id"],
                "tenant_id": r["tenant_id"],
                "metadata": {"otel": {"trace_id": trace, "span_id": span,
                                      "service.name": "voice-bot", "scope": "agents"}}})
        req = {"resourceSpans": [{
            "resource": {"attributes": [_attr("service.name", "voice-bot"),
                                        _attr("vg.project", "voice")]},
            "scopeSpans": [{"scope": {"name": "agents"}, "spans": spans}]}]}
        out.append((req, same))
    return out


def post_all(url, key, path, ctype, bodies, conns):
    """POSTs every gzip body over conns keep-alive connections, retrying
    429/503. Returns (seconds, failures)."""
    u = urllib.parse.urlsplit(url)
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures = []

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        headers = {"Authorization": f"Bearer {key}", "Content-Encoding": "gzip",
                   "Content-Type": ctype}
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            while True:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 200 and (path != "/v1/traces" or data in (b"", b"{}")):
                    break
                if resp.status in (429, 503):
                    time.sleep(0.05)
                    continue
                with lock:
                    failures.append((resp.status, data[:200]))
                break
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, failures


def run_side(cluster, path, ctype, bodies, warm, n):
    db = Db(cluster, cluster.createdb()).migrate()
    key = db.create_key("ingest")
    c = Collector(db, args=("--pool-size", POOL, "--rate-limit-rps", "0",
                            "--db-queue-max", "1024", "--log-level", "warn"))
    post_all(c.url, key, path, ctype, warm, int(POOL))
    warmed = db.scalar("SELECT count(*) FROM cost_rows")
    col0, pg0 = proc_cpu(c.proc.pid), cluster_cpu(cluster)
    elapsed, failures = post_all(c.url, key, path, ctype, bodies, CONNS)
    col1, pg1 = proc_cpu(c.proc.pid), cluster_cpu(cluster)
    stored = db.scalar("SELECT count(*) FROM cost_rows") - warmed
    c.stop()
    db.close()
    if failures or stored != n:
        raise SystemExit(f"FAILED {path}: {len(failures)} failed batches {failures[:3]},"
                         f" {stored} rows stored of {n}")
    return n / elapsed, (col1 - col0) * 100000 / n, (pg1 - pg0) * 100000 / n


def main():
    print(f"bench-otlp: {ROWS} rows in {BATCH}-row gzip batches over {CONNS} connections,"
          f" pool_size={POOL}, {ROUNDS} rounds")
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    pairs = as_spans(fleet_mix_batches(ROWS, batch=BATCH))
    warm_pairs = as_spans(fleet_mix_batches(4 * int(POOL), batch=1, seed=5), seed=6)
    proto = [gzip.compress(to_proto(req), 6) for req, _ in pairs]
    rows = [gzip.compress(json.dumps(same).encode(), 6) for _, same in pairs]
    warm_proto = [gzip.compress(to_proto(req), 6) for req, _ in warm_pairs]
    warm_rows = [gzip.compress(json.dumps(same).encode(), 6) for _, same in warm_pairs]
    print(f"  bodies: OTLP protobuf {sum(map(len, proto)) / len(proto):,.0f} B gzip per batch,"
          f" /v1/ingest JSON {sum(map(len, rows)) / len(rows):,.0f} B")
    cluster = PgCluster(fsync=True).start()
    ratios = []
    try:
        for rnd in range(ROUNDS):
            order = ["ingest", "otlp"] if rnd % 2 == 0 else ["otlp", "ingest"]
            rate, cpu = {}, {}
            for side in order:
                if side == "otlp":
                    rate[side], *cpu[side] = run_side(cluster, "/v1/traces",
                                                      "application/x-protobuf", proto,
                                                      warm_proto, ROWS)
                else:
                    rate[side], *cpu[side] = run_side(cluster, "/v1/ingest",
                                                      "application/json", rows, warm_rows,
                                                      ROWS)
            ratios.append(rate["otlp"] / rate["ingest"])
            print(f"round {rnd + 1} ({' then '.join(order)}): /v1/traces protobuf"
                  f" {rate['otlp']:>8,.0f} rows/s   /v1/ingest {rate['ingest']:>8,.0f} rows/s"
                  f"   ratio {ratios[-1]:.2f}   CPU s per 100k rows, collector + PostgreSQL:"
                  f" traces {cpu['otlp'][0]:.2f} + {cpu['otlp'][1]:.2f},"
                  f" ingest {cpu['ingest'][0]:.2f} + {cpu['ingest'][1]:.2f}", flush=True)
    finally:
        cluster.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
