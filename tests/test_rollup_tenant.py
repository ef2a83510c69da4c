"""Company-wide answers: cost_rollup_tenant_daily (migration 0008), the
per-(day, tenant, project) sums of cost_rollup_daily kept by triggers, and
cost_rollup_tenant_hourly, the same per hour of the summarised days, answer
reads whose group_by and filters are all tenant or project (whole days and
partial days); every other read falls back to cost_rollup_daily and the hours. Every answer still equals SQL over cost_rows:
over partial days at both ends, with late rows into a closed day, and after
upgrading a database that holds summarised days."""

import time

from conftest import fold_rollup, make_row
from test_rollup_daily import (DAY, NO_PASS, assert_exact, dirty_days, hour_end, loaded,
                               post_all, summarise, today)
from test_rollups import MEASURES, api_key_of, api_measures, iso, jloads, sql_rollup

# (query parameters, SQL condition over cost_rows, its arguments)
NARROW_FILTERS = [
    ({}, "", ()),
    ({"tenant": "acme"}, "AND tenant_id = %s", ("acme",)),
    ({"tenant": ""}, "AND tenant_id IS NULL", ()),
    ({"tenant": "acme,", "project": "voice,ops"},
     "AND (tenant_id = %s OR tenant_id IS NULL) AND project IN (%s, %s)", ("acme", "voice", "ops")),
]
# Filters the narrow summary cannot serve: these must read cost_rollup_daily.
WIDE_FILTERS = [
    ({"agent": "agent-a"}, "AND agent_id = %s", ("agent-a",)),
    ({"modality": "llm", "tenant": "acme"}, "AND modality = %s AND tenant_id = %s",
     ("llm", "acme")),
    ({"model": ""}, "AND model_id IS NULL", ()),
]


def assert_filtered_exact(db, c, rkey, frm, to, granularity, group_by, params, where, args):
    got = jloads(c.get("/v1/rollups", key=rkey, params={
        "from": frm, "to": to, "granularity": granularity, "group_by": ",".join(group_by),
        **params}))
    want = sql_rollup(db, granularity, group_by, frm, to, where, args)
    have = {api_key_of(r, granularity, group_by): api_measures(r) for r in got["rows"]}
    assert have == want, f"{granularity} by {group_by} {params} from {frm} to {to}"
    for i, m in enumerate(MEASURES):
        assert api_measures(got["totals"])[i] == sum((v[i] for v in want.values()), 0), m
    return got


def ranges(start):
    """Hour-aligned ranges whose ends cut days: partial days at both ends."""
    return [(start + 5 * 3600, hour_end()),  # partial first day ... today's hours
            (start + 3600, start + 4 * DAY - 3600),  # closed days only, partial ends
            (start + 13 * 3600, start + 2 * DAY + 7 * 3600),
            (start + 2 * DAY + 5 * 3600, hour_end())]  # starts inside start + 2 days


def test_company_answers_over_partial_days_equal_sql_over_cost_rows(db, collectors):
    c = collectors(db, *NO_PASS)
    _, rkey, start = loaded(db, c)
    summarise(db, "--rollup-daily-settle-s", "0")
    assert dirty_days(db) == []
    # Six closed days and the open one, kept by the fold.
    assert db.scalar("SELECT count(DISTINCT day) FROM cost_rollup_tenant_daily") == 7
    for frm, to in ranges(start):
        for granularity in ("day", "month", "total"):
            for group_by in (["tenant"], ["project"], ["tenant", "project"], ["project", "tenant"],
                             []):
                for params, where, args in NARROW_FILTERS + WIDE_FILTERS:
                    assert_filtered_exact(db, c, rkey, iso(frm), iso(to), granularity, group_by,
                                          params, where, args)


def test_company_answers_read_the_tenant_summary_and_other_reads_fall_back(db, collectors):
    """Proves which table answers: a tampered narrow row shows in reads the
    narrow summary covers, and in no other read; a listed day hides it."""
    c = collectors(db, *NO_PASS)
    _, rkey, start = loaded(db, c)
    summarise(db, "--rollup-daily-settle-s", "0")
    day = iso(start + DAY)
    frm, to = iso(start + 5 * 3600), iso(start + 3 * DAY + 3600)
    project = db.scalar("SELECT project FROM cost_rollup_tenant_daily WHERE day = %s"
                        " AND tenant_id = 'acme' ORDER BY project LIMIT 1", day)

    def acme_requests(period=day, **params):
        q = {"from": frm, "to": to, "granularity": "day", "group_by": "tenant", **params}
        rows = jloads(c.get("/v1/rollups", key=rkey, params=q))["rows"]
        return {(r["period"], r["tenant"]): r["requests"] for r in rows}[(period, "acme")]

    covered = [{}, {"tenant": "acme"}, {"project": project}, {"tenant": "acme,globex"}]
    wide = [{"agent": "agent-a,agent-b,agent-c,"}, {"modality": "stt,llm,tts"},
            {"provider": "deepgram,whisper,openai,anthropic,cartesia,elevenlabs,"}]
    honest = {str(p): acme_requests(**p) for p in covered + wide}
    db.query("UPDATE cost_rollup_tenant_daily SET requests = requests + 1000"
             " WHERE day = %s AND tenant_id = 'acme' AND project = %s", day, project)
    try:
        for p in covered:
            assert acme_requests(**p) == honest[str(p)] + 1000, f"{p} not read from the summary"
        for p in wide:
            assert acme_requests(**p) == honest[str(p)], f"{p} read the narrow summary"
        # Other group columns and /v1/costs never read it either.
        assert_exact(db, c, rkey, frm, to, "day", ["tenant", "agent"])
        assert_exact(db, c, rkey, frm, to, "total", ["model"])
        costs = jloads(c.get("/v1/costs", key=rkey, params={"start": frm, "end": to}))
        assert str(costs["total"]) == str(db.scalar(
            "SELECT sum(cost_usd) FROM cost_rows WHERE ts >= %s AND ts < %s", frm, to))
        db.query("INSERT INTO vgc_rollup_dirty_days (day) VALUES (%s)", day)
        assert acme_requests() == honest["{}"]  # a listed day comes from its hours
    finally:
        db.query("UPDATE cost_rollup_tenant_daily SET requests = requests - 1000"
                 " WHERE day = %s AND tenant_id = 'acme' AND project = %s", day, project)
    summarise(db, "--rollup-daily-settle-s", "0")

    # The partial first day [start + 5 h, start + 1 day) comes from the narrow hours.
    first = iso(start)
    hour, project = db.query("SELECT hour, project FROM cost_rollup_tenant_hourly WHERE"
                             " hour >= %s AND hour < %s AND tenant_id = 'acme' ORDER BY hour"
                             " LIMIT 1", frm, day)[0]
    covered = [{}, {"tenant": "acme"}, {"project": project}, {"tenant": "acme,globex"}]
    honest = {str(p): acme_requests(first, **p) for p in covered + wide}
    db.query("UPDATE cost_rollup_tenant_hourly SET requests = requests + 1000"
             " WHERE hour = %s AND tenant_id = 'acme' AND project = %s", hour, project)
    try:
        for p in covered:
            assert acme_requests(first, **p) == honest[str(p)] + 1000, f"{p} not from the hours"
        for p in wide:
            assert acme_requests(first, **p) == honest[str(p)], f"{p} read the narrow hours"
        db.query("INSERT INTO vgc_rollup_dirty_days (day) VALUES (%s)", first)
        assert acme_requests(first) == honest["{}"]  # a listed day: from cost_rollup_hourly
    finally:
        db.query("UPDATE cost_rollup_tenant_hourly SET requests = requests - 1000"
                 " WHERE hour = %s AND tenant_id = 'acme' AND project = %s", hour, project)


def test_late_rows_into_a_closed_day_reach_company_answers_and_the_summary(db, collectors):
    c = collectors(db, *NO_PASS)
    ikey, rkey, start = loaded(db, c)
    summarise(db, "--rollup-daily-settle-s", "0")
    late_day = start + 2 * DAY
    late = [make_row(i, id=f"late-{i}", timestamp=late_day + 3600 * i + 17, tenant_id=t,
                     cost_usd=0.0123456789, project="voice")
            for i, t in enumerate(["acme", "initech", None, "newco"])]
    post_all(c, ikey, late)
    # The very next answers, before any fold or summariser pass.
    for frm, to in ranges(start):
        for params, where, args in NARROW_FILTERS:
            assert_filtered_exact(db, c, rkey, iso(frm), iso(to), "day", ["tenant"], params,
                                  where, args)
    # Folded into the narrow summaries too: the day stays unlisted.
    assert time.strftime("%Y-%m-%d", time.gmtime(late_day)) not in dirty_days(db)
    for frm, to in ranges(start):
        for group_by in (["tenant"], ["project", "tenant"], []):
            for params, where, args in NARROW_FILTERS:
                assert_filtered_exact(db, c, rkey, iso(frm), iso(to), "day", group_by, params,
                                      where, args)
    assert db.scalar("SELECT requests FROM cost_rollup_tenant_daily WHERE day = %s"
                     " AND tenant_id = 'newco'", iso(late_day)) == 1
    assert db.scalar("SELECT requests FROM cost_rollup_tenant_hourly WHERE hour = %s"
                     " AND tenant_id = 'newco'", iso(late_day + 3 * 3600)) == 1
    for frm, to in ranges(start):
        assert_exact(db, c, rkey, iso(frm), iso(to), "day", ["tenant"])
    # Recomputed from the hours, the day's narrow rows are what the fold made.
    before = db.query("SELECT * FROM cost_rollup_tenant_hourly ORDER BY 1, 2, 3")
    db.query("INSERT INTO vgc_rollup_dirty_days (day) VALUES (%s)", iso(late_day))
    summarise(db, "--rollup-daily-settle-s", "0")
    assert dirty_days(db) == []
    assert db.query("SELECT * FROM cost_rollup_tenant_hourly ORDER BY 1, 2, 3") == before


def test_migration_0008_upgrades_a_database_holding_summarised_days(db, collectors):
    """A database at 0007 with rows and summarised days: 0008 fills the narrow
    summary from the daily rows in place, and answers stay exact."""
    c = collectors(db, *NO_PASS)
    ikey, rkey, start = loaded(db, c)
    c.stop()
    fold_rollup(db)  # the fold writes the narrow summaries: nothing left for it
    db.query("DROP TABLE cost_rollup_tenant_daily, cost_rollup_tenant_hourly")
    db.query("DROP FUNCTION vgc_rollup_tenant_refresh(timestamptz[]), vgc_rollup_tenant_follow(),"
             " vgc_rollup_tenant_follow_update(), vgc_rollup_tenant_truncate() CASCADE")
    db.query("DELETE FROM schema_migrations WHERE version LIKE '0008%%'")
    # And 0012 again, which adds its measures to the tables 0008 re-creates.
    db.query("DELETE FROM schema_migrations WHERE version LIKE '0012%%'")
    # And 0021, which adds rated_rows to them.
    db.query("DELETE FROM schema_migrations WHERE version LIKE '0021%%'")
    # And 0026, whose triggers skip the narrow refresh in a fold.
    # (the triggers whose WHEN names vgc_rollup_in_step go with it; 0026
    # creates them again)
    db.query("DROP FUNCTION vgc_rollup_fold_begin(bigint), vgc_rollup_in_step() CASCADE")
    db.query("DELETE FROM schema_migrations WHERE version LIKE '0026%%'")
    summarise(db, "--rollup-daily-settle-s", "0")  # at 0007: daily rows only
    # Six closed days and the open one (the fold kept it).
    assert db.scalar("SELECT count(DISTINCT day) FROM cost_rollup_daily") == 7
    db.migrate()
    assert db.scalar("SELECT count(DISTINCT day) FROM cost_rollup_tenant_daily") == 7
    assert db.scalar("SELECT count(DISTINCT date_trunc('day', hour AT TIME ZONE 'UTC'))"
                     " FROM cost_rollup_tenant_hourly") == 7
    c = collectors(db, *NO_PASS)
    for frm, to in ranges(start):
        for group_by in (["tenant"], ["project"], []):
            assert_exact(db, c, rkey, iso(frm), iso(to), "day", group_by)
    # The triggers are in place: a late row and a pass keep it exact.
    post_all(c, ikey, [make_row(0, id="late-after-upgrade", timestamp=start + DAY + 99,
                                tenant_id="acme", cost_usd=0.5, project="ops")])
    summarise(db, "--rollup-daily-settle-s", "0")
    assert_exact(db, c, rkey, iso(start + 5 * 3600), iso(hour_end()), "day", ["tenant"])


def test_truncating_the_hours_empties_the_summary(db, collectors):
    c = collectors(db, *NO_PASS)
    loaded(db, c)
    summarise(db, "--rollup-daily-settle-s", "0")
    assert db.scalar("SELECT count(*) FROM cost_rollup_tenant_daily") > 0
    c.stop()
    db.query("TRUNCATE cost_rollup_hourly, cost_rows, cost_row_ids")
    assert db.scalar("SELECT count(*) FROM cost_rollup_tenant_daily") == 0
    assert db.scalar("SELECT count(*) FROM cost_rollup_tenant_hourly") == 0
    db.query("INSERT INTO cost_rollup_tenant_daily (day, project) VALUES (now(), 'x')")
    db.query("INSERT INTO cost_rollup_tenant_hourly (hour, project) VALUES (now(), 'x')")
    db.query("TRUNCATE cost_rollup_daily")
    assert db.scalar("SELECT count(*) FROM cost_rollup_tenant_daily") == 0
    assert db.scalar("SELECT count(*) FROM cost_rollup_tenant_hourly") == 0
