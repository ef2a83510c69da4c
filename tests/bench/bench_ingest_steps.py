#!/usr/bin/env python3
"""make bench-ingest-steps: what each step of the ingest transaction costs
PostgreSQL, and what each alternative design of a step would cost, as
backend CPU per 1000 rows of the fleet mix (bench_ingest.fleet_mix_batches:
random UUIDv4 ids, 80% live batches, 20% replays of the past 5 days, many
tenants). CPU of the backend process (/proc/PID/stat), not wall time, so the
figures hold on a shared machine.

Each variant writes its own copy of the tables, first filled with
BENCH_PREFILL rows (default 1,000,000) so the indexes have a realistic depth,
then takes BENCH_BATCHES batches (default 60) of 1000 rows, one transaction
each, and the mean is printed:

- stage: creating the temporary staging table (catalog rows written and
  deleted each transaction), and the COPY of the batch into it, as text (what
  the collector sends) and as binary;
- claim: the id claim, into `cost_row_ids (id text COLLATE "C")` as now, and
  into a claim table keyed by `uuid` (16 bytes, not 36);
- rows: the batch into the month-partitioned `cost_rows` by
  `INSERT ... SELECT` from the stage (one heap insert and one WAL record per
  row), and by COPY straight into `cost_rows` (heap_multi_insert: one WAL
  record per page of rows), which only a collector that priced every row
  itself could use;
- rollup: the batch's hourly sums upserted into `cost_rollup_hourly` (the
  design before the deltas), and appended to `vgc_rollup_deltas` (now), with
  the summariser's fold of one second of deltas (BENCH_FOLD_BATCHES, 8) per
  batch, into the hours, the days and the two narrow summaries as the
  collector's fold writes them (schema/0026_rollup_fold_in_step.sql);
- raw COPY: the whole batch by COPY into `LIKE cost_rows INCLUDING ALL`, the
  reference the ingest ratio is taken against.
"""

import io
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from conftest import Collector, Db, PgCluster, make_row  # noqa: E402
from bench_ingest import COLUMNS, copy_text, fleet_mix_batches, machine  # noqa: E402

PREFILL = int(os.environ.get("BENCH_PREFILL", "1000000"))
BATCHES = int(os.environ.get("BENCH_BATCHES", "60"))
FOLD_BATCHES = int(os.environ.get("BENCH_FOLD_BATCHES", "8"))
HZ = os.sysconf("SC_CLK_TCK")

KEYS = "project, agent_id, tenant_id, modality, provider, model_id"
SUMS = ("count(*), count(*) FILTER (WHERE status = 'error'),"
        " count(*) FILTER (WHERE status = 'fallback'), sum(cost_usd),"
        " coalesce(sum(rated_price_usd), 0), sum(input_units), sum(output_units),"
        " sum(cached_input_units), coalesce(sum(book_cost_usd), 0), count(book_cost_usd),"
        " count(rated_price_usd)")
MEASURES = ("requests, errors, fallbacks, cost_usd, rated_price_usd, input_units,"
            " output_units, cached_input_units, book_cost_usd, priced_rows, rated_rows")
STAGE = ("CREATE TEMP TABLE stage (LIKE cost_rows INCLUDING DEFAULTS) ON COMMIT DROP")


def fold_statement():
    """The summariser's fold as collector/rollup_fold.c builds it: the deltas
    deleted and their sums added to every rollup table in one statement."""
    ms = [m.strip() for m in MEASURES.split(",")]
    day = "date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"

    def upsert(name, table, timecol, time_expr, keys):
        return (f", {name} AS (INSERT INTO {table} AS r ({timecol}, {keys}, {MEASURES})"
                f" SELECT {time_expr}, {keys}, {', '.join(f'sum({m})' for m in ms)} FROM s"
                f" GROUP BY 1, {keys} ORDER BY 1, {keys} ON CONFLICT ({timecol}, {keys})"
                f" DO UPDATE SET {', '.join(f'{m} = r.{m} + excluded.{m}' for m in ms)})")
    return ("WITH d AS (DELETE FROM vgc_rollup_deltas RETURNING *),"
            f" s AS (SELECT hour, {KEYS}, {', '.join(f'sum({m}) AS {m}' for m in ms)}"
            f" FROM d GROUP BY hour, {KEYS})"
            + upsert("h", "cost_rollup_hourly", "hour", "hour", KEYS)
            + upsert("dy", "cost_rollup_daily", "day", day, KEYS)
            + upsert("th", "cost_rollup_tenant_hourly", "hour", "hour", "tenant_id, project")
            + upsert("td", "cost_rollup_tenant_daily", "day", day, "tenant_id, project")
            + " SELECT count(*) FROM d")


def backend_cpu(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
    with open(f"/proc/{pid}/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / HZ


def text_of(batch):
    return copy_text([batch]).getvalue()


def run(conn, steps):
    """Runs steps (callables taking a cursor) in one transaction."""
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        for s in steps:
            s(cur)
        cur.execute("COMMIT")


def copy_into(table, data, binary=False):
    def step(cur):
        if binary:
            cur.copy_expert(f"COPY {table} FROM STDIN (FORMAT binary)", io.BytesIO(data))
        else:
            cur.copy_expert(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN", io.StringIO(data))
    return step


def sql(text):
    return lambda cur: cur.execute(text)


def measure(db, name, make_steps, batches, baseline_steps=None):
    """Backend CPU ms per 1000 rows of the steps, less the same transaction's
    baseline steps (the staging) run alone on the same batch: summed over
    every batch (the kernel counts CPU in 10 ms ticks)."""
    conn = db.conn
    base_s = full_s = 0.0
    rows = 0
    for i, b in enumerate(batches):
        steps = make_steps(i, b)
        base = baseline_steps(i, b) if baseline_steps else []
        t0 = backend_cpu(conn)
        run(conn, base)
        t1 = backend_cpu(conn)
        run(conn, base + steps)
        t2 = backend_cpu(conn)
        base_s += t1 - t0
        full_s += t2 - t1
        rows += len(b)
    return (full_s - base_s) * 1000 * 1000 / rows


def ingest_statement(cluster, db):
    """The collector's own ingest statement (the fresh form), as PostgreSQL
    logs it when a real `vgcollector serve` stores one row."""
    db.query(f"ALTER DATABASE {db.name} SET log_min_duration_statement = 0")
    key = db.create_key("ingest")
    c = Collector(db, args=("--rollup-fold-s", "0"))
    r = c.post("/v1/ingest", json=[make_row(0, id=str(uuid.uuid4()))], key=key)
    assert r.status_code == 200, r.text
    c.stop()
    db.query(f"ALTER DATABASE {db.name} RESET log_min_duration_statement")
    with open(os.path.join(cluster.dir, "pg.log")) as f:
        log = f.read()
    m = re.search(r"execute <unnamed>: (WITH claimed AS .*)", log)
    return m.group(1).replace("$1::bigint", "1::bigint")


def prefill(db, rows):
    db.query("SELECT vgc_ensure_partition(now() - make_interval(days => d))"
             " FROM generate_series(0, 6) d")
    with db.conn.cursor() as cur:
        cur.copy_expert(f"COPY cost_rows ({', '.join(COLUMNS)}) FROM STDIN", copy_text([rows]))
    db.query("INSERT INTO cost_row_ids (id, ts) SELECT id, ts FROM cost_rows")
    db.query("CREATE TABLE claim_uuid (id uuid PRIMARY KEY, ts timestamptz NOT NULL)")
    db.query("INSERT INTO claim_uuid SELECT id::uuid, ts FROM cost_rows")
    db.query(f"INSERT INTO cost_rollup_hourly (hour, {KEYS}, {MEASURES})"
             f" SELECT date_trunc('hour', ts), {KEYS}, {SUMS} FROM cost_rows"
             f" GROUP BY 1, {KEYS} ORDER BY 1, {KEYS}")
    db.query("CREATE TABLE raw_copy (LIKE cost_rows INCLUDING ALL)")
    db.query("INSERT INTO raw_copy SELECT * FROM cost_rows")
    db.query("VACUUM ANALYZE")


def main():
    print(f"bench-ingest-steps: backend CPU ms per 1000 rows, over {BATCHES} batches"
          f" after {PREFILL:,} rows, fleet mix")
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    cluster = PgCluster(fsync=True).start()
    try:
        db = Db(cluster, cluster.createdb()).migrate()
        db.query("SET TimeZone = 'UTC'")
        all_rows = [r for b in fleet_mix_batches(PREFILL + 1000 * BATCHES * 3) for r in b]
        pre, rest = all_rows[:PREFILL], all_rows[PREFILL:]
        # Each variant that writes cost_rows or the claims takes its own rows.
        sets = [[rest[k * 1000 * BATCHES + j * 1000:k * 1000 * BATCHES + (j + 1) * 1000]
                 for j in range(BATCHES)] for k in range(3)]
        prefill(db, pre)
        statement = ingest_statement(cluster, db).replace("FROM vgc_stage", "FROM stage")
        texts = [[text_of(b) for b in s] for s in sets]
        stage = lambda k: lambda i, b: [sql(STAGE), copy_into("stage", texts[k][i])]  # noqa: E731
        with db.conn.cursor() as cur:  # the binary form of each batch of set 0
            binaries = []
            for t in texts[0]:
                cur.execute("BEGIN")
                cur.execute(STAGE)
                cur.copy_expert(f"COPY stage ({', '.join(COLUMNS)}) FROM STDIN", io.StringIO(t))
                out = io.BytesIO()
                cur.copy_expert("COPY stage TO STDOUT (FORMAT binary)", out)
                binaries.append(out.getvalue())
                cur.execute("ROLLBACK")
        out = {}
        empty = lambda i, b: [sql(STAGE)]  # noqa: E731
        out["stage: CREATE TEMP TABLE ... ON COMMIT DROP, once per transaction"] = measure(
            db, "stage_create", lambda i, b: [sql(STAGE)], sets[0], None)
        out["stage: COPY text into the staging table"] = measure(
            db, "stage_text", lambda i, b: [copy_into("stage", texts[0][i])], sets[0], empty)
        out["stage: COPY binary into the staging table"] = measure(
            db, "stage_bin", lambda i, b: [copy_into("stage", binaries[i], binary=True)],
            sets[0], empty)
        # The staging table's alternative: the batch as one array parameter
        # per column, unnested in the statement (no table, no catalog rows).
        arrays = []
        for t in texts[0]:
            cols = list(zip(*(line.split("\t") for line in t.splitlines())))
            arrays.append(["{" + ",".join(
                "NULL" if v == "\\N" else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                for v in col) + "}" for col in cols])
        types = [t for _, t in db.query(
            "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns"
            " c JOIN pg_attribute a ON a.attrelid = 'cost_rows'::regclass"
            " AND a.attname = c.column_name WHERE c.table_name = 'cost_rows'"
            " AND c.table_schema = current_schema() ORDER BY c.ordinal_position")
                 if _ in COLUMNS]
        names = [n for n, _ in db.query(
            "SELECT column_name, 1 FROM information_schema.columns WHERE table_name = 'cost_rows'"
            " AND table_schema = current_schema() ORDER BY ordinal_position") if n in COLUMNS]
        unnest = ("SELECT count(*) FROM (SELECT * FROM unnest("
                  + ", ".join(f"%s::{t}[]" for t in types) + f") AS u({', '.join(names)})) x")
        order = [COLUMNS.index(n) for n in names]
        out["stage: the batch as array parameters, unnested (no staging table)"] = measure(
            db, "stage_unnest", lambda i, b: [lambda cur, i=i: cur.execute(
                unnest, [arrays[i][k] for k in order])], sets[0], None)
        out["plan: planning the ingest statement (EXPLAIN), once per transaction"] = measure(
            db, "plan", lambda i, b: [lambda cur: cur.execute(
                "EXPLAIN " + statement)], sets[0], stage(0))
        out["claim: INSERT ... SELECT into cost_row_ids (text ids, as now)"] = measure(
            db, "claim_text", lambda i, b: [sql(
                "INSERT INTO cost_row_ids (id, ts) SELECT id, ts FROM stage"
                " ORDER BY id COLLATE \"C\"")], sets[0], stage(0))
        out["claim: INSERT ... SELECT into a uuid-keyed claim table"] = measure(
            db, "claim_uuid", lambda i, b: [sql(
                "INSERT INTO claim_uuid (id, ts) SELECT id::uuid, ts FROM stage"
                " ORDER BY 1")], sets[0], stage(0))
        out["rows: INSERT ... SELECT into cost_rows (as now, before pricing)"] = measure(
            db, "rows_insert", lambda i, b: [sql("INSERT INTO cost_rows SELECT * FROM stage")],
            sets[1], stage(1))
        out["rows: COPY straight into cost_rows (multi-insert)"] = measure(
            db, "rows_copy", lambda i, b: [copy_into("cost_rows", texts[2][i])], sets[2], None)
        out["rollup: upsert of the batch's sums into cost_rollup_hourly (before)"] = measure(
            db, "rollup_upsert", lambda i, b: [sql(
                f"INSERT INTO cost_rollup_hourly AS r (hour, {KEYS}, {MEASURES})"
                f" SELECT date_trunc('hour', ts), {KEYS}, {SUMS} FROM stage"
                f" GROUP BY 1, {KEYS} ORDER BY 1, {KEYS} ON CONFLICT (hour, {KEYS}) DO UPDATE"
                " SET requests = r.requests + excluded.requests,"
                " cost_usd = r.cost_usd + excluded.cost_usd")], sets[0], stage(0))
        out["rollup: append the batch's sums to vgc_rollup_deltas (now)"] = measure(
            db, "rollup_deltas", lambda i, b: [sql(
                f"INSERT INTO vgc_rollup_deltas (hour, {KEYS}, {MEASURES})"
                f" SELECT date_trunc('hour', ts), {KEYS}, {SUMS} FROM stage GROUP BY 1, {KEYS}")],
            sets[0], stage(0))
        # The fold, per batch: one fold of FOLD_BATCHES batches' deltas,
        # divided by that many batches.
        fold_s, fold_rows = 0.0, 0
        conn = db.conn
        for j in range(0, BATCHES - FOLD_BATCHES, FOLD_BATCHES):
            for i in range(j, j + FOLD_BATCHES):
                run(conn, stage(0)(i, sets[0][i]) + [sql(
                    f"INSERT INTO vgc_rollup_deltas (hour, {KEYS}, {MEASURES})"
                    f" SELECT date_trunc('hour', ts), {KEYS}, {SUMS} FROM stage"
                    f" GROUP BY 1, {KEYS}")])
            t0 = backend_cpu(conn)
            run(conn, [sql("SELECT vgc_rollup_fold_begin(1000000)"), sql(fold_statement())])
            fold_s += backend_cpu(conn) - t0
            fold_rows += sum(len(sets[0][i]) for i in range(j, j + FOLD_BATCHES))
        out[f"rollup: the fold, per batch (one fold per {FOLD_BATCHES} batches)"] = \
            fold_s * 1000 * 1000 / fold_rows
        out["raw COPY of the batch into LIKE cost_rows INCLUDING ALL (the reference)"] = measure(
            db, "raw", lambda i, b: [copy_into("raw_copy", texts[1][i])], sets[1], None)
        for k, v in out.items():
            print(f"  {v:7.2f} ms  {k}")
        # What pipeline mode could save: the ingest transaction makes about
        # six round trips (begin and horizon, COPY, savepoint, the statement,
        # COMMIT, and the rejects' COPY when there are any).
        with db.conn.cursor() as cur:
            t0 = time.perf_counter()
            for _ in range(2000):
                cur.execute("SELECT 1")
            rtt = (time.perf_counter() - t0) / 2000 * 1000
        print(f"  {rtt:7.3f} ms  one round trip (SELECT 1 over the Unix socket, wall time); six"
              f" per transaction: {6 * rtt:.2f} ms per 1000-row batch")
    finally:
        cluster.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
