#!/usr/bin/env python3
"""make bench-size: the database's bytes per cost row, measured. Loads
BENCH_ROWS (1,000,000) rows of bench-ingest's fleet mix through a real
collector into a throwaway cluster, runs VACUUM ANALYZE, and prints for each
table its rows, its heap (with TOAST) and its indexes, in bytes per cost row,
and what that makes for 1 billion rows a month; the average tuple as stored
(pg_column_size, without page and line-pointer overhead or free space); and
the WAL written per row, which is what a synchronous standby receives. The rollups grow with the
number of groups (hour x tenant x agent x model ...), not with the rows, so
they are printed per rollup row. Then the cost of a one-row batch: at 100,000
workers and 1 billion rows a month a worker records about 14 rows an hour, so
each of its flushes (every second by default) carries one row, and the
collector's and PostgreSQL's CPU per request is what counts, not per row.
docs/capacity.md is built on these figures.

Environment: BENCH_ROWS (1000000), BENCH_MONTH_ROWS (1e9), BENCH_SMALL (20000
one-row batches, over 8 keep-alive connections; 0 to skip)."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_ingest import (cluster_cpu, encode_batches, fleet_mix_batches, machine,  # noqa: E402
                          proc_cpu, run_ingest)
from conftest import Collector, Db, PgCluster, run_vgc  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
MONTH_ROWS = float(os.environ.get("BENCH_MONTH_ROWS", "1e9"))
SMALL = int(os.environ.get("BENCH_SMALL", "20000"))
CHUNK = 100000  # rows generated and encoded at a time, to bound the client's memory

# Every table whose size follows the row count or the rollup groups. A
# partitioned table is summed over its partitions.
TABLES = ["cost_rows", "cost_row_ids", "cost_rollup_hourly", "cost_rollup_daily",
          "cost_rollup_tenant_hourly", "cost_rollup_tenant_daily"]


def sizes(db, table):
    """(rows, heap bytes with TOAST, index bytes) of table and its partitions."""
    return db.query(
        "SELECT sum(c.reltuples)::bigint, sum(pg_table_size(t.relid))::bigint,"
        " sum(pg_indexes_size(t.relid))::bigint FROM"
        " (SELECT relid FROM pg_partition_tree(%s::regclass) WHERE isleaf"
        "  UNION SELECT %s::regclass WHERE (SELECT relkind FROM pg_class"
        "   WHERE oid = %s::regclass) = 'r') t"
        " JOIN pg_class c ON c.oid = t.relid", table, table, table)[0]


def gb(n):
    return f"{n / 1e9:,.1f} GB"


def main():
    print(f"bench-size: {ROWS:,} fleet-mix rows through the collector; machine: {machine()};"
          f" load average before: {os.getloadavg()[0]:.2f}")
    cluster = PgCluster().start()
    try:
        db = Db(cluster, cluster.createdb()).migrate()
        key = db.create_key("ingest")
        col = Collector(db, args=("--pool-size", "4", "--rate-limit-rps", "0",
                                  "--db-queue-max", "1024", "--log-level", "warn"))
        now = time.time()
        wal0 = db.scalar("SELECT pg_current_wal_lsn()")
        loaded, took = 0, 0.0
        for seed, start in enumerate(range(0, ROWS, CHUNK)):
            n = min(CHUNK, ROWS - start)
            bodies = encode_batches(fleet_mix_batches(n, seed=100 + seed, now=now))
            elapsed, failures, accepted = run_ingest(col.url, key, bodies)
            if failures or accepted != n:
                raise SystemExit(f"FAILED: {failures[:3]}, {accepted} of {n} accepted")
            loaded += n
            took += elapsed
        small = None
        if SMALL:
            bodies = encode_batches([[r] for b in fleet_mix_batches(SMALL, seed=7, now=now)
                                     for r in b])
            c0, p0 = proc_cpu(col.proc.pid), cluster_cpu(cluster)
            elapsed, failures, accepted = run_ingest(col.url, key, bodies, conns=8)
            c1, p1 = proc_cpu(col.proc.pid), cluster_cpu(cluster)
            if failures or accepted != SMALL:
                raise SystemExit(f"FAILED: {failures[:3]}, {accepted} of {SMALL} accepted")
            small = (SMALL / elapsed, (c1 - c0) / SMALL, (p1 - p0) / SMALL)
            loaded += SMALL
        col.stop()
        wal = db.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", wal0)
        # The closed days into the daily rollups, as `serve` does in time.
        r = run_vgc("rollup-daily", "--db", db.conninfo, "--rollup-daily-settle-s", "0")
        assert r.returncode == 0, r.stderr
        db.query("VACUUM ANALYZE")
        stored = db.scalar("SELECT count(*) FROM cost_rows")
        assert stored == loaded, (stored, loaded)
        print(f"loaded {loaded:,} rows in {took:.1f} s ({loaded / took:,.0f} rows/s)")
        print(f"WAL written while loading: {int(wal):,} bytes, {float(wal) / loaded:.0f} per row")
        print(f"{'table':<28}{'rows':>12}{'tuple B':>9}{'heap B/row':>12}{'index B/row':>13}"
              f"{'heap B/cost row':>17}{'index B/cost row':>18}")
        per_cost_row = {}
        for t in TABLES:
            rows, heap, idx = sizes(db, t)
            rows = max(int(rows or 0), 0)
            per_cost_row[t] = (heap / loaded, idx / loaded)
            tup = db.scalar(f"SELECT coalesce(avg(pg_column_size(t.*)), 0) FROM {t} t")
            print(f"{t:<28}{rows:>12,}{float(tup):>9.0f}{heap / max(rows, 1):>12.1f}{idx / max(rows, 1):>13.1f}"
                  f"{heap / loaded:>17.1f}{idx / loaded:>18.1f}")
        heap = sum(per_cost_row[t][0] for t in ("cost_rows", "cost_row_ids"))
        idx = sum(per_cost_row[t][1] for t in ("cost_rows", "cost_row_ids"))
        rows_only = per_cost_row["cost_rows"][0]
        print(f"per {MONTH_ROWS:,.0f} rows a month: cost_rows heap only {gb(rows_only * MONTH_ROWS)};"
              f" with its key and the id claims (heap + indexes) {gb((heap + idx) * MONTH_ROWS)}"
              f" ({heap + idx:.0f} bytes per row)")
        if small:
            rate, col_s, pg_s = small
            print(f"one-row batches: {SMALL:,} requests at {rate:,.0f}/s over 8 connections;"
                  f" CPU per 1,000 requests: collector {col_s * 1000:.3f} s,"
                  f" PostgreSQL {pg_s * 1000:.3f} s (requests per core-second:"
                  f" collector {1 / col_s:,.0f}, PostgreSQL {1 / pg_s:,.0f})")
        db.close()
    finally:
        cluster.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
