"""Rollups for the whole company: the daily rollup (cost_rollup_daily, kept
in step by the fold of ingest's deltas, and recomputed by `vgcollector
rollup-daily` and serve's background pass for the days anything else wrote)
answers the days not listed, and every answer still equals SQL over
cost_rows: over summarised days plus the open day, with late rows into
summarised days (which stay unlisted), with a writer or a fold in flight,
with two collectors summarising at once, after retention drops a month, and
after upgrading a database that holds rows."""

import subprocess
import threading
import time

from conftest import VGC, fold_rollup, make_row, run_vgc, sanitizer_env, wait_until
from test_rollups import (MEASURES, api_key_of, api_measures, iso, jloads, prev_month_start,
                          sql_rollup, varied_rows)

DAY = 86400
# No background pass: these tests summarise with the CLI, at known moments.
NO_PASS = ("--rollup-daily-interval-s", "0", "--rate-limit-rps", "0")


def hour_end():
    return (int(time.time()) // 3600 + 1) * 3600


def summarise(db, *extra):
    """Folds the waiting deltas into the hours, then summarises the due days
    (the hours a day is summarised from are the folded ones)."""
    fold_rollup(db)
    r = run_vgc("rollup-daily", "--db", db.conninfo, *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout


def dirty_days(db):
    """The days readers answer from the hours, once the rows stored so far
    are folded (the fold keeps the daily rows in step and lists nothing)."""
    fold_rollup(db)
    return dirty_days_unfolded(db)


def dirty_days_unfolded(db):
    return [r[0] for r in db.query(
        "SELECT to_char(day AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM vgc_rollup_dirty_days"
        " ORDER BY 1")]


def list_days(db, frm, to):
    """Lists the days in [frm, to) that hold hours, as a write of the hours by
    anything but the fold does (an operator, a collector from before the fold
    kept the days in step): readers answer them from the hours until the
    daily summariser recomputes them."""
    fold_rollup(db)
    db.query("INSERT INTO vgc_rollup_dirty_days (day) SELECT DISTINCT date_trunc('day',"
             " hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM cost_rollup_hourly"
             " WHERE hour >= %s AND hour < %s ON CONFLICT DO NOTHING", iso(frm), iso(to))


def today():
    return time.strftime("%Y-%m-%d", time.gmtime())


def post_all(c, key, rows):
    for i in range(0, len(rows), 200):
        r = c.post("/v1/ingest", json=rows[i:i + 200], key=key)
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def assert_exact(db, c, rkey, frm, to, granularity, group_by):
    got = jloads(c.get("/v1/rollups", key=rkey, params={
        "from": frm, "to": to, "granularity": granularity, "group_by": ",".join(group_by)}))
    want = sql_rollup(db, granularity, group_by, frm, to)
    have = {api_key_of(r, granularity, group_by): api_measures(r) for r in got["rows"]}
    assert have == want, f"{granularity} by {group_by} from {frm} to {to}"
    for i, m in enumerate(MEASURES):
        assert api_measures(got["totals"])[i] == sum((v[i] for v in want.values()), 0), m
    return got


def loaded(db, c, n=420):
    """varied_rows over closed days around last month's start, plus rows in
    the open day; returns the keys and the whole range (to the hour's end)."""
    ikey, rkey = db.create_key("ingest"), db.create_key("read")
    rows = varied_rows(n, seed=13)
    now = time.time()
    rows += [make_row(i, id=f"open-{i}", timestamp=now - 60 - i, tenant_id=t, cost_usd=0.0013)
             for i, t in enumerate(["acme", "globex", None, "acme"])]
    post_all(c, ikey, rows)
    return ikey, rkey, prev_month_start() - 3 * DAY


def assert_exact_over_ranges(db, c, rkey, start):
    for frm, to in [(start, hour_end()),  # whole closed days + the open day
                    (start + 5 * 3600, hour_end() - 30 * DAY + 3 * 3600),  # partial ends
                    (start + 3600, start + 4 * DAY - 3600)]:  # closed days, partial ends
        for granularity in ("day", "month", "total"):
            for group_by in (["tenant"], ["project"], ["agent"], ["model"],
                             ["tenant", "modality", "provider"]):
                assert_exact(db, c, rkey, iso(frm), iso(to), granularity, group_by)


def test_answers_over_summarised_days_and_the_open_day_equal_sql_over_cost_rows(db, collectors):
    c = collectors(db, *NO_PASS)
    _, rkey, start = loaded(db, c)
    # The fold filled the days as it filled the hours: none is listed, the
    # open day included, and none needs the daily summariser.
    assert dirty_days(db) == []
    assert db.scalar("SELECT count(DISTINCT day) FROM cost_rollup_daily") == 7
    assert "summarised 0 days" in summarise(db, "--rollup-daily-settle-s", "0")
    assert_exact_over_ranges(db, c, rkey, start)
    # Every day listed (written by something else): answered from the hours,
    # then recomputed by the summariser, all but the open day.
    list_days(db, start, hour_end())
    assert len(dirty_days(db)) == 7
    assert_exact_over_ranges(db, c, rkey, start)
    out = summarise(db, "--rollup-daily-settle-s", "0")
    assert "summarised 6 days" in out, out
    assert dirty_days(db) == [today()]  # the open day is not due
    assert_exact_over_ranges(db, c, rkey, start)
    # /v1/costs reads the same source.
    r = jloads(c.get("/v1/costs", key=rkey, params={"start": iso(start), "end": iso(hour_end())}))
    assert str(r["total"]) == str(db.scalar(
        "SELECT sum(cost_usd) FROM cost_rows WHERE ts >= %s", iso(start)))


def test_clean_closed_days_are_answered_from_the_daily_table(db, collectors):
    """Proves the daily rows are what answers a clean day (and the dirty list
    what stops them): a tampered daily row shows, until the day is listed."""
    c = collectors(db, *NO_PASS)
    _, rkey, start = loaded(db, c)
    summarise(db, "--rollup-daily-settle-s", "0")
    day = iso(start + DAY)
    q = {"from": iso(start), "to": iso(start + 3 * DAY), "granularity": "day", "group_by": ""}

    def requests_on(day_iso):
        rows = jloads(c.get("/v1/rollups", key=rkey, params=q))["rows"]
        return {r["period"]: r["requests"] for r in rows}[day_iso]

    honest = requests_on(day)
    db.query("UPDATE cost_rollup_daily SET requests = requests + 1000 WHERE ctid ="
             " (SELECT ctid FROM cost_rollup_daily WHERE day = %s LIMIT 1)", day)
    assert requests_on(day) == honest + 1000
    db.query("INSERT INTO vgc_rollup_dirty_days (day) VALUES (%s)", day)
    assert requests_on(day) == honest  # a listed day comes from its hours
    summarise(db, "--rollup-daily-settle-s", "0")  # recomputes it from the hours
    assert day[:10] not in dirty_days(db)
    assert requests_on(day) == honest


def test_late_rows_into_a_summarised_day_are_in_the_next_answer(db, collectors):
    c = collectors(db, *NO_PASS)
    ikey, rkey, start = loaded(db, c)
    summarise(db, "--rollup-daily-settle-s", "0")
    late_day = start + 2 * DAY
    assert time.strftime("%Y-%m-%d", time.gmtime(late_day)) not in dirty_days(db)
    late = [make_row(i, id=f"late-{i}", timestamp=late_day + 3600 * i + 17, tenant_id=t,
                     cost_usd=0.0123456789, project="voice")
            for i, t in enumerate(["acme", "initech", None, "newco"])]
    post_all(c, ikey, late)
    # The very next answer, with no fold and no summariser pass in between.
    for granularity in ("day", "total"):
        for group_by in (["tenant"], ["project"], ["agent"], ["model"]):
            assert_exact(db, c, rkey, iso(start), iso(hour_end()), granularity, group_by)
    # Folded, the late rows are in the day's daily rows, and the day is
    # still answered from them, not sent back to its hours.
    assert time.strftime("%Y-%m-%d", time.gmtime(late_day)) not in dirty_days(db)
    assert db.scalar("SELECT sum(requests) FROM cost_rollup_daily WHERE day = %s"
                     " AND tenant_id = 'newco'", iso(late_day)) == 1
    for granularity in ("day", "total"):
        for group_by in (["tenant"], ["project"], ["agent"], ["model"]):
            assert_exact(db, c, rkey, iso(start), iso(hour_end()), granularity, group_by)
    assert "summarised 0 days" in summarise(db, "--rollup-daily-settle-s", "0")


def test_summariser_waits_for_a_writer_in_flight_on_the_day(db, collectors):
    """A writer that has stored hours of a listed day but not committed holds
    the day: the summariser must not fold the day without its rows."""
    c = collectors(db, *NO_PASS)
    ikey, rkey, start = loaded(db, c)
    summarise(db, "--rollup-daily-settle-s", "0")
    day = start + DAY
    post_all(c, ikey, [make_row(0, id="late-first", timestamp=day + 600, tenant_id="acme")])
    list_days(db, day, day + DAY)
    assert iso(day)[:10] in dirty_days(db)
    # A writer of the hours (an ingest from before the deltas), by hand, left open: its id, row and hour.
    w = db.cluster.connect(db.name)
    w.autocommit = False
    with w.cursor() as cur:
        cur.execute("INSERT INTO cost_row_ids (id, ts) VALUES ('inflight', %s)", (iso(day + 700),))
        cur.execute("INSERT INTO cost_rows (id, ts, modality, project, tenant_id, cost_usd)"
                    " VALUES ('inflight', %s, 'llm', 'voice', 'acme', 0.5)", (iso(day + 700),))
        cur.execute("INSERT INTO cost_rollup_hourly AS r (hour, project, tenant_id, modality,"
                    " requests, rated_rows, cost_usd) VALUES (date_trunc('hour', %s::timestamptz),"
                    " 'voice', 'acme', 'llm', 1, 1, 0.5) ON CONFLICT (hour, project, agent_id,"
                    " tenant_id, modality, provider, model_id) DO UPDATE SET"
                    " requests = r.requests + 1, rated_rows = r.rated_rows + 1,"
                    " cost_usd = r.cost_usd + 0.5", (iso(day + 700),))
    try:
        # The daily summariser alone: a fold would queue behind the writer's hour.
        r = run_vgc("rollup-daily", "--db", db.conninfo, "--rollup-daily-settle-s", "0")
        assert r.returncode == 0 and "being written" in r.stdout, r.stdout + r.stderr
        assert iso(day)[:10] in dirty_days(db)
    finally:
        w.commit()
        w.close()
    assert_exact(db, c, rkey, iso(start), iso(hour_end()), "day", ["tenant"])
    summarise(db, "--rollup-daily-settle-s", "0")
    assert dirty_days(db) == []
    assert_exact(db, c, rkey, iso(start), iso(hour_end()), "day", ["tenant"])


def test_summariser_waits_for_a_fold_in_flight_on_the_day(db, collectors):
    """A fold adds to a day's daily rows as it adds to its hours: the daily
    summariser must not recompute a listed day from hours a fold has written
    but not committed (its sums would then be added twice, or lost), nor
    rewrite rows the fold is adding to. The fold holds each of its days'
    locks shared from before its statement to its commit."""
    c = collectors(db, "--rollup-fold-s", "0", *NO_PASS)
    ikey, rkey, start = loaded(db, c)
    summarise(db, "--rollup-daily-settle-s", "0")
    day = start + DAY
    list_days(db, day, day + DAY)
    post_all(c, ikey, [make_row(i, id=f"late-{i}", timestamp=day + 600 + i, tenant_id="newco")
                       for i in range(3)])
    blocker = db.cluster.connect(db.name)
    blocker.autocommit = False
    with blocker.cursor() as cur:
        cur.execute("LOCK TABLE cost_rollup_hourly IN EXCLUSIVE MODE")  # readers pass
    fold = subprocess.Popen([VGC, "rollup-fold", "--db", db.conninfo], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=sanitizer_env())
    try:
        wait_until(lambda: db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'WITH d AS (DELETE FROM vgc_rollup_deltas%%'"
            " AND wait_event_type = 'Lock'"), 20, "a fold blocked after taking its days")
        r = run_vgc("rollup-daily", "--db", db.conninfo, "--rollup-daily-settle-s", "0")
        assert r.returncode == 0 and "being written" in r.stdout, r.stdout + r.stderr
        assert iso(day)[:10] in dirty_days_unfolded(db)
        assert_exact(db, c, rkey, iso(start), iso(hour_end()), "day", ["tenant"])
    finally:
        blocker.rollback()
        blocker.close()
        out, err = fold.communicate(timeout=60)
    assert fold.returncode == 0, err
    assert_exact(db, c, rkey, iso(start), iso(hour_end()), "day", ["tenant"])
    summarise(db, "--rollup-daily-settle-s", "0")
    assert dirty_days(db) == []
    assert db.scalar("SELECT sum(requests) FROM cost_rollup_daily WHERE day = %s"
                     " AND tenant_id = 'newco'", iso(day)) == 3
    assert_exact(db, c, rkey, iso(start), iso(hour_end()), "day", ["tenant"])


def two_collectors_sending_late_rows(db, collectors, args, rounds, per, id_of):
    """Two collectors started with args and four threads, two per collector,
    each posting rounds batches of per rows spread over the 144 hours from
    three days before last month; returns the collectors, the read key, the
    range's start, the threads (started) and the list their errors go to."""
    a, b = collectors(db, *args), collectors(db, *args)
    ikey, rkey = db.create_key("ingest"), db.create_key("read")
    a.wait_key(ikey)
    b.wait_key(ikey)
    start = prev_month_start() - 3 * DAY
    threads, errors = send_late_rows((a, b), ikey, start, rounds, per, id_of)
    return a, b, rkey, start, threads, errors


def send_late_rows(collectors_, ikey, start, rounds, per, id_of):
    errors = []

    def sender(w, c):
        try:
            for k in range(rounds):
                rows = [make_row(i, id=id_of(w, k, i), tenant_id=f"t{i % 5}",
                                 timestamp=start + ((w * 7 + k * 13 + i) % 144) * 3600 + 1,
                                 cost_usd=0.001 * (i % 9))
                        for i in range(per)]
                r = c.post("/v1/ingest", json=rows, key=ikey)
                if r.status_code != 200 or r.json()["accepted"] != per:
                    errors.append(r.text)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            errors.append(repr(e))

    threads = [threading.Thread(target=sender, args=(w, collectors_[w % 2])) for w in range(4)]
    for t in threads:
        t.start()
    return threads, errors


def test_two_collectors_summarising_while_late_rows_arrive_stay_exact(db, collectors):
    args = ("--rollup-daily-interval-s", "1", "--rollup-daily-settle-s", "0",
            "--rate-limit-rps", "0")
    a, b, rkey, start, threads, errors = two_collectors_sending_late_rows(
        db, collectors, args, 12, 60, lambda w, k, i: f"c{w}-{k}-{i}")
    cli = []
    # A third summariser on the command line, while both collectors run theirs
    # and fold; the days listed again before each (as writes of the hours by
    # anything but the fold would), so the folds add to days being recomputed.
    for _ in range(3):
        list_days(db, start, start + 6 * DAY)
        cli.append(subprocess.run([VGC, "rollup-daily", "--db", db.conninfo,
                                   "--rollup-daily-settle-s", "0"], capture_output=True,
                                  text=True, timeout=60, env=sanitizer_env()))
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert all(r.returncode == 0 for r in cli), [r.stderr for r in cli]
    assert db.scalar("SELECT count(*) FROM cost_rows") == 4 * 12 * 60
    wait_until(lambda: not dirty_days(db), 60, "both collectors summarise every closed day")
    assert db.scalar("SELECT count(DISTINCT day) FROM cost_rollup_daily") == 6
    for group_by in (["tenant"], ["project"], ["agent"], ["model"]):
        assert_exact(db, a, rkey, iso(start), iso(hour_end()), "day", group_by)
        assert_exact(db, b, rkey, iso(start), iso(hour_end()), "total", group_by)


def test_retention_keeps_the_daily_rows_of_a_dropped_month_like_the_hours(db, collectors):
    c = collectors(db, *NO_PASS)
    _, rkey, start = loaded(db, c)
    summarise(db, "--rollup-daily-settle-s", "0")
    old = {"from": iso(start), "to": iso(prev_month_start()), "granularity": "day",
           "group_by": "tenant"}
    before = jloads(c.get("/v1/rollups", key=rkey, params=old))
    daily_before = db.scalar("SELECT count(*) FROM cost_rollup_daily WHERE day < %s",
                             iso(prev_month_start()))
    assert len(before["rows"]) > 0 and daily_before > 0
    r = run_vgc("retention", "--db", db.conninfo, "--retention-months", "1",
                "--max-row-age-days", "28")
    assert r.returncode == 0 and "dropped cost_rows_" in r.stdout, r.stdout + r.stderr
    assert db.scalar("SELECT count(*) FROM cost_rows WHERE ts < %s", iso(prev_month_start())) == 0
    # The month's hours and days both stay as history, and still answer alike.
    assert db.scalar("SELECT count(*) FROM cost_rollup_daily WHERE day < %s",
                     iso(prev_month_start())) == daily_before
    assert jloads(c.get("/v1/rollups", key=rkey, params=old)) == before
    db.query("INSERT INTO vgc_rollup_dirty_days (day) SELECT DISTINCT day FROM cost_rollup_daily"
             " WHERE day < %s", iso(prev_month_start()))
    assert jloads(c.get("/v1/rollups", key=rkey, params=old)) == before  # from the hours
    summarise(db, "--rollup-daily-settle-s", "0")
    assert jloads(c.get("/v1/rollups", key=rkey, params=old)) == before
    newer = prev_month_start()
    assert_exact(db, c, rkey, iso(newer), iso(hour_end()), "day", ["tenant"])


def test_migration_upgrades_a_database_holding_rows(db, collectors):
    """0004 on a database that already holds hours lists every day, so answers
    stay exact at once, and the summariser then fills the days."""
    c = collectors(db, *NO_PASS)
    _, rkey, start = loaded(db, c)
    c.stop()
    # Back to before 0004, so also before 0008 (its summary follows the daily
    # table) and 0022 (its views read the list of days): the deltas folded
    # first, as the ingest before 0022 had the hours complete.
    fold_rollup(db)
    # (its triggers' WHEN names vgc_rollup_in_step: they go with it)
    db.query("DROP FUNCTION vgc_rollup_fold_begin(bigint), vgc_rollup_in_step() CASCADE")
    db.query("DELETE FROM schema_migrations WHERE version LIKE '0026%%'")
    db.query("DROP VIEW vgc_rollup_hourly_live;"
             " DROP TABLE vgc_rollup_deltas; DROP FUNCTION vgc_rollup_fold_lock_key()")
    db.query("DELETE FROM schema_migrations WHERE version LIKE '0022%%'")
    db.query("DROP TABLE cost_rollup_tenant_daily, cost_rollup_tenant_hourly, cost_rollup_daily,"
             " vgc_rollup_dirty_days")
    db.query("DROP FUNCTION vgc_rollup_tenant_refresh(timestamptz[]), vgc_rollup_tenant_follow(),"
             " vgc_rollup_tenant_follow_update(), vgc_rollup_tenant_truncate()")
    db.query("DELETE FROM schema_migrations WHERE version LIKE '0008%%'")
    db.query("DROP TRIGGER IF EXISTS cost_rollup_hourly_mark_insert ON cost_rollup_hourly;"
             " DROP TRIGGER IF EXISTS cost_rollup_hourly_mark_update ON cost_rollup_hourly;"
             " DROP TRIGGER IF EXISTS cost_rollup_hourly_mark_delete ON cost_rollup_hourly;"
             " DROP TRIGGER cost_rollup_hourly_truncate ON cost_rollup_hourly;"
             " DROP FUNCTION vgc_rollup_mark_days(), vgc_rollup_truncate_days(), vgc_rollup_serial(),"
             " vgc_rollup_day_lock_class()")
    db.query("DELETE FROM schema_migrations WHERE version LIKE '0004%%'")
    # And 0012 again, which adds its measures to the rollup tables re-created here.
    db.query("DELETE FROM schema_migrations WHERE version LIKE '0012%%'")
    # And 0021, which adds rated_rows to them.
    db.query("DELETE FROM schema_migrations WHERE version LIKE '0021%%'")
    db.migrate()
    assert len(dirty_days(db)) == 7
    c = collectors(db, *NO_PASS)
    assert_exact(db, c, rkey, iso(start), iso(hour_end()), "day", ["tenant"])
    summarise(db, "--rollup-daily-settle-s", "0")
    assert dirty_days(db) == [today()]
    assert_exact(db, c, rkey, iso(start), iso(hour_end()), "day", ["tenant"])
    # The open day stays listed from the migration, and holds no daily rows
    # but the fold's: rows folded into it and into a summarised day after the
    # upgrade keep every answer exact, and the open day listed until due (the
    # daily summariser then rewrites its rows from its hours).
    ikey = db.create_key("ingest")
    post_all(c, ikey, [make_row(i, id=f"after-{i}", tenant_id="acme", cost_usd=0.25,
                                timestamp=time.time() - 30 - i if i % 2 else start + DAY + i)
                       for i in range(6)])
    assert dirty_days(db) == [today()]
    for granularity in ("day", "total"):
        assert_exact(db, c, rkey, iso(start), iso(hour_end()), granularity, ["tenant"])


def test_serve_summarises_closed_days_in_the_background(db, collectors):
    c = collectors(db, "--rollup-daily-interval-s", "1", "--rollup-daily-settle-s", "0")
    _, rkey, start = loaded(db, c)
    list_days(db, start, start + 6 * DAY)  # the closed days, written by something else
    wait_until(lambda: dirty_days(db) == [], 60, "serve's pass summarises closed days")
    assert_exact(db, c, rkey, iso(start), iso(hour_end()), "day", ["tenant"])


def test_rollup_daily_cli_help_and_bad_flag(db):
    r = run_vgc("rollup-daily", "--help")
    assert r.returncode == 0 and "cost_rollup_daily" in r.stdout
    r = run_vgc("rollup-daily", "--db", db.conninfo, "--rollup-daily-settle-s", "soon")
    assert r.returncode == 2 and "rollup_daily_settle_s" in r.stderr, r.stderr


def test_no_data_lists_and_summarises_no_days(db):
    assert dirty_days(db) == []
    assert "summarised 0 days" in summarise(db)
