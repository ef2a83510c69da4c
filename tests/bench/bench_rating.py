#!/usr/bin/env python3
"""The backend CPU one ingest statement spends per batch, with and without
rate card rules: what rating on ingest costs, measured steadily enough on a
shared, loaded machine to see a difference of a few percent, which
`make bench-ingest`'s wall clock cannot.

The statements are the collector's own: one small ingest with
log_statement = all captures them, so the SQL measured is what this build
runs. Each iteration stages one fleet-mix batch (bench_ingest.py's workload,
1000 rows) as the collector does (its BEGIN, the staging table, COPY), runs
the statement, and reads the backend's time on CPU from
/proc/<pid>/schedstat (nanoseconds, not counting time spent waiting for a
core) before and after; then rolls back. Every configuration and statement
runs on every batch, in a shuffled order, each after a VACUUM of the tables
the statement writes (the ids another run rolled back, left dead in the id
index, would slow it), so each difference is taken over the same batch (paired) and its median reported.
`EXPLAIN` of the same statement gives its parse and plan time alone.

Environment: BENCH_RATING_ITER (200), BENCH_BATCH (1000),
BENCH_RATING_CONFIGS ("3:0,3:100": price feeds:rules per database, as
bench_ingest.py loads them), BENCH_RATING_OTHER (another build directory,
e.g. the main branch's: its statement is measured in the same run, paired)."""

import io
import os
import random
import re
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conftest  # noqa: E402
from conftest import Collector, Db, PgCluster  # noqa: E402

import bench_ingest as B  # noqa: E402

ITER = int(os.environ.get("BENCH_RATING_ITER", "200"))
BATCH = int(os.environ.get("BENCH_BATCH", "1000"))
CONFIGS = [tuple(int(x) for x in c.split(":"))
           for c in os.environ.get("BENCH_RATING_CONFIGS", "3:0,3:100").split(",")]
OTHER = os.environ.get("BENCH_RATING_OTHER", "")
SKIP = 3  # the first iterations warm caches and plans


def on_cpu_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def capture(cluster, db, vgc):
    """(begin_sql, insert statement) as the collector at vgc sends them."""
    log_path = os.path.join(cluster.dir, "pg.log")
    start = os.path.getsize(log_path)
    db.query(f"ALTER DATABASE {db.name} SET log_statement = 'all'")
    saved, conftest.VGC = conftest.VGC, vgc
    try:
        key = db.create_key("ingest")
        c = Collector(db, args=("--pool-size", "1", "--log-level", "warn"))
        row = dict(B.fleet_mix_batches(1, batch=1)[0][0], id=f"capture-{len(db.collectors)}")
        B.run_ingest(c.url, key, B.encode_batches([[row]]), 1)
        c.stop()
    finally:
        conftest.VGC = saved
        db.query(f"ALTER DATABASE {db.name} RESET log_statement")
    with open(log_path) as f:
        f.seek(start)
        log = f.read()
    stmts = re.findall(r"LOG:  (?:statement|execute [^:]*): (.*?)(?=\n\d{4}-\d\d-\d\d |\Z)",
                       log, re.S)
    begin = [s for s in stmts if "CREATE TEMP TABLE vgc_stage" in s][-1]
    insert = [s for s in stmts if s.startswith("WITH claimed") and "RETURNING 1)" in s][-1]
    return begin, insert.replace("$1::bigint", "NULL::bigint")


def main():
    print(f"bench-rating: {ITER} fleet-mix batches of {BATCH} rows, configurations"
          f" (feeds:rules) {CONFIGS}")
    print(f"machine: {B.machine()}; load average before: {os.getloadavg()[0]:.2f}")
    cluster = PgCluster(fsync=False).start()
    try:
        dbs = {}
        for feeds, rules in CONFIGS:
            db = Db(cluster, cluster.createdb()).migrate()
            B.load_feeds(db, feeds)
            B.load_rules(db, rules)
            dbs[f"{feeds} feeds {rules} rules"] = db
        first = next(iter(dbs.values()))
        begin, stmt = capture(cluster, first, conftest.VGC)
        statements = {"this build": stmt}
        if OTHER:
            statements["other build"] = capture(cluster, first, os.path.join(OTHER, "vgcollector"))[1]
        for db in dbs.values():  # the month's partition, made by an ingest
            capture(cluster, db, conftest.VGC)
        cols = ", ".join(B.COLUMNS)
        texts = [B.copy_text([b]).getvalue()
                 for b in B.fleet_mix_batches(BATCH * min(ITER, 50), batch=BATCH)]
        conns = {}
        for name, db in dbs.items():
            conn = cluster.connect(db.name)
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                conns[name] = (conn, cur.fetchone()[0])
        written = {}
        for name, db in dbs.items():
            written[name] = db.scalar(
                "SELECT string_agg(t, ', ') FROM unnest(ARRAY['cost_row_ids', 'cost_rows',"
                " 'cost_rollup_hourly', 'vgc_rollup_deltas']) t WHERE to_regclass(t) IS NOT NULL")
        runs = [(c, s, plan) for c in dbs for s in statements for plan in (False, True)]
        cpu = {r: [] for r in runs}
        rnd = random.Random(7)
        for it in range(ITER):
            order = rnd.sample(runs, len(runs))
            for name, s, plan in order:
                conn, pid = conns[name]
                with conn.cursor() as cur:
                    cur.execute(begin)
                    cur.copy_expert(f"COPY vgc_stage ({cols}) FROM STDIN",
                                    io.StringIO(texts[it % len(texts)]))
                    sql = ("EXPLAIN " if plan else "") + statements[s]
                    t0 = on_cpu_ns(pid)
                    cur.execute(sql)
                    t1 = on_cpu_ns(pid)
                    cur.fetchall()
                    cur.execute("ROLLBACK")
                    # Every run starts from the same tables: no dead index
                    # entries of the ids another run just rolled back. Only
                    # the tables the statement writes: a VACUUM of the card's
                    # tables would make PL/pgSQL plan its query again.
                    cur.execute(f"VACUUM {written[name]}")
                    if it % 20 == 19:
                        cur.execute("VACUUM pg_class, pg_attribute, pg_type, pg_depend")
                cpu[(name, s, plan)].append((t1 - t0) / 1e6)
        base = cpu[runs[0]][SKIP:]
        print(f"per batch, ms of backend CPU (median; paired difference with the first line,"
              f" median and quartiles); load average after: {os.getloadavg()[0]:.2f}")
        for r in runs:
            xs = cpu[r][SKIP:]
            d = [x - b for x, b in zip(xs, base)]
            q = statistics.quantiles(d, n=4)
            what = "parse + plan" if r[2] else "statement"
            print(f"  {r[0]:<18} {r[1]:<12} {what:<13} {statistics.median(xs):7.3f}"
                  f"   {statistics.median(d):+7.3f} ({q[0]:+.3f} .. {q[2]:+.3f})", flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
