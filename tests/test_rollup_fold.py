"""The hourly rollup's summariser, over the real binaries: ingest appends each
batch's sums to vgc_rollup_deltas and commits; a summariser (every collector,
and `vgcollector rollup-fold`) folds them into cost_rollup_hourly; readers add
the deltas not yet folded. Every answer equals SQL over cost_rows while the
summariser lags, is killed mid-fold, runs twice at once, or folds past a batch
that commits after it."""

import signal
import subprocess
import threading
import time
import uuid

from conftest import (VGC, assert_ledger_consistent, fold_rollup, make_row, metrics_map,
                      run_vgc, sanitizer_env, wait_until)
from test_rollup_daily import (DAY, assert_exact, hour_end, iso, loaded, post_all,
                               summarise, two_collectors_sending_late_rows)
from test_rollups import prev_month_start

FOLD_OFF = ("--rollup-fold-s", "0", "--rollup-daily-interval-s", "0", "--rate-limit-rps", "0")
FOLD_FAST = ("--rollup-fold-s", "0.05", "--rollup-daily-interval-s", "1",
             "--rollup-daily-settle-s", "0", "--rate-limit-rps", "0")
SHAPES = (("day", ["tenant"]), ("day", ["project"]), ("hour", ["model"]), ("total", ["agent"]),
          ("month", ["tenant", "project"]))


def deltas(db):
    return db.scalar("SELECT count(*) FROM vgc_rollup_deltas")


def hourly_alone_equals_rows(db):
    """After a fold: cost_rollup_hourly by itself is the rows' sums."""
    assert deltas(db) == 0
    bad = db.query(
        "SELECT * FROM (SELECT date_trunc('hour', ts) AS hour, project, agent_id, tenant_id,"
        " modality, provider, model_id, count(*) AS n, sum(cost_usd) AS c,"
        " coalesce(sum(rated_price_usd), 0) AS p FROM cost_rows GROUP BY 1, 2, 3, 4, 5, 6, 7) r"
        " FULL JOIN cost_rollup_hourly h ON h.hour = r.hour AND h.project = r.project"
        " AND h.modality = r.modality AND h.agent_id IS NOT DISTINCT FROM r.agent_id"
        " AND h.tenant_id IS NOT DISTINCT FROM r.tenant_id"
        " AND h.provider IS NOT DISTINCT FROM r.provider"
        " AND h.model_id IS NOT DISTINCT FROM r.model_id"
        " WHERE (h.requests, h.cost_usd, h.rated_price_usd) IS DISTINCT FROM (r.n, r.c, r.p)"
        " LIMIT 3")
    assert bad == [], f"hourly rollup differs from cost_rows after the fold: {bad}"


def all_exact(db, c, rkey, start):
    for granularity, group_by in SHAPES:
        assert_exact(db, c, rkey, iso(start), iso(hour_end()), granularity, group_by)


def test_reads_are_exact_while_nothing_is_folded_even_over_summarised_days(db, collectors):
    """With the summariser off, every row is only in the deltas, yet every
    answer (hours, days answered from the daily and the tenant summaries,
    months, totals) equals SQL over cost_rows: a day with deltas is answered
    from its hours, never from a daily row that cannot hold them yet."""
    c = collectors(db, *FOLD_OFF)
    ikey, rkey, start = loaded(db, c)
    assert deltas(db) > 0
    assert db.scalar("SELECT count(*) FROM cost_rollup_hourly") == 0
    all_exact(db, c, rkey, start)
    # Fold and summarise the closed days, then late rows into summarised days
    # stay in the deltas only: still exact.
    summarise(db, "--rollup-daily-settle-s", "0")
    assert db.scalar("SELECT count(*) FROM cost_rollup_daily") > 0
    hourly_alone_equals_rows(db)
    late = [make_row(i, id=f"late-{i}", timestamp=start + DAY + 3600 * i + 5,
                     tenant_id=["acme", "globex", None][i % 3], cost_usd=0.0001 * (i + 1))
            for i in range(30)]
    post_all(c, ikey, late)
    assert deltas(db) > 0
    all_exact(db, c, rkey, start)
    fold_rollup(db)
    hourly_alone_equals_rows(db)
    all_exact(db, c, rkey, start)


def test_lag_is_measured_and_reads_stay_exact_while_the_fold_lock_is_held(db, collectors):
    """Another summariser holding the fold lock makes this collector skip its
    folds: /metrics shows the rows waiting and their age, answers stay exact,
    and once the lock is released the lag drains to zero."""
    c = collectors(db, "--rollup-fold-s", "0.1", "--rate-limit-rps", "0")
    ikey, rkey = db.create_key("ingest"), db.create_key("read")
    holder = db.cluster.connect(db.name)
    holder.autocommit = False
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(vgc_rollup_fold_lock_key())")
        now = time.time()
        rows = [make_row(i, id=str(uuid.uuid4()), timestamp=now - i * 60, tenant_id=f"t{i % 4}")
                for i in range(250)]
        post_all(c, ikey, rows)
        m = wait_until(lambda: (lambda m: m if m.get("vgcollector_rollup_lag_rows") == 250
                                and m["vgcollector_rollup_lag_seconds"] > 0.3 else None)(
            metrics_map(c.get("/metrics").text)), 20, "the lag gauges show 250 rows waiting")
        assert m['vgcollector_rollup_folds_total{result="skipped"}'] > 0
        assert db.scalar("SELECT count(*) FROM cost_rollup_hourly") == 0
        all_exact(db, c, rkey, prev_month_start())
    finally:
        holder.rollback()
        holder.close()
    wait_until(lambda: deltas(db) == 0, 20, "the collector folds once the lock is free")
    m = wait_until(lambda: (lambda m: m if m.get("vgcollector_rollup_lag_rows") == 0 else None)(
        metrics_map(c.get("/metrics").text)), 20, "the lag gauge drains to 0")
    assert m["vgcollector_rollup_folded_rows_total"] == 250
    assert m["vgcollector_rollup_lag_seconds"] == 0
    hourly_alone_equals_rows(db)


def fold_waiting_on_lock(db):
    """The backend of a fold that waits on a lock, if any."""
    return db.scalar("SELECT max(pid) FROM pg_stat_activity WHERE datname = current_database()"
                     " AND query LIKE 'WITH d AS (DELETE FROM vgc_rollup_deltas%%'"
                     " AND wait_event_type = 'Lock'")


def test_summariser_killed_mid_fold_loses_and_doubles_nothing(db, collectors):
    """SIGKILL while the fold has deleted its deltas but not committed: the
    deltas come back with the rollback, readers never see them missing, and
    the next summariser folds each exactly once."""
    a = collectors(db, "--rollup-fold-s", "0.1", "--rate-limit-rps", "0")
    ikey, rkey = db.create_key("ingest"), db.create_key("read")
    start = prev_month_start() - 3 * DAY
    blocker = db.cluster.connect(db.name)
    blocker.autocommit = False
    with blocker.cursor() as cur:
        cur.execute("LOCK TABLE cost_rollup_hourly IN EXCLUSIVE MODE")  # readers pass
    try:
        rows = [make_row(i, id=str(uuid.uuid4()), timestamp=start + i * 900 + 7,
                         tenant_id=f"t{i % 3}", cost_usd=0.00001 * (i % 13 + 1))
                for i in range(400)]
        post_all(a, ikey, rows)
        pid = wait_until(lambda: fold_waiting_on_lock(db), 20, "a fold blocked mid-transaction")
        all_exact(db, a, rkey, start)  # the fold's delete is not committed
        a.stop(signal.SIGKILL)
    finally:
        blocker.rollback()
        blocker.close()
    # The orphaned backend finishes its statement, then finds its client gone
    # and rolls back.
    wait_until(lambda: not db.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid),
               20, "the killed collector's fold backend ends")
    assert deltas(db) > 0, "the fold committed without its collector"
    assert db.scalar("SELECT count(*) FROM cost_rollup_hourly") == 0
    b = collectors(db, "--rollup-fold-s", "0.1", "--rate-limit-rps", "0")
    all_exact(db, b, rkey, start)
    wait_until(lambda: deltas(db) == 0, 20, "the next collector folds what was left")
    hourly_alone_equals_rows(db)
    all_exact(db, b, rkey, start)
    assert db.scalar("SELECT sum(requests) FROM cost_rollup_hourly") == 400


def test_two_collectors_and_the_cli_folding_at_once_count_every_row_once(db, collectors):
    """Two collectors folding every 50 ms and `vgcollector rollup-fold` run
    over and over, while rows (live and late) arrive through both: every row
    is in the rollup exactly once, at every answer and at the end."""
    a, b, rkey, start, threads, errors = two_collectors_sending_late_rows(
        db, collectors, FOLD_FAST, 15, 80, lambda w, k, i: str(uuid.uuid4()))
    cli = []
    while any(t.is_alive() for t in threads):
        cli.append(subprocess.run([VGC, "rollup-fold", "--db", db.conninfo],
                                  capture_output=True, text=True, timeout=60,
                                  env=sanitizer_env()))
        # One statement, one snapshot: the live hours against the rows
        # (an API answer and a later SQL query would see different rows).
        assert_ledger_consistent(db)
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert all(r.returncode == 0 for r in cli), [r.stderr for r in cli]
    assert db.scalar("SELECT count(*) FROM cost_rows") == 4 * 15 * 80
    wait_until(lambda: deltas(db) == 0, 30, "the collectors fold every delta")
    hourly_alone_equals_rows(db)
    for c in (a, b):
        all_exact(db, c, rkey, start)
    folded = sum(metrics_map(c.get("/metrics").text)["vgcollector_rollup_folded_rows_total"]
                 for c in (a, b))
    cli_rows = sum(int(r.stdout.split()[1]) for r in cli)
    assert folded + cli_rows == 4 * 15 * 80


def claim_waiting_on_lock(db):
    return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                     " AND query LIKE 'WITH claimed AS%%' AND wait_event_type = 'Lock'")


def test_a_batch_committing_after_a_later_batch_was_folded_is_folded_once(db, collectors):
    """Batches commit in another order than they began: one batch waits on an
    id another transaction holds while a later batch commits and is folded.
    When the first commits, behind that fold, its rows are in every answer at
    once and folded exactly once: there is no watermark it could land behind."""
    c = collectors(db, *FOLD_OFF)
    ikey, rkey = db.create_key("ingest"), db.create_key("read")
    c.wait_key(ikey)
    now = time.time()
    since = iso(int(now // 3600 - 1) * 3600)
    held = db.cluster.connect(db.name)
    held.autocommit = False
    with held.cursor() as cur:  # an uncommitted claim of one id of the first batch
        cur.execute("INSERT INTO cost_row_ids (id, ts) VALUES ('held-id', now())")
    first = [make_row(i, id="held-id" if i == 0 else f"first-{i}", timestamp=now - 30 - i,
                      tenant_id="acme", cost_usd=0.25) for i in range(20)]
    answer = {}
    sender = threading.Thread(target=lambda: answer.update(
        r=c.post("/v1/ingest", json=first, key=ikey)))
    sender.start()
    try:
        wait_until(lambda: claim_waiting_on_lock(db), 20, "the first batch waits on its claim")
        post_all(c, ikey, [make_row(i, id=f"second-{i}", timestamp=now - 10 - i,
                                    tenant_id="acme", cost_usd=0.5) for i in range(10)])
        assert "folded 10 cost rows" in fold_rollup(db)
        assert_exact(db, c, rkey, since, iso(hour_end()), "hour", ["tenant"])
    finally:
        held.rollback()
        held.close()
    sender.join(timeout=30)
    assert answer["r"].status_code == 200 and answer["r"].json()["accepted"] == 20, answer
    assert_exact(db, c, rkey, since, iso(hour_end()), "hour", ["tenant"])
    assert "folded 20 cost rows" in fold_rollup(db)
    hourly_alone_equals_rows(db)
    assert db.scalar("SELECT sum(requests) FROM cost_rollup_hourly") == 30
    assert_ledger_consistent(db)


def test_rollup_fold_cli_help_and_bad_flag(db):
    r = run_vgc("rollup-fold", "--help")
    assert r.returncode == 0 and "vgc_rollup_deltas" in r.stdout
    r = run_vgc("rollup-fold", "--db", db.conninfo, "--rollup-fold-max-deltas", "0")
    assert r.returncode == 2 and "rollup_fold_max_deltas" in r.stderr, r.stderr
    r = run_vgc("rollup-fold", "--db", db.conninfo)
    assert r.returncode == 0 and r.stdout.startswith("folded 0 cost rows"), r.stdout


def test_a_fold_takes_at_most_the_configured_deltas_per_transaction(db, collectors):
    """rollup_fold_max_deltas bounds one fold's transaction; the command folds
    again until none are left."""
    c = collectors(db, *FOLD_OFF)
    ikey = db.create_key("ingest")
    now = time.time()
    rows = [make_row(i, id=str(uuid.uuid4()), timestamp=now - i * 3600 - 5, tenant_id=f"t{i % 7}")
            for i in range(60)]
    post_all(c, ikey, rows)
    n = deltas(db)
    assert n >= 30
    r = run_vgc("rollup-fold", "--db", db.conninfo, "--rollup-fold-max-deltas", "7")
    assert r.returncode == 0 and r.stdout.startswith("folded 60 cost rows"), r.stdout
    assert f"({n} deltas" in r.stdout, r.stdout
    hourly_alone_equals_rows(db)


def test_truncating_the_hours_forgets_the_deltas_too(db, collectors):
    """TRUNCATE cost_rollup_hourly forgets the rollup: the deltas not yet
    folded go with it, so a reset ledger (rows, ids and hours truncated)
    reads empty, not the last second of sums."""
    c = collectors(db, *FOLD_OFF)
    post_all(c, db.create_key("ingest"), [make_row(i, id=str(uuid.uuid4())) for i in range(5)])
    assert deltas(db) > 0
    db.query("TRUNCATE cost_rollup_hourly, cost_rows, cost_row_ids")
    assert deltas(db) == 0
    assert db.scalar("SELECT count(*) FROM vgc_rollup_hourly_live") == 0
