#!/usr/bin/env python3
"""make bench-ingest: rows/s committed through POST /v1/ingest next to a raw
COPY of the same rows (text, one stream) into `LIKE cost_rows INCLUDING ALL`,
in the same run on the same cluster, and the CPU each side spent. The CPU
ratio (raw COPY's CPU per row over ingest's, collector and PostgreSQL
together) is steadier than the wall-clock ratio on a busy machine.

The default workload is the fleet mix, what the ratio is judged on:
random UUIDv4 ids; 1000-row batches each covering at most 10 minutes; 80% of
batches live (the last 10 minutes), 20% spool replays from a random hour of the
past 5 days; 20 tenants plus unattributed rows, 3 agents, 3 modalities; sent
gzipped over 4 keep-alive connections. The summariser folds the rollup deltas
as it does in `serve` (every rollup_fold_s, 1 s); the CPU figures run until it
has folded the last of them, and the run checks the hourly rollup against
cost_rows. The second line is the best case:
sequential ids `bench-00000001`, ... with timestamps in order over the last hour.

Environment: BENCH_ROWS (200000), BENCH_BATCH (1000), BENCH_CONNS (4),
BENCH_POOL (collector pool_size, 4), BENCH_WORKLOADS ("fleet,sequential"),
BENCH_PERF (a directory: `perf record -g` the collector and the cluster's
backends during each ingest run, one perf.data per workload), BENCH_FEEDS
("0"; a comma list: each workload runs once per count, with that many price
feeds in the price book, up to 3; with 3 the book prices every row of the
workload, so the run measures the pricing join at its busiest), BENCH_RULES
("0"; a comma list: each workload and feed count runs once per count, with
that many rate card rules, up to 100; every row is rated either way, by a
rule or by the default markup).

Other scripts import fleet_mix_batches, sequential_batches, encode_batches
and run_ingest to send the same workload another way (through pgbouncer)."""

import gzip
import http.client
import io
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from conftest import VGC, Collector, Db, PgCluster, metrics_map  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "200000"))
BATCH = int(os.environ.get("BENCH_BATCH", "1000"))
CONNS = int(os.environ.get("BENCH_CONNS", "4"))
POOL = os.environ.get("BENCH_POOL", "4")
WORKLOADS = os.environ.get("BENCH_WORKLOADS", "fleet,sequential").split(",")
PERF_DIR = os.environ.get("BENCH_PERF", "")
FEEDS = [int(n) for n in os.environ.get("BENCH_FEEDS", "0").split(",")]
RULES = [int(n) for n in os.environ.get("BENCH_RULES", "0").split(",")]

COLUMNS = ["id", "ts", "modality", "model_id", "provider", "project", "input_units",
           "output_units", "cached_input_units", "cost_usd", "rated_price_usd",
           "pricing_source", "rate_rule", "ttfb_ms", "total_latency_ms", "status",
           "fallback_from", "error_message", "metadata", "session_id", "agent_id",
           "tenant_id", "revision", "turn_index"]

MODELS = [("llm", "openai/gpt-4o-mini", "openai"), ("stt", "deepgram/nova-3", "deepgram"),
          ("tts", "cartesia/sonic", "cartesia")]
AGENTS = ["agent-support", "agent-sales", "agent-billing"]
TENANTS = [f"tenant-{i:02d}" for i in range(20)] + [None]  # None: unattributed
LIVE_S = 600            # a live batch: the last 10 minutes
BATCH_SPAN_S = 600      # no batch covers more than 10 minutes
REPLAY_DAYS = 5         # spool replays: a random hour of the past 5 days
REPLAY_SHARE = 0.2


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
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def _row(rnd, rid, ts, tenant, agent, k):
    modality, model, provider = MODELS[k % 3]
    return {
        "id": rid, "timestamp": ts, "modality": modality, "model_id": model,
        "provider": provider, "project": "voice", "input_units": rnd.randint(10, 4000),
        "output_units": rnd.randint(0, 800), "cached_input_units": 0,
        "cost_usd": round(rnd.random() / 100, 6), "rated_price_usd": round(rnd.random() / 100, 6),
        "pricing_source": "catalog", "rate_rule": "per_token",
        "ttfb_ms": round(rnd.random() * 900, 2), "total_latency_ms": round(rnd.random() * 3000, 2),
        "status": "error" if rnd.random() < 0.01 else "success", "fallback_from": None,
        "error_message": None, "metadata": {"region": "eu"},
        "session_id": f"sess-{rnd.getrandbits(32):08x}", "agent_id": agent,
        "revision": "r1", "turn_index": k % 20, "tenant_id": tenant,
    }


def fleet_mix_batches(n_rows, seed=13, batch=BATCH, now=None):
    """The fleet mix: a list of batches (lists of row dicts, each
    row as the sinks send it), n_rows in all. Deterministic for a seed and now."""
    rnd = random.Random(seed)
    now = time.time() if now is None else now
    batches = []
    for start in range(0, n_rows, batch):
        n = min(batch, n_rows - start)
        if rnd.random() < REPLAY_SHARE:
            hour = now - rnd.uniform(3600, REPLAY_DAYS * 86400)
            hour -= hour % 3600
            lo = hour + rnd.uniform(0, 3600 - 60)
            hi = min(lo + rnd.uniform(60, BATCH_SPAN_S), hour + 3600 - 1e-3)
        else:
            hi = now - rnd.uniform(0, 5)
            lo = hi - LIVE_S + 5
        stamps = sorted(rnd.uniform(lo, hi) for _ in range(n))
        rows = []
        for k, ts in enumerate(stamps):
            rid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            rows.append(_row(rnd, rid, ts, rnd.choice(TENANTS), rnd.choice(AGENTS),
                             rnd.randrange(3)))
        batches.append(rows)
    return batches


def sequential_batches(n_rows, seed=7, batch=BATCH, now=None):
    """The best case: ids bench-00000000, bench-00000001, ... and timestamps
    in order over the last hour, as the bench used to send."""
    rnd = random.Random(seed)
    now = time.time() if now is None else now
    rows = [_row(rnd, f"bench-{i:08d}", now - 3600 * (1 - i / n_rows), TENANTS[i % 21],
                 AGENTS[i % 3], i) for i in range(n_rows)]
    return [rows[i:i + batch] for i in range(0, n_rows, batch)]


def encode_batches(batches):
    """Each batch as a gzip JSON body, as the sinks send it."""
    return [gzip.compress(json.dumps(b).encode(), 6) for b in batches]


def run_ingest(collector_url, key, batches, conns=CONNS):
    """POSTs every batch to collector_url/v1/ingest over conns keep-alive
    connections, retrying 429/503. batches: row lists, or bodies from
    encode_batches (encode first to keep gzip out of the timing). Returns
    (seconds, failures, accepted)."""
    bodies = [b if isinstance(b, bytes) else gzip.compress(json.dumps(b).encode(), 6)
              for b in batches]
    url = urllib.parse.urlsplit(collector_url)
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures = []
    accepted = [0]

    def worker():
        if url.scheme == "https":
            import ssl
            conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=120,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        headers = {"Authorization": f"Bearer {key}", "Content-Encoding": "gzip",
                   "Content-Type": "application/json"}
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            while True:
                conn.request("POST", "/v1/ingest", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 200:
                    with lock:
                        accepted[0] += json.loads(data)["accepted"]
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
    return time.perf_counter() - start, failures, accepted[0]


def copy_text(batches):
    def esc(v):
        if v is None:
            return "\\N"
        s = v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)
        return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    out = io.StringIO()
    for b in batches:
        for r in b:
            ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["timestamp"]))
            ts += f".{int(round((r['timestamp'] % 1) * 1e6)) % 1000000:06d}+00"
            vals = [r["id"], ts, r["modality"], r["model_id"], r["provider"], r["project"],
                    r["input_units"], r["output_units"], r["cached_input_units"],
                    r["cost_usd"], r["rated_price_usd"], r["pricing_source"], r["rate_rule"],
                    r["ttfb_ms"], r["total_latency_ms"], r["status"], r["fallback_from"],
                    r["error_message"], json.dumps(r["metadata"]), r["session_id"],
                    r["agent_id"], r["tenant_id"], r["revision"], r["turn_index"]]
            out.write("\t".join(esc(v) for v in vals))
            out.write("\n")
    out.seek(0)
    return out


# ---- CPU accounting from /proc ----------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid):
    """(ppid, utime+stime, cutime+cstime) in seconds, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK,
            (int(fields[13]) + int(fields[14])) / TICK)


def proc_cpu(pid):
    st = _stat(pid)
    return st[1] if st else 0.0


def postmaster_pid(cluster):
    with open(os.path.join(cluster.data, "postmaster.pid")) as f:
        return int(f.readline())


def cluster_pids(cluster):
    pm = postmaster_pid(cluster)
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st and st[0] == pm:
                kids.append(int(d))
    return pm, kids


def cluster_cpu(cluster):
    """CPU seconds of the postmaster, its live children, and the children it
    has reaped (backends that ended)."""
    pm, kids = cluster_pids(cluster)
    st = _stat(pm)
    return st[1] + st[2] + sum(proc_cpu(k) for k in kids)


# ---- the run ----------------------------------------------------------------

def perf_start(pids, out):
    return subprocess.Popen(["perf", "record", "-g", "-o", out, "-p",
                             ",".join(str(p) for p in pids)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_stop(p):
    p.send_signal(signal.SIGINT)
    p.wait(timeout=120)


def price_feeds(count):
    """count voice-prices feeds (up to 3), one per provider of MODELS: its
    model of the workload among 20 others, each with a rate that changed 30
    days ago, as a real catalogue holds."""
    feeds = []
    meters = {"llm": [("text_input", "token", "0.00000015"),
                      ("cached_text_input", "token", "0.000000075"),
                      ("text_output", "token", "0.0000006")],
              "stt": [("audio_input", "second", "0.0000716"), ("request", "request", "0.00001")],
              "tts": [("text_input", "character", "0.000015")]}
    old = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 400 * 86400))
    new = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86400))
    for modality, model, provider in MODELS[:count]:
        models = []
        for i in range(21):
            mid = model.split("/", 1)[1] if i == 0 else f"{model.split('/', 1)[1]}-v{i}"
            rates = []
            for meter, unit, amount in meters[modality]:
                rates.append({"meter": meter, "unit": unit, "amount": amount,
                              "effective_from": old})
                rates.append({"meter": meter, "unit": unit,
                              "amount": format(Decimal(amount) * Decimal("0.9"), "f"),
                              "effective_from": new})
            models.append({"id": mid, "modality": modality, "rates": rates})
        feeds.append({"provider": provider, "currency": "USD", "models": models})
    return feeds


def load_feeds(db, count):
    paths = []
    for i, feed in enumerate(price_feeds(count)):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench-feed-{os.getpid()}-{i}.json")
        with open(path, "w") as f:
            json.dump(feed, f)
        paths.append(path)
    if paths:
        r = subprocess.run([VGC, "prices", "import", *paths, "--db", db.conninfo],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"prices import failed: {r.stderr}")
        for p in paths:
            os.unlink(p)


def rate_rules(count):
    """count rate card rules (up to 100), as an operator's card holds them:
    per tenant and modality (60), per plan (10, with half the tenants on a
    plan), per provider and model (20, 3 naming the workload's models), per
    modality and provider (10, naming providers not in the workload)."""
    rules = []
    for t in TENANTS[:20]:
        for modality, _, _ in MODELS:
            rules.append(("cost_plus", {"tenant_id": t, "modality": modality,
                                        "markup": f"1.{len(rules) % 9 + 1}"}))
    for i in range(10):
        rules.append(("fixed", {"plan": f"plan-{i}", "modality": "stt",
                                "fixed": "0.006", "unit": "minute"}))
    for i in range(20):
        modality, model, provider = MODELS[i % 3]
        name = model.split("/", 1)[1] if i < 3 else f"{model.split('/', 1)[1]}-v{i}"
        rules.append(("cost_plus", {"provider": provider, "model": name, "markup": "1.25",
                                    "basis": "book" if i % 2 else "recorded"}))
    for i in range(10):
        modality, _, provider = MODELS[i % 3]
        rules.append(("cost_plus", {"modality": modality, "provider": f"{provider}-{i}",
                                    "markup": "1.1"}))
    return rules[:count]


def load_rules(db, count):
    for kind, scope in rate_rules(count):
        cols = ", ".join(["kind"] + list(scope))
        marks = ", ".join(["%s"] * (len(scope) + 1))
        db.query(f"INSERT INTO rate_card_rules ({cols}) VALUES ({marks})",
                 kind, *scope.values())
    for i, t in enumerate(TENANTS[:20:2]):
        db.query("INSERT INTO tenant_plans VALUES (%s, %s)", t, f"plan-{i}")


def bench_one(cluster, name, batches, feeds=0, rules=0):
    n = sum(len(b) for b in batches)
    bodies = encode_batches(batches)
    db = Db(cluster, cluster.createdb()).migrate()
    load_feeds(db, feeds)
    load_rules(db, rules)
    key = db.create_key("ingest")
    collector = Collector(db, args=("--pool-size", POOL, "--rate-limit-rps", "0",
                                    "--db-queue-max", "1024", "--log-level", "warn"))
    # Warm up: every pool worker connects, so the run measures steady state.
    warm = [[dict(batches[0][0], id=f"warmup-{i}")] for i in range(4 * int(POOL))]
    run_ingest(collector.url, key, warm, int(POOL))
    perf = None
    if PERF_DIR:
        os.makedirs(PERF_DIR, exist_ok=True)
        pm, kids = cluster_pids(cluster)
        perf = perf_start([collector.proc.pid, pm] + kids,
                          os.path.join(PERF_DIR, f"perf-{name}.data"))
        time.sleep(1)
    col0, pg0 = proc_cpu(collector.proc.pid), cluster_cpu(cluster)
    elapsed, failures, accepted = run_ingest(collector.url, key, bodies, CONNS)
    # The summariser (rollup_fold_s, 1 s) folds the ingest's rollup deltas
    # while the run goes on; the CPU counted runs until it has folded the
    # last of them, so the rollup's whole cost is in the figures.
    done = time.perf_counter()
    lag_at_end = db.scalar("SELECT coalesce(sum(requests), 0) FROM vgc_rollup_deltas")
    while db.scalar("SELECT count(*) FROM vgc_rollup_deltas"):
        time.sleep(0.02)
    catch_up = time.perf_counter() - done
    col1, pg1 = proc_cpu(collector.proc.pid), cluster_cpu(cluster)
    if perf:
        perf_stop(perf)
    unequal = db.scalar(
        "SELECT count(*) FROM (SELECT date_trunc('hour', ts) AS hour, project, agent_id,"
        " tenant_id, modality, provider, model_id, count(*) AS n, sum(cost_usd) AS c"
        " FROM cost_rows GROUP BY 1, 2, 3, 4, 5, 6, 7) r FULL JOIN cost_rollup_hourly h"
        " ON h.hour = r.hour AND h.project = r.project AND h.modality = r.modality"
        " AND h.agent_id IS NOT DISTINCT FROM r.agent_id"
        " AND h.tenant_id IS NOT DISTINCT FROM r.tenant_id"
        " AND h.provider IS NOT DISTINCT FROM r.provider"
        " AND h.model_id IS NOT DISTINCT FROM r.model_id"
        " WHERE (h.requests, h.cost_usd) IS DISTINCT FROM (r.n, r.c)")
    stored = db.scalar("SELECT count(*) FROM cost_rows WHERE id NOT LIKE 'warmup-%%'")
    ruled = db.scalar("SELECT count(*) FROM cost_rows WHERE id NOT LIKE 'warmup-%%'"
                      " AND rate_rule NOT LIKE 'default:%%'")
    priced = db.scalar("SELECT count(book_cost_usd) FROM cost_rows"
                       " WHERE id NOT LIKE 'warmup-%%'")
    m = metrics_map(collector.get("/metrics").text)
    claims = {p: int(m[f'vgcollector_ingest_claims_total{{path="{p}"}}'])
              for p in ("fresh", "resend")}
    collector.stop()
    time.sleep(1)  # the backends' statistics reach pg_stat once they are idle
    upd, hot = db.query("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                        " WHERE relname = 'cost_rollup_hourly'")[0]
    if unequal:
        raise SystemExit(f"FAILED: {unequal} hourly rollup groups differ from cost_rows")
    if failures or stored != n or accepted != n:
        raise SystemExit(f"FAILED: {len(failures)} failed batches {failures[:3]},"
                         f" {accepted} accepted, {stored} rows stored of {n}")

    db.query("CREATE TABLE bench_copy (LIKE cost_rows INCLUDING ALL)")
    text = copy_text(batches)
    cp0 = cluster_cpu(cluster)
    with db.conn.cursor() as cur:
        start = time.perf_counter()
        cur.copy_expert(f"COPY bench_copy ({', '.join(COLUMNS)}) FROM STDIN", text)
        copy_elapsed = time.perf_counter() - start
    cp1 = cluster_cpu(cluster)
    assert db.scalar("SELECT count(*) FROM bench_copy") == n
    db.close()
    ingest_rate, copy_rate = n / elapsed, n / copy_elapsed
    per = 100000 / n
    # On a shared machine the wall-clock ratio follows the neighbours' load;
    # the CPU each side spent per row does much less so.
    cpu_ratio = (cp1 - cp0) / max((col1 - col0) + (pg1 - pg0), 1e-9)
    print(f"{name:<10} feeds {feeds} ({100 * priced / n:.0f}% priced) rules {rules}"
          f" ({100 * ruled / n:.0f}% by a rule)"
          f" ingest {ingest_rate:>9,.0f} rows/s   raw COPY {copy_rate:>9,.0f} rows/s"
          f"   ratio {ingest_rate / copy_rate:.2f}   CPU ratio {cpu_ratio:.2f}"
          f"   CPU s per 100k rows: collector"
          f" {(col1 - col0) * per:.2f}, PostgreSQL {(pg1 - pg0) * per:.2f}"
          f" (raw COPY: PostgreSQL {(cp1 - cp0) * per:.2f}); rollup lag at the last answer"
          f" {lag_at_end:,} rows, folded {catch_up:.2f} s later; rollup updates {upd:,},"
          f" {100 * hot / max(upd, 1):.0f}% HOT; id claims fresh {claims['fresh']:,},"
          f" resend {claims['resend']:,}", flush=True)
    return ingest_rate / copy_rate


LABELS = {"fleet": "fleet mix (random UUIDv4 ids, 80% live / 20% replays of the past 5 days)",
          "sequential": "best case (sequential ids, timestamps in order over the last hour)"}


def main():
    print(f"bench-ingest: {ROWS} rows in {BATCH}-row gzip batches over {CONNS} connections,"
          f" pool_size={POOL}")
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    cluster = PgCluster(fsync=True).start()
    try:
        for name in WORKLOADS:
            gen = fleet_mix_batches if name == "fleet" else sequential_batches
            print(f"  {name}: {LABELS[name]}")
            batches = gen(ROWS)
            for feeds in FEEDS:
                for rules in RULES:
                    bench_one(cluster, name, batches, feeds, rules)
    finally:
        cluster.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
