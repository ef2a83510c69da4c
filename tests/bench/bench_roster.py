#!/usr/bin/env python3
"""make bench-roster: the roster at fleet scale. 100,000 workers beat
POST /v1/agents/heartbeat every 15 s, which is 6,667 beats/s, for 60 s
(tests/tools/vgc-beatload.c: keep-alive connections to 127.0.0.1, paced per
connection), while this script reads pages of 500 (GET /v1/agents?limit=500
with random filters and cursors) and, once, loads the dashboard's fleet view
in headless Chromium.

It prints the collector's and PostgreSQL's CPU seconds per 1,000 beats (from
/proc/<pid>/stat of the collector and of the postmaster and all its children
of the bench's own cluster), the beats/s achieved, heartbeat p50/p99, the
page-of-500 p50/p95 (target: p95 <= 50 ms) and the fleet view's time to its
first 200 rows (target: under 1 s), with the load average; then, with no
beats arriving, the same pages for 15 s and their CPU per page.

The roster is seeded before the run: the 100,000 beating workers (20 tenants,
one ingest key each, 7 projects), plus 2,000 offline workers and a few
hundred dropping and rejecting ones, so the fleet view has problems to put
first. The cluster runs with fsync and synchronous_commit on, as production.

Environment: BENCH_WORKERS (100000), BENCH_RATE (beats/s, 6667),
BENCH_SECONDS (60), BENCH_CONNS (load connections, 60: a multiple of 20),
BENCH_POOL (collector pool_size, 4), BENCH_FLUSH_S (the collector's
agents_flush_s, 1; 0 stores each beat as it comes), BENCH_FSYNC (1), BENCH_DASHBOARD (1: time
the fleet view under load; 0: skip), BENCH_PERF=dir (perf record -g of the
collector and the cluster during the load, into dir)."""

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

import httpx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from conftest import BUILD, Collector, Db, PgCluster  # noqa: E402
from bench_ingest import cluster_cpu, cluster_pids, machine, perf_start, perf_stop, proc_cpu  # noqa: E402,E501

WORKERS = int(os.environ.get("BENCH_WORKERS", "100000"))
RATE = float(os.environ.get("BENCH_RATE", "6667"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
CONNS = int(os.environ.get("BENCH_CONNS", "60"))
POOL = os.environ.get("BENCH_POOL", "4")
FLUSH_S = os.environ.get("BENCH_FLUSH_S", "1")
FSYNC = os.environ.get("BENCH_FSYNC", "1") == "1"
DASHBOARD = os.environ.get("BENCH_DASHBOARD", "1") == "1"
PERF = os.environ.get("BENCH_PERF")
TENANTS = 20
PROJECTS = 7
PAGE = 500
PAGE_TARGET_MS = 50.0
FLEET_TARGET_S = 1.0
QUIET_S = 15
FLUSH_WAIT_S = float(FLUSH_S) + 0.5  # the last beats' flush


def seed(db):
    """The beating workers as vgc-beatload names them (worker w: tenant
    t<w % 20>, project p<w % 7>), seen within the last 15 s, plus offline,
    dropping and rejecting ones."""
    db.query(
        "INSERT INTO agents (tenant_id, agent_id, agent_name, project, status, active_sessions,"
        " version, region, host, started_at, last_seen, sink_recorded, sink_sent, sink_dropped,"
        " sink_rejected, sink_queued, sink_spooled_rows, sink_spool_bytes, dropped_grew_at,"
        " rejected_grew_at)"
        " SELECT 't' || lpad(mod(g, %s)::text, 2, '0'), 'w-' || lpad(g::text, 6, '0'), 'voice',"
        "  'p' || mod(g, %s), 'busy', 1, '0.13.0', 'iad', 'h-' || lpad(g::text, 6, '0'),"
        "  to_timestamp(1783200000), now() - random() * interval '15 seconds', 100, 100,"
        "  CASE WHEN mod(g, 499) = 3 THEN 5 ELSE 0 END, CASE WHEN mod(g, 701) = 5 THEN 2 ELSE 0 END,"
        "  0, 0, 0, CASE WHEN mod(g, 499) = 3 THEN now() END, CASE WHEN mod(g, 701) = 5 THEN now() END"
        " FROM generate_series(0, %s - 1) g" % (TENANTS, PROJECTS, WORKERS))
    db.query(
        "INSERT INTO agents (tenant_id, agent_id, project, status, last_seen, sink_recorded,"
        " sink_sent, sink_dropped, sink_rejected, sink_queued, sink_spooled_rows,"
        " sink_spool_bytes)"
        " SELECT 't' || lpad(mod(g, %s)::text, 2, '0'), 'x-' || lpad(g::text, 6, '0'), 'p0',"
        "  'idle', now() - interval '2 hours', 1, 1, 0, 0, 0, 0, 0"
        " FROM generate_series(0, 1999) g" % TENANTS)
    db.query("VACUUM ANALYZE agents")


def page_params(rng, cursors):
    """A random page of 500: no filter, or one or two of tenant, project,
    status and delivery; from the start or after a cursor a page gave."""
    p = {"limit": str(PAGE)}
    pick = rng.random()
    if pick < 0.2:
        pass
    elif pick < 0.4:
        p["tenant"] = f"t{rng.randrange(TENANTS):02d}"
    elif pick < 0.55:
        p["project"] = f"p{rng.randrange(PROJECTS)}"
    elif pick < 0.7:
        p["status"] = rng.choice(["offline", "busy", "idle,busy", "offline,idle"])
    elif pick < 0.85:
        p["delivery"] = rng.choice(["dropping", "rejecting", "dropping,rejecting", "ok"])
    else:
        p["tenant"] = f"t{rng.randrange(TENANTS):02d}"
        p["status"] = rng.choice(["busy", "idle", "offline"])
    if cursors and rng.random() < 0.6:
        params, cur = rng.choice(cursors)
        return dict(params, cursor=cur)
    return p


def read_pages(url, key, stop, out):
    """Pages of 500 back to back (10 a second at most) until stop is set."""
    rng = random.Random(29)
    s = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    cursors = []
    while not stop.is_set():
        params = page_params(rng, cursors)
        t0 = time.monotonic()
        r = s.get(f"{url}/v1/agents", params=params)
        ms = (time.monotonic() - t0) * 1000.0
        if r.status_code != 200:
            out["errors"].append(f"{r.status_code}: {r.text[:200]}")
            continue
        body = r.json()
        out["ms"].append(ms)
        kind = ",".join(sorted(k for k in params if k != "limit"))
        out["by_kind"].setdefault(kind, []).append(ms)
        out["rows"] += len(body["agents"])
        if body.get("next_cursor"):
            base = {k: v for k, v in params.items() if k != "cursor"}
            cursors.append((base, body["next_cursor"]))
            del cursors[:-200]
        time.sleep(max(0.0, 0.1 - ms / 1000.0))
    s.close()


def fleet_view_s(url, key):
    """Seconds from navigation to the fleet view's first 200 rows drawn, as
    tests/test_dashboard_fleet_budgets.py measures it, with the problem rows
    first checked."""
    from cdp import Browser
    from datetime import datetime, timedelta, timezone

    today = datetime.now(timezone.utc).date()
    frm, to = (today - timedelta(days=29)).isoformat(), (today + timedelta(days=1)).isoformat()
    b = Browser()
    try:
        p = b.new_page(1280, 800)
        p.goto("about:blank")
        t0 = time.monotonic()
        p.goto(f"{url}/?view=fleet&from={frm}&to={to}#key={key}")
        p.wait("document.querySelectorAll('tr[data-agent-id]').length === 200", 30)
        took = time.monotonic() - t0
        first = p.eval("[...document.querySelectorAll('tr[data-agent-id]')].slice(0, 5)"
                       ".map(r => r.dataset.status)")
        return took, first
    finally:
        b.close()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p * (len(v) - 1)))] if v else float("nan")


def main():
    cluster = PgCluster(fsync=FSYNC).start()
    tmp = tempfile.mkdtemp(prefix="vgc-bench-roster-")
    c = None
    try:
        db = Db(cluster, cluster.createdb()).migrate()
        keys = [db.create_key("ingest", tenant=f"t{t:02d}") for t in range(TENANTS)]
        rk = db.create_key("read")
        keyfile = os.path.join(tmp, "keys")
        with open(keyfile, "w") as f:
            f.write("\n".join(keys) + "\n")
        t0 = time.monotonic()
        seed(db)
        print(f"seeded {WORKERS + 2000} workers in {time.monotonic() - t0:.1f} s", flush=True)
        c = Collector(db, args=["--pool-size", POOL, "--rate-limit-rps", "0",
                                "--agents-max-per-tenant", str(WORKERS), "--agents-flush-s", FLUSH_S,
                                "--log-level", "error"])
        pm, kids = cluster_pids(cluster)
        perf = perf_start([c.proc.pid, pm] + kids, os.path.join(PERF, "roster.perf")) \
            if PERF else None
        load0 = os.getloadavg()
        col0, pg0, w0 = proc_cpu(c.proc.pid), cluster_cpu(cluster), time.monotonic()
        loadgen = subprocess.Popen(
            [os.path.join(BUILD, "vgc-beatload"), "--port", str(c.port), "--keys", keyfile,
             "--rate", str(RATE), "--seconds", str(SECONDS), "--conns", str(CONNS),
             "--workers", str(WORKERS)], stdout=subprocess.PIPE, text=True)
        stop = threading.Event()
        pages = {"ms": [], "rows": 0, "errors": [], "by_kind": {}}
        reader = threading.Thread(target=read_pages, args=(c.url, rk, stop, pages))
        reader.start()
        fleet = None
        if DASHBOARD:
            time.sleep(SECONDS / 2)
            try:
                fleet = fleet_view_s(c.url, rk)
            except Exception as e:  # noqa: BLE001 (no Chromium: say so, keep the figures)
                fleet = (None, str(e)[:200])
        out, _ = loadgen.communicate(timeout=SECONDS + 60)
        col1, pg1, w1 = proc_cpu(c.proc.pid), cluster_cpu(cluster), time.monotonic()
        load1 = os.getloadavg()
        stop.set()
        reader.join()
        if perf:
            perf_stop(perf)
        time.sleep(FLUSH_WAIT_S)
        stored = db.scalar("SELECT count(*) FROM agents WHERE last_seen > now() - interval '20 s'")
        # The same pages with no beats arriving, and their CPU: on a shared
        # machine the wall-clock figures under load follow the scheduler.
        quiet = {"ms": [], "rows": 0, "errors": [], "by_kind": {}}
        qstop = threading.Event()
        qcol0, qpg0 = proc_cpu(c.proc.pid), cluster_cpu(cluster)
        qt = threading.Thread(target=read_pages, args=(c.url, rk, qstop, quiet))
        qt.start()
        time.sleep(QUIET_S)
        qstop.set()
        qt.join()
        qcol, qpg = proc_cpu(c.proc.pid) - qcol0, cluster_cpu(cluster) - qpg0
        beats = json.loads(out)
        ok = max(1, beats["ok"])
        print(f"machine: {machine()}; load average {load0[0]:.2f} before, {load1[0]:.2f} after")
        print(f"heartbeats: {beats['ok']} answered 200 of {beats['sent']} sent in "
              f"{beats['seconds']:.0f} s = {beats['beats_per_s']:.0f} beats/s (target "
              f"{RATE:.0f}); 429 {beats['status_429']}, 503 {beats['status_503']}, other "
              f"{beats['status_other']}, I/O errors {beats['io_errors']}, latest send "
              f"{beats['late_max_ms']:.0f} ms behind schedule")
        print(f"heartbeat latency: p50 {beats['p50_ms']:.1f} ms, p99 {beats['p99_ms']:.1f} ms, "
              f"max {beats['max_ms']:.1f} ms ({CONNS} connections, pool_size {POOL}, agents_flush_s {FLUSH_S})")
        print(f"CPU per 1,000 beats: collector {(col1 - col0) / ok * 1000:.3f} s, PostgreSQL "
              f"{(pg1 - pg0) / ok * 1000:.3f} s; CPU use over {w1 - w0:.0f} s: collector "
              f"{(col1 - col0) / (w1 - w0):.2f} cores, PostgreSQL {(pg1 - pg0) / (w1 - w0):.2f}"
              f" cores")
        print(f"workers seen in the last 20 s: {stored} of {WORKERS}")
        ms = pages["ms"]
        print(f"pages of {PAGE}: {len(ms)} read, p50 {pct(ms, 0.5):.1f} ms, p95 "
              f"{pct(ms, 0.95):.1f} ms, max {max(ms) if ms else float('nan'):.1f} ms "
              f"(target p95 <= {PAGE_TARGET_MS:.0f} ms); {len(pages['errors'])} errors"
              + (f": {pages['errors'][0]}" if pages["errors"] else ""))
        print("  by filter: " + "; ".join(
            f"{k or 'none'} n={len(v)} p50 {pct(v, 0.5):.0f} p95 {pct(v, 0.95):.0f} ms"
            for k, v in sorted(pages["by_kind"].items())))
        qn = max(1, len(quiet["ms"]))
        print(f"pages of {PAGE} with no beats arriving: {len(quiet['ms'])} read, p50 "
              f"{pct(quiet['ms'], 0.5):.1f} ms, p95 {pct(quiet['ms'], 0.95):.1f} ms; CPU per page:"
              f" collector {qcol / qn * 1000:.1f} ms, PostgreSQL {qpg / qn * 1000:.1f} ms")
        if fleet and fleet[0] is not None:
            print(f"fleet view under load: first 200 rows in {fleet[0]:.2f} s (target < "
                  f"{FLEET_TARGET_S:.0f} s), first rows' status {fleet[1]}")
        elif fleet:
            print(f"fleet view: not measured ({fleet[1]})")
        failed = []
        if not ms or pct(ms, 0.95) > PAGE_TARGET_MS:
            failed.append("page p95")
        if pages["errors"] or beats["status_other"] or beats["io_errors"]:
            failed.append("errors")
        if failed:
            print(f"bench-roster: missed: {', '.join(failed)}", file=sys.stderr)
            return 1
        return 0
    finally:
        if c:
            c.stop()
        cluster.stop()


if __name__ == "__main__":
    print(f"bench-roster: {WORKERS} workers, {RATE:.0f} beats/s for {SECONDS:.0f} s "
          f"(started {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC)", flush=True)
    sys.exit(main())
