"""The read API over the real binary: GET /v1/rollups (exact against SQL over
cost_rows for every granularity x group_by, JSON and CSV), /v1/costs, /v1/rows,
tenant- and project-scoped keys on every endpoint, 400s naming the parameter,
and `vgcollector rollup`."""

import calendar
import csv
import io
import json
import random
import time
from decimal import Decimal

import subprocess

import pytest

from conftest import API_MEASURES, VGC, make_row, rollup_row_aggregates, run_vgc, sanitizer_env

MEASURES = API_MEASURES
COLS = {"project": "project", "agent": "agent_id", "tenant": "tenant_id",
        "modality": "modality", "provider": "provider", "model": "model_id"}
PROVIDERS = {"stt": ["deepgram", "whisper"], "llm": ["openai", "anthropic"],
             "tts": ["cartesia", "elevenlabs"]}


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def prev_month_start():
    """Epoch seconds of 00:00 UTC on the first day of last month: always in the
    past and inside max_row_age_days, so rows around it span a month boundary."""
    t = time.gmtime()
    y, m = (t.tm_year, t.tm_mon - 1) if t.tm_mon > 1 else (t.tm_year - 1, 12)
    return calendar.timegm((y, m, 1, 0, 0, 0))


def varied_rows(n, seed=4):
    """Several projects, agents and tenants (and unattributed rows), all three
    modalities, errors and fallbacks, decimals of many scales, over the month
    boundary at prev_month_start() (3 days either side)."""
    rnd = random.Random(seed)
    base = prev_month_start()
    rows = []
    for i in range(n):
        modality = ["stt", "llm", "tts"][i % 3]
        provider = rnd.choice(PROVIDERS[modality])
        status = rnd.choice(["success"] * 6 + ["error", "fallback"])
        tenant = rnd.choice(["acme", "globex", "initech", None])
        rows.append(make_row(
            i, id=f"v-{seed}-{i}",
            timestamp=base + rnd.uniform(-3 * 86400, 3 * 86400 - 1),
            modality=modality, provider=provider,
            model_id=None if i % 23 == 0 else f"{provider}/m{rnd.randint(1, 2)}",
            project=rnd.choice(["voice", "ops", "sales"]),
            agent_id=rnd.choice(["agent-a", "agent-b", "agent-c", None]),
            tenant_id=tenant, metadata={},
            status=status, fallback_from="openai" if status == "fallback" else None,
            cost_usd=round(rnd.uniform(0, 0.05), rnd.randint(2, 9)),
            rated_price_usd=round(rnd.uniform(0, 0.06), rnd.randint(2, 9)),
            input_units=rnd.choice([rnd.randint(0, 5000), round(rnd.uniform(0, 90), 3)]),
            output_units=rnd.randint(0, 900),
            cached_input_units=rnd.choice([0, 0, rnd.randint(1, 800)]),
            session_id=f"sess-{i % 9}"))
    return rows


def load(db, collector, n=480, seed=4):
    key = db.create_key("ingest")
    rows = varied_rows(n, seed)
    for i in range(0, n, 200):
        r = collector.post("/v1/ingest", json=rows[i:i + 200], key=key)
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    base = prev_month_start()
    return rows, iso(base - 3 * 86400), iso(base + 3 * 86400)


def jloads(r):
    assert r.status_code == 200, r.text
    return json.loads(r.text, parse_float=Decimal)


def dec(v):
    return None if v is None else Decimal(str(v))


def sql_rollup(db, granularity, group_by, frm, to, where="", args=()):
    """The same aggregation straight over cost_rows, keyed like the API's rows."""
    period = ("NULL::text" if granularity == "total" else
              f"to_char(date_trunc('{granularity}', ts AT TIME ZONE 'UTC'),"
              " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
    cols = [COLS[g] for g in group_by]
    sel = ", ".join([period] + cols)
    n = len(cols) + 1
    rows = db.query(
        f"SELECT {sel}, {', '.join(rollup_row_aggregates())} FROM cost_rows"
        f" WHERE ts >= %s AND ts < %s {where} GROUP BY {', '.join(str(i + 1) for i in range(n))}",
        frm, to, *args)
    return {tuple(r[:n]): tuple(dec(v) for v in r[n:]) for r in rows}


def api_key_of(row, granularity, group_by):
    return tuple([row.get("period") if granularity != "total" else None] +
                 [row[g] for g in group_by])


def api_measures(row):
    return tuple(dec(row[m]) for m in MEASURES)


def csv_rows(text, granularity, group_by):
    lines = list(csv.reader(io.StringIO(text, newline="")))
    header = (["period"] if granularity != "total" else []) + list(group_by) + MEASURES
    assert lines[0] == header
    out = {}
    for line in lines[1:]:
        rec = dict(zip(header, line))
        key = tuple([rec.get("period") if granularity != "total" else None] +
                    [rec[g] if rec[g] != "" else None for g in group_by])
        out[key] = tuple(Decimal(rec[m]) for m in MEASURES)
    return out


GROUPINGS = [[g] for g in COLS] + [[], ["tenant", "agent"], ["project", "agent", "tenant"],
                                  ["modality", "provider", "model"], list(COLS)]


# ---- exactness ---------------------------------------------------------------

def test_rollups_equal_sql_over_cost_rows_for_every_granularity_and_group_by(db, collector):
    load(db, collector)
    read = db.create_key("read")
    assert db.scalar("SELECT count(DISTINCT date_trunc('month', ts AT TIME ZONE 'UTC'))"
                     " FROM cost_rows") == 2
    assert db.scalar("SELECT count(*) FROM cost_rows WHERE tenant_id IS NULL") > 0
    base = prev_month_start()
    frm, to = iso(base - 3 * 86400), iso(base + 3 * 86400)
    for granularity in ["hour", "day", "month", "total"]:
        for group_by in GROUPINGS:
            params = {"from": frm, "to": to, "granularity": granularity,
                      "group_by": ",".join(group_by)}
            want = sql_rollup(db, granularity, group_by, frm, to)
            body = jloads(collector.get("/v1/rollups", key=read, params=params))
            assert body["granularity"] == granularity and body["group_by"] == group_by
            assert body["from"] == frm and body["to"] == to
            for row in body["rows"]:
                assert isinstance(row["cost_usd"], str) and isinstance(row["rated_price_usd"], str)
                assert ("period" in row) == (granularity != "total")
            got = {api_key_of(r, granularity, group_by): api_measures(r) for r in body["rows"]}
            assert len(got) == len(body["rows"])
            assert got == want, (granularity, group_by)
            totals = tuple(dec(body["totals"][m]) for m in MEASURES)
            assert totals == tuple(map(sum, zip(*want.values()))), (granularity, group_by)
            r = collector.get("/v1/rollups", key=read, params={**params, "format": "csv"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            assert csv_rows(r.text, granularity, group_by) == want, (granularity, group_by)
            assert "TOTAL" not in r.text.upper().split("\r\n", 1)[1]


def test_rollup_money_is_decimal_strings_and_null_tenant_is_null(db, collector):
    key = db.create_key("ingest")
    t = (int(time.time()) // 3600 - 2) * 3600 + 60
    rows = [make_row(0, timestamp=t, cost_usd=0.00039, rated_price_usd=0.1, metadata={}),
            make_row(1, timestamp=t, cost_usd=0.2, rated_price_usd=0.3, metadata={}),
            make_row(2, timestamp=t, cost_usd=1e-9, tenant_id="acme")]
    assert collector.post("/v1/ingest", json=rows, key=key).json()["accepted"] == 3
    read = db.create_key("read")
    body = collector.get("/v1/rollups", key=read,
                         params={"from": iso(t - 60), "to": iso(t + 3540)}).json()
    by_tenant = {r["tenant"]: r for r in body["rows"]}
    assert set(by_tenant) == {None, "acme"}
    assert by_tenant[None]["cost_usd"] == "0.20039"
    # The rated price is the rate card's (no rule: the cost x the default
    # markup 1), not the 0.1 + 0.3 the workers sent.
    assert by_tenant[None]["rated_price_usd"] == "0.20039"
    assert by_tenant["acme"]["cost_usd"] == "0.000000001"
    assert by_tenant[None]["requests"] == 2
    assert body["totals"]["cost_usd"] == "0.200390001"
    r = collector.get("/v1/rollups", key=read, headers={"Accept": "text/csv"},
                      params={"from": iso(t - 60), "to": iso(t + 3540)})
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.text.split("\r\n")
    assert lines[0].startswith("period,tenant,requests")
    assert any(line.split(",")[1] == "" and "0.20039" in line for line in lines[1:])
    # unattributed filter: tenant= (empty)
    body = collector.get("/v1/rollups", key=read, params={"from": iso(t - 60), "to": iso(t + 3540),
                                                         "tenant": ""}).json()
    assert [r["tenant"] for r in body["rows"]] == [None]
    # format=json beats Accept
    r = collector.get("/v1/rollups", key=read, headers={"Accept": "text/csv"},
                      params={"from": iso(t - 60), "to": iso(t + 3540), "format": "json"})
    assert r.headers["content-type"].startswith("application/json")


def test_filters_are_repeatable_or_comma_lists(db, collector):
    rows, frm, to = load(db, collector, n=240)
    read = db.create_key("read")
    want = sql_rollup(db, "total", ["tenant", "modality"], frm, to,
                      "AND tenant_id = ANY(%s) AND modality = ANY(%s)",
                      (["acme", "globex"], ["stt", "tts"]))
    for params in [[("tenant", "acme,globex"), ("modality", "stt,tts")],
                   [("tenant", "acme"), ("tenant", "globex"), ("modality", "stt"),
                    ("modality", "tts")]]:
        params += [("from", frm), ("to", to), ("granularity", "total"),
                   ("group_by", "tenant,modality")]
        body = jloads(collector.get("/v1/rollups", key=read, params=params))
        got = {api_key_of(r, "total", ["tenant", "modality"]): api_measures(r)
               for r in body["rows"]}
        assert got == want


# ---- 400s --------------------------------------------------------------------

# Every refusal of a bad parameter is a named case in tests/unit/test_rollup_errors.c,
# which calls the parser directly and holds each whole message. Over HTTP, one per
# endpoint: the server answers the parser's message byte for byte, as a 400.
BAD_REQUESTS = [
    ("/v1/rollups", {"colour": "red"},
     'unknown parameter "colour"; /v1/rollups takes from, to, granularity, group_by, format, '
     "csv_raw, project, agent, tenant, modality, provider, model"),
    ("/v1/costs", {"period": "week", "start": "2024-05-01"},
     "period: give either period or start/end, not both"),
    ("/v1/rows", {"next": "not-a-cursor!"},
     "next: not a cursor this endpoint returned (it does not decode)"),
]


@pytest.mark.parametrize("path,params,message", BAD_REQUESTS,
                         ids=[p for p, _, _ in BAD_REQUESTS])
def test_bad_requests_get_400_naming_the_parameter(db, collector, path, params, message):
    read = db.create_key("read")
    r = collector.get(path, key=read, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == message, r.json()


def test_rollup_period_cap_is_configurable(db, collectors):
    c = collectors(db, "--max-rollup-periods", "48")
    read = db.create_key("read")
    ok = c.get("/v1/rollups", key=read, params={"from": "2024-05-01", "to": "2024-05-03",
                                                "granularity": "hour"})
    assert ok.status_code == 200, ok.text
    r = c.get("/v1/rollups", key=read, params={"from": "2024-05-01", "to": "2024-05-03T01:00:00Z",
                                               "granularity": "hour"})
    err = r.json()["error"]
    assert r.status_code == 400 and err.startswith("from, to: ") and "max_rollup_periods (48)" in err


# ---- who may read --------------------------------------------------------------

def test_ingest_key_and_no_key_cannot_read(db, collector):
    ingest = db.create_key("ingest")
    for path in ["/v1/rollups", "/v1/costs", "/v1/rows"]:
        assert collector.get(path).status_code == 401
        r = collector.get(path, key=ingest)
        assert r.status_code == 403 and "role ingest" in r.json()["error"]
        admin = db.create_key("admin")
        assert collector.get(path, key=admin).status_code == 200


SCOPES = [("tenant", "tenant_id", "acme", "globex"), ("project", "project", "voice", "ops")]


@pytest.mark.parametrize("what,col,mine,other", SCOPES)
def test_scoped_key_sees_only_its_scope_everywhere(db, collector, what, col, mine, other):
    rows, frm, to = load(db, collector, n=360)
    key = db.create_key("read", **{what: mine})
    # every group_by value and format: only our scope, and all of it
    for group_by in GROUPINGS:
        for granularity in ["day", "total"]:
            params = {"from": frm, "to": to, "granularity": granularity,
                      "group_by": ",".join(group_by)}
            want = sql_rollup(db, granularity, group_by, frm, to, f"AND {col} = %s", (mine,))
            body = jloads(collector.get("/v1/rollups", key=key, params=params))
            got = {api_key_of(r, granularity, group_by): api_measures(r) for r in body["rows"]}
            assert got == want, (group_by, granularity)
            if what in group_by:
                assert {r[what] for r in body["rows"]} == {mine}
            r = collector.get("/v1/rollups", key=key, params={**params, "format": "csv"})
            assert csv_rows(r.text, granularity, group_by) == want
    # asking for another, or unattributed rows, or a list with another: 403
    for params in [{what: other}, {what: ""}, {what: f"{mine},{other}"},
                   [(what, mine), (what, other)]]:
        for path in ["/v1/rollups", "/v1/costs", "/v1/rows"]:
            r = collector.get(path, key=key, params=params)
            assert r.status_code == 403, (path, params, r.text)
            assert f'scoped to {what} "{mine}"' in r.json()["error"]
        r = collector.get("/v1/rollups", key=key, params=params, headers={"Accept": "text/csv"})
        assert r.status_code == 403
    # naming its own scope is fine
    body = jloads(collector.get("/v1/rollups", key=key,
                                params={"from": frm, "to": to, what: mine,
                                        "granularity": "total", "group_by": what}))
    assert [r[what] for r in body["rows"]] == [mine]
    # other filters combine with the scope
    want = sql_rollup(db, "total", [], frm, to, f"AND {col} = %s AND modality = 'llm'", (mine,))
    body = jloads(collector.get("/v1/rollups", key=key,
                                params={"from": frm, "to": to, "granularity": "total",
                                        "group_by": "", "modality": "llm"}))
    assert {(None,): api_measures(r) for r in body["rows"]} == want
    # /v1/rows: only its scope, across pages
    seen, cursor = [], None
    for _ in range(100):  # a cursor that never ends fails here, not at the time limit
        params = {"from": frm, "to": to, "limit": 100}
        if cursor:
            params["next"] = cursor
        page = jloads(collector.get("/v1/rows", key=key, params=params))
        seen += page["rows"]
        cursor = page["next"]
        if not cursor:
            break
    else:
        raise AssertionError(f"/v1/rows still had a next cursor after 100 pages: {cursor}")
    field = "tenant_id" if what == "tenant" else "project"
    assert {r[field] for r in seen} == {mine}
    assert len(seen) == db.scalar(f"SELECT count(*) FROM cost_rows WHERE {col} = %s", mine)
    # /v1/costs: only its scope
    body = jloads(collector.get("/v1/costs", key=key, params={"start": frm[:10],
                                                              "end": to[:10]}))
    want_total = db.scalar(f"SELECT sum(cost_usd) FROM cost_rows WHERE {col} = %s AND ts >= %s"
                           " AND ts < %s::timestamptz + interval '1 day'", mine, frm, to)
    assert body["total"] == want_total
    if what == "project":
        assert set(body["by_project"]) == {mine}


def test_key_scoped_to_both_project_and_tenant(db, collector):
    rows, frm, to = load(db, collector, n=240)
    key = db.create_key("read", project="voice", tenant="acme")
    want = sql_rollup(db, "total", ["project", "tenant"], frm, to,
                      "AND project = 'voice' AND tenant_id = 'acme'")
    body = jloads(collector.get("/v1/rollups", key=key, params={
        "from": frm, "to": to, "granularity": "total", "group_by": "project,tenant"}))
    assert {api_key_of(r, "total", ["project", "tenant"]): api_measures(r)
            for r in body["rows"]} == want
    assert collector.get("/v1/rollups", key=key, params={"project": "ops"}).status_code == 403
    assert collector.get("/v1/rows", key=key, params={"tenant": "globex"}).status_code == 403


# ---- /v1/costs -------------------------------------------------------------------

def test_costs_is_voicegateway_shaped_and_exact(db, collector):
    key = db.create_key("ingest")
    now = time.time()
    rows = [make_row(0, timestamp=now - 60, provider="openai", model_id="gpt-4o-mini",
                     project="voice", cost_usd=0.00039),
            make_row(1, timestamp=now - 120, provider="openai", model_id="gpt-4o",
                     project="ops", cost_usd=0.1),
            make_row(2, timestamp=now - 3 * 86400, provider="deepgram", model_id="nova-3",
                     modality="stt", project="voice", cost_usd=0.2),
            make_row(3, timestamp=now - 20 * 86400, provider=None, model_id=None,
                     project="voice", cost_usd=0.3)]
    assert collector.post("/v1/ingest", json=rows, key=key).json()["accepted"] == 4
    read = db.create_key("read")
    today = jloads(collector.get("/v1/costs", key=read))
    assert today["period"] == "today"
    assert today["total"] == Decimal("0.10039")
    assert today["by_provider"] == {"openai": {"cost": Decimal("0.10039"), "requests": 2}}
    assert today["by_model"] == {"gpt-4o": {"cost": Decimal("0.1"), "requests": 1},
                                 "gpt-4o-mini": {"cost": Decimal("0.00039"), "requests": 1}}
    assert today["by_project"] == {"ops": {"cost": Decimal("0.1"), "requests": 1},
                                   "voice": {"cost": Decimal("0.00039"), "requests": 1}}
    week = jloads(collector.get("/v1/costs", key=read, params={"period": "week"}))
    assert week["total"] == Decimal("0.30039")
    month = jloads(collector.get("/v1/costs", key=read, params={"period": "month"}))
    assert month["total"] == Decimal("0.60039")
    assert month["by_provider"]["unknown"] == {"cost": Decimal("0.3"), "requests": 1}
    assert jloads(collector.get("/v1/costs", key=read, params={"period": "all"}))["total"] == \
        Decimal("0.60039")
    voice = jloads(collector.get("/v1/costs", key=read, params={"period": "month",
                                                                "project": "voice"}))
    assert voice["total"] == Decimal("0.50039")
    # plain json.loads (what a dashboard does) gets numbers
    plain = collector.get("/v1/costs", key=read).json()
    assert isinstance(plain["total"], float) and isinstance(
        plain["by_provider"]["openai"]["requests"], int)
    # start/end dates: end is inclusive of that day
    d = time.strftime("%Y-%m-%d", time.gmtime(now - 3 * 86400))
    one = jloads(collector.get("/v1/costs", key=read, params={"start": d, "end": d}))
    assert one["total"] == Decimal("0.2") and one["period"] == "custom"
    empty = jloads(collector.get("/v1/costs", key=read, params={"start": "2020-01-01",
                                                                "end": "2020-01-31"}))
    assert empty["total"] == 0 and empty["by_provider"] == {}


# ---- /v1/rows --------------------------------------------------------------------

def test_rows_newest_first_with_keyset_cursor_and_filters(db, collector):
    key = db.create_key("ingest")
    now = time.time()
    rows = [make_row(i, id=f"r-{i:02d}", timestamp=now - 1000 + (i // 2),
                     session_id="s-even" if i % 2 == 0 else "s-odd", cost_usd=0.00039)
            for i in range(25)]
    assert collector.post("/v1/ingest", json=rows, key=key).json()["accepted"] == 25
    read = db.create_key("read")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10, **({"next": cursor} if cursor else {})}
        page = jloads(collector.get("/v1/rows", key=read, params=params))
        pages += 1
        assert len(page["rows"]) <= 10 and pages <= 3, (pages, cursor)
        seen += page["rows"]
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 25
    assert [r["id"] for r in seen] == [f"r-{i:02d}" for i in reversed(range(25))]
    assert seen[0]["cost_usd"] == "0.00039" and seen[0]["metadata"] == {"tenant": "acme"}
    assert seen[0]["tenant_id"] == "acme"
    # Every wire field, from the row's field table, plus when it arrived.
    assert set(seen[0]) == set(make_row(0)) | {"received_at", "book_cost_usd", "book_revision",
                                                 "rate_revision"}
    assert isinstance(seen[0]["rated_price_usd"], str) and seen[0]["input_units"] == 1200
    odd = jloads(collector.get("/v1/rows", key=read, params={"session_id": "s-odd"}))
    assert {r["session_id"] for r in odd["rows"]} == {"s-odd"} and len(odd["rows"]) == 12
    assert odd["next"] is None
    assert jloads(collector.get("/v1/rows", key=read,
                                params={"agent": "nobody"}))["rows"] == []
    recent = jloads(collector.get("/v1/rows", key=read, params={"from": iso(now - 990)}))
    assert all(Decimal(str(r["timestamp"])) >= Decimal(int(now - 990)) for r in recent["rows"])
    assert 0 < len(recent["rows"]) < 25


# ---- the CLI ---------------------------------------------------------------------

def test_cli_rollup_table_with_totals_and_csv_equal_to_api(db, collector):
    rows, frm, to = load(db, collector, n=300)
    read = db.create_key("read")
    r = run_vgc("rollup", "--from", frm, "--to", to, "--by", "tenant,agent",
                "--granularity", "day", "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1].startswith("TOTAL") and set(lines[-2]) == {"-"}
    header = [l for l in lines if l.startswith("PERIOD")][0]
    assert "TENANT" in header and "AGENT" in header and "COST_USD" in header
    assert "(unattributed)" in r.stdout
    total = db.scalar("SELECT sum(cost_usd) FROM cost_rows WHERE ts >= %s AND ts < %s", frm, to)
    requests = db.scalar("SELECT count(*) FROM cost_rows WHERE ts >= %s AND ts < %s", frm, to)
    assert f"{requests:,}" in lines[-1]
    shown = [f for f in lines[-1].split() if "." in f]
    assert Decimal(shown[0].replace(",", "")) == total
    # every line has the same width: aligned
    assert len({len(l.rstrip()) for l in lines[2:] if l.strip()}) <= 2
    for args, params in [
        (["--by", "tenant,agent"], {"group_by": "tenant,agent"}),
        (["--granularity", "month", "--tenant", "acme"], {"granularity": "month",
                                                          "tenant": "acme"}),
        (["--granularity", "total", "--by", "project", "--project", "voice,ops"],
         {"granularity": "total", "group_by": "project", "project": "voice,ops"}),
    ]:
        # bytes, not text: CRLF line ends must match too
        c = subprocess.run([VGC, "rollup", "--from", frm, "--to", to, "--csv", *args,
                            "--db", db.conninfo], capture_output=True, env=sanitizer_env(),
                           timeout=60)
        assert c.returncode == 0, c.stderr
        api = collector.get("/v1/rollups", key=read,
                            params={"from": frm, "to": to, "format": "csv", **params})
        assert c.stdout == api.content and api.content.count(b"\r\n") > 1


def test_cli_rollup_refuses_bad_options(db):
    r = run_vgc("rollup", "--by", "colour", "--db", db.conninfo)
    assert r.returncode == 2 and "rollup: group_by: " in r.stderr and "--by" in r.stderr, r.stderr
    r = run_vgc("rollup", "--from", "2024-05-02", "--to", "2024-05-01", "--db", db.conninfo)
    assert r.returncode == 2 and "rollup: from, to: " in r.stderr, r.stderr
    r = run_vgc("rollup", "--bogus", "--db", db.conninfo)
    assert r.returncode == 2
    r = run_vgc("rollup", "--help")
    assert r.returncode == 0 and "--csv" in r.stdout


def test_rollup_over_no_data_has_no_rows_and_zero_totals(db, collector):
    read = db.create_key("read")
    for granularity in ["hour", "total"]:
        for group_by in ["", "tenant"]:
            body = jloads(collector.get("/v1/rollups", key=read, params={
                "from": "2024-05-01", "to": "2024-05-02", "granularity": granularity,
                "group_by": group_by}))
            assert body["rows"] == []
            assert body["totals"] == {"requests": 0, "errors": 0, "fallbacks": 0,
                                      "cost_usd": "0", "rated_price_usd": "0", "input_units": 0,
                                      "output_units": 0, "cached_input_units": 0,
                                      "book_cost_usd": "0", "priced_rows": 0,
                                      "unpriced_rows": 0, "rated_rows": 0,
                                      "unrated_rows": 0}
            r = collector.get("/v1/rollups", key=read, params={
                "from": "2024-05-01", "to": "2024-05-02", "granularity": granularity,
                "group_by": group_by, "format": "csv"})
            assert r.text.count("\r\n") == 1
