#!/usr/bin/env python3
"""make bench-fold: how fast the rollup summariser catches up on a backlog.

When every collector's summariser has been off (rollup_fold_s 0, or the
collectors down while a queue replays), ingest keeps appending deltas and
readers keep summing them. This measures what the catch-up costs: a backlog
of BENCH_FOLD_DELTAS delta rows shaped like the fleet's (BENCH_FOLD_TENANTS
tenants with 3 agents and 3 modalities each, over the last BENCH_FOLD_HOURS
hours, live hours denser), folded by `vgcollector rollup-fold` with
rollup_fold_max_deltas BENCH_FOLD_MAX (default 20,000), into every rollup
table. Each backlog size is folded on a fresh database, and the rollup is
checked against the deltas' sums after. A fold's work must follow
rollup_fold_max_deltas, not the backlog: deltas per second should stay flat
as the backlog grows.

Environment: BENCH_FOLD_DELTAS ("200000,1000000,2000000": comma-separated
backlog sizes), BENCH_FOLD_MAX (20000), BENCH_FOLD_TENANTS (50),
BENCH_FOLD_HOURS (120)."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from conftest import BUILD, Db, PgCluster  # noqa: E402
from bench_ingest import machine  # noqa: E402

SIZES = [int(x) for x in os.environ.get("BENCH_FOLD_DELTAS", "200000,1000000,2000000").split(",")]
MAX = int(os.environ.get("BENCH_FOLD_MAX", "20000"))
TENANTS = int(os.environ.get("BENCH_FOLD_TENANTS", "50"))
HOURS = int(os.environ.get("BENCH_FOLD_HOURS", "120"))
VGC = os.path.join(BUILD, "vgcollector")


def backlog(db, n):
    """n deltas: four in five in the last hour, the rest spread over HOURS."""
    db.query(
        "INSERT INTO vgc_rollup_deltas (hour, project, agent_id, tenant_id, modality, provider,"
        " model_id, requests, cost_usd, rated_price_usd, rated_rows)"
        " SELECT date_trunc('hour', now()) - CASE WHEN g %% 5 = 0"
        "  THEN ((g / 5) %% %s) * interval '1 hour' ELSE interval '0' END,"
        " 'default', 'agent-' || (g %% 3), 'tenant-' || ((g / 3) %% %s),"
        " (ARRAY['stt', 'llm', 'tts'])[1 + (g / 7) %% 3], 'openai', 'openai/gpt-4o-mini',"
        " 1 + g %% 4, 0.000001 * (g %% 997), 0.000002 * (g %% 997), 1 + g %% 4"
        " FROM generate_series(1, %s) g", HOURS, TENANTS, n)
    db.query("ANALYZE vgc_rollup_deltas")
    return db.query("SELECT sum(requests), sum(cost_usd) FROM vgc_rollup_deltas")[0]


def main():
    print(f"machine: {machine()}")
    print(f"bench-fold: rollup-fold catching up, rollup_fold_max_deltas {MAX:,}, {TENANTS} "
          f"tenants over {HOURS} hours", flush=True)
    pg = PgCluster().start()
    try:
        for n in SIZES:
            db = Db(pg, pg.createdb()).migrate()
            want = backlog(db, n)
            t0 = time.monotonic()
            r = subprocess.run([VGC, "rollup-fold", "--db", db.conninfo,
                                "--rollup-fold-max-deltas", str(MAX)],
                               capture_output=True, text=True, timeout=3600)
            took = time.monotonic() - t0
            assert r.returncode == 0, r.stderr
            assert db.scalar("SELECT count(*) FROM vgc_rollup_deltas") == 0
            for table in ("cost_rollup_hourly", "cost_rollup_daily", "cost_rollup_tenant_daily"):
                have = db.query(f"SELECT sum(requests), sum(cost_usd) FROM {table}")[0]
                assert have == want, f"{table} holds {have}, the deltas summed {want}"
            folds = -(-n // MAX)
            print(f"backlog {n:>10,} deltas: folded in {took:6.1f} s, {n / took:9,.0f} deltas/s, "
                  f"{took * 1000 / folds:7.1f} ms per fold of {MAX:,} ({r.stdout.strip()})",
                  flush=True)
            db.close()
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
