#!/usr/bin/env python3
"""make bench-budgets: ingest rows/s with no budgets and with BENCH_BUDGETS
(default 100) budgets defined, on fresh databases of the same cluster, in
alternating rounds (A B A B ...) so both see the same machine load. Budgets
use the production defaults (budget_check_s 10, budget_eval_delay_s 1); their
scopes cover the rows' tenants, projects, providers and models, and some
thresholds are crossed during the run, so claims happen under load too.

Environment: BENCH_ROWS (default 200000), BENCH_BATCH (1000), BENCH_CONNS (4),
BENCH_POOL (4), BENCH_BUDGETS (100), BENCH_ROUNDS (3 of each)."""

import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from conftest import Collector, Db, PgCluster, run_vgc  # noqa: E402
from bench_ingest import MODELS as FLEET_MODELS, TENANTS as FLEET_TENANTS  # noqa: E402
from bench_ingest import encode_batches, fleet_mix_batches, run_ingest  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "200000"))
BATCH = int(os.environ.get("BENCH_BATCH", "1000"))
CONNS = int(os.environ.get("BENCH_CONNS", "4"))
POOL = os.environ.get("BENCH_POOL", "4")
BUDGETS = int(os.environ.get("BENCH_BUDGETS", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))

# Scopes over what the fleet mix sends (bench_ingest: 20 tenants and
# unattributed rows, one project, three provider/model pairs).
TENANTS = [t for t in FLEET_TENANTS if t is not None]
PROJECTS = ["voice", "other"]
PROVIDERS = [m[2] for m in FLEET_MODELS]
MODELS = [m[1] for m in FLEET_MODELS]


def make_bodies(seed):
    """bench-ingest's fleet mix: random UUIDv4 ids, time-local batches, 20%
    late replays, many tenants."""
    return encode_batches(fleet_mix_batches(ROWS, seed=seed, batch=BATCH))


def define_budgets(db):
    for n in range(BUDGETS):
        args = ["budgets", "set", "--db", db.conninfo, "--name", f"b{n}",
                "--period", ("day", "week", "month")[n % 3],
                # a quarter of them are crossed during the run
                "--limit-usd", "1" if n % 4 == 0 else "100000"]
        if n % 2 == 0:
            args += ["--tenant", TENANTS[n % len(TENANTS)]]
        if n % 3 == 0:
            args += ["--project", PROJECTS[n % 2]]
        if n % 5 == 0:
            args += ["--provider", PROVIDERS[n % 3]]
        if n % 7 == 0:
            args += ["--model", MODELS[n % 3]]
        r = run_vgc(*args)
        assert r.returncode == 0, r.stderr


def one_round(cluster, with_budgets, seed):
    bodies = make_bodies(seed)
    db = Db(cluster, cluster.createdb()).migrate()
    if with_budgets:
        define_budgets(db)
    c = Collector(db, args=("--pool-size", POOL, "--rate-limit-rps", "0",
                            "--log-level", "error"))
    try:
        key = db.create_key("ingest")
        elapsed, failures, _ = run_ingest(f"http://127.0.0.1:{c.port}", key, bodies, CONNS)
        assert not failures, failures[:3]
        stored = db.scalar("SELECT count(*) FROM cost_rows")
        assert stored == ROWS, f"{stored} rows stored of {ROWS}"
        if with_budgets:
            alerts = db.scalar("SELECT count(*) FROM budget_alerts")
            assert db.scalar("SELECT count(*) FROM budgets") == BUDGETS
            print(f"  (with budgets: {alerts} alerts claimed during the round)")
    finally:
        c.stop()
        db.close()
    return ROWS / elapsed


def main():
    print(f"bench-budgets: {ROWS} rows in {BATCH}-row gzip batches over {CONNS} connections,"
          f" pool_size {POOL}, {BUDGETS} budgets, {ROUNDS} alternating rounds each")
    cluster = PgCluster().start()
    without, with_ = [], []
    try:
        for r in range(ROUNDS):
            without.append(one_round(cluster, False, 2 * r))
            print(f"round {r + 1}: without budgets {without[-1]:,.0f} rows/s")
            with_.append(one_round(cluster, True, 2 * r + 1))
            print(f"round {r + 1}: with {BUDGETS} budgets {with_[-1]:,.0f} rows/s")
    finally:
        cluster.stop()
    a, b = statistics.median(without), statistics.median(with_)
    print(f"median without budgets: {a:,.0f} rows/s")
    print(f"median with {BUDGETS} budgets: {b:,.0f} rows/s")
    print(f"with/without: {b / a:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
