"""GET /v1/billing/usage: VoiceGateway's usage endpoint, revenue, recorded
and book cost, re-rating adjustments and margin per tenant, answered from the
rollup tables and equal to SQL over cost_rows, exact to the digit. A tenant
key sees its own requests, revenue and adjustments, never acquisition cost or
margin; hide_cost_from_tenants = on extends that to every read endpoint."""

import calendar
import csv
import io
import json
import re
from decimal import Decimal

from conftest import make_row

OPENAI = {
    "provider": "openai", "currency": "USD",
    "models": [{"id": "gpt-4o-mini", "modality": "llm", "rates": [
        {"meter": "text_input", "amount": "0.00000015", "unit": "token",
         "effective_from": "2026-01-01"},
        {"meter": "text_output", "amount": "0.0000006", "unit": "token",
         "effective_from": "2026-01-01"},
    ]}],
}
COST_FIELDS = {"cost_usd", "book_cost_usd", "margin_usd", "margin_pct"}


def ts(d, h=12):
    return calendar.timegm((2026, 12, d, h, 0, 0))


def seed(db, c):
    """Rows of three tenants (one of them none) over 1-3 December, priced and
    unpriced models, with awkward decimals; returns the admin key."""
    admin = db.create_key("admin")
    r = c.post("/v1/billing/price-book", body=json.dumps(OPENAI), key=admin)
    assert r.status_code in (200, 201), r.text
    ing = db.create_key("ingest")
    rows = []
    for i in range(30):
        tenant = ["acme", "globex", None][i % 3]
        model = ("openai/gpt-4o-mini", "openai") if i % 2 else ("acme-llm/x1", "acme-llm")
        rows.append(make_row(i, timestamp=ts(1 + i % 3, i % 20), tenant_id=tenant, metadata={},
                             model_id=model[0], provider=model[1],
                             cost_usd=f"N0.000{i + 1}7", rated_price_usd=f"N0.00{i + 3}1"))
    # Money as JSON numbers written exactly (the wire's form), not floats.
    body = re.sub(r'"N([0-9.]+)"', r"\1", json.dumps(rows))
    r = c.post("/v1/ingest", body=body, key=ing, headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["accepted"] == 30, r.text
    return admin


def add_adjustment(db, tenant, day, delta):
    run = db.scalar("INSERT INTO billing_rerate_runs (range_from, range_to, dry_run, ran_by,"
                    " rows, delta_usd, answer) VALUES ('2026-12-01', '2026-12-04', false,"
                    " 'test', 1, %s, '{}') RETURNING run_id", delta)
    db.query("INSERT INTO billing_adjustments (run_id, tenant_id, day, project, provider,"
             " model_id, rows, delta_usd) VALUES (%s, %s, %s, 'default', 'openai',"
             " 'gpt-4o-mini', 1, %s)", run, tenant, day, delta)


def sql_usage(db, where="", *args):
    out = {}
    for t, n, cost, rated, book, unpriced, unrated in db.query(
            "SELECT tenant_id, count(*), sum(cost_usd), coalesce(sum(rated_price_usd), 0),"
            " coalesce(sum(book_cost_usd), 0), count(*) - count(book_cost_usd),"
            " count(*) - count(rated_price_usd) FROM cost_rows"
            " WHERE ts >= '2026-12-01' AND ts < '2026-12-04' " + where +
            " GROUP BY tenant_id", *args):
        out[t] = (n, cost, rated, book, unpriced, unrated)
    return out


def test_usage_per_tenant_and_margin_equal_sql_over_the_rows(db, collector):
    """Per tenant (and the unattributed rows as tenant_id null): requests,
    recorded cost, revenue, book cost, unpriced and unrated rows equal SQL over
    cost_rows; adjustments come from the re-rating table and margin_usd =
    rated + adjustments - cost, all exact decimal strings."""
    admin = seed(db, collector)
    add_adjustment(db, "acme", "2026-12-02", "0.000000000007")
    add_adjustment(db, "acme", "2026-12-09", "5")  # outside the range
    read = db.create_key("read")
    r = collector.get("/v1/billing/usage", key=read,
                      params={"start": "2026-12-01", "end": "2026-12-03"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"] == "custom" and body["tenant"] is None
    assert body["start"] == "2026-12-01T00:00:00Z" and body["end"] == "2026-12-04T00:00:00Z"
    want = sql_usage(db)
    assert {t["tenant_id"] for t in body["tenants"]} == set(want) == {"acme", "globex", None}
    adj = {"acme": Decimal("0.000000000007")}
    for t in body["tenants"]:
        n, cost, rated, book, unpriced, unrated = want[t["tenant_id"]]
        a = adj.get(t["tenant_id"], Decimal(0))
        assert t["requests"] == n
        assert Decimal(t["cost_usd"]) == cost and isinstance(t["cost_usd"], str)
        assert Decimal(t["rated_usd"]) == rated
        assert Decimal(t["book_cost_usd"]) == book
        assert Decimal(t["adjustments_usd"]) == a
        assert Decimal(t["margin_usd"]) == rated + a - cost
        assert Decimal(t["margin_pct"]) == round(100 * (rated + a - cost) / (rated + a), 2)
        assert (t["unpriced_rows"], t["unrated_rows"]) == (unpriced, unrated)
        assert unpriced == 5  # the unknown model's rows, never $0
    tot = body["totals"]
    assert "tenant_id" not in tot and tot["requests"] == 30
    assert Decimal(tot["margin_usd"]) == sum(
        w[2] - w[1] for w in want.values()) + Decimal("0.000000000007")
    assert Decimal(tot["adjustments_usd"]) == Decimal("0.000000000007")

    # The same through from/to, and CSV.
    r2 = collector.get("/v1/billing/usage", key=admin, params={
        "from": "2026-12-01T00:00:00Z", "to": "2026-12-04T00:00:00Z", "format": "csv"})
    assert r2.status_code == 200 and r2.headers["content-type"].startswith("text/csv"), r2.text
    got = list(csv.DictReader(io.StringIO(r2.text)))
    assert len(got) == 3
    acme = [g for g in got if g["tenant_id"] == "acme"][0]
    assert Decimal(acme["margin_usd"]) == Decimal(body["tenants"][[
        t["tenant_id"] for t in body["tenants"]].index("acme")]["margin_usd"])


def test_usage_for_one_tenant_has_line_items(db, collector):
    """With tenant=, the answer adds line_items per (modality, model, provider)
    whose sums equal SQL over that tenant's rows."""
    seed(db, collector)
    read = db.create_key("read")
    r = collector.get("/v1/billing/usage", key=read,
                      params={"start": "2026-12-01", "end": "2026-12-03", "tenant": "globex"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tenant"] == "globex" and [t["tenant_id"] for t in body["tenants"]] == ["globex"]
    want = {(m, p): (n, cost, rated, iu, ou) for m, p, n, cost, rated, iu, ou in db.query(
        "SELECT model_id, provider, count(*), sum(cost_usd), sum(rated_price_usd),"
        " sum(input_units), sum(output_units) FROM cost_rows WHERE tenant_id = 'globex'"
        " GROUP BY 1, 2")}
    assert len(body["line_items"]) == len(want) == 2
    for li in body["line_items"]:
        n, cost, rated, iu, ou = want[(li["model_id"], li["provider"])]
        assert li["modality"] == "llm" and li["requests"] == n
        assert Decimal(li["cost_usd"]) == cost and Decimal(li["rated_usd"]) == rated
        assert Decimal(li["margin_usd"]) == rated - cost
        assert Decimal(str(li["input_units"])) == iu and Decimal(str(li["output_units"])) == ou


def test_a_tenant_key_sees_its_revenue_never_cost_or_margin(db, collector):
    """A tenant-scoped key reads only its own tenant, with requests, rated_usd
    and adjustments_usd, and no cost_usd, book_cost_usd, margin_usd or
    margin_pct anywhere in the answer (tenants, totals, line items, CSV)."""
    seed(db, collector)
    add_adjustment(db, "acme", "2026-12-02", "-0.25")
    key = db.create_key("read", tenant="acme")
    r = collector.get("/v1/billing/usage", key=key,
                      params={"start": "2026-12-01", "end": "2026-12-03"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [t["tenant_id"] for t in body["tenants"]] == ["acme"]
    for obj in body["tenants"] + [body["totals"]] + body["line_items"]:
        assert not COST_FIELDS & set(obj), obj
    t = body["tenants"][0]
    n, cost, rated, *_ = sql_usage(db)["acme"]
    assert t["requests"] == n and Decimal(t["rated_usd"]) == rated
    assert Decimal(t["adjustments_usd"]) == Decimal("-0.25")
    for word in COST_FIELDS:
        assert word not in r.text
    r = collector.get("/v1/billing/usage", key=key, params={"period": "month", "format": "csv"})
    assert r.status_code == 200 and not COST_FIELDS & set(r.text.splitlines()[0].split(","))
    r = collector.get("/v1/billing/usage", key=key, params={"tenant": "globex"})
    assert r.status_code == 403 and "acme" in r.text


def test_usage_refuses_bad_parameters_by_name(db, collector):
    """Each bad parameter is a 400 naming it."""
    read = db.create_key("read")
    for params, name in [({"period": "year"}, "period"), ({"start": "yesterday"}, "start"),
                         ({"from": "2026-12-01", "period": "week"}, "from"),
                         ({"from": "2026-12-01T00:30:00Z"}, "from"),
                         ({"group_by": "agent"}, "group_by"),
                         ({"format": "xml"}, "format")]:
        r = collector.get("/v1/billing/usage", key=read, params=params)
        assert r.status_code == 400 and name in r.text, (params, r.text)


def test_hide_cost_from_tenants_keeps_cost_from_every_read_for_tenant_keys(db, collectors):
    """With hide_cost_from_tenants = on, a tenant key's rollups (JSON and CSV)
    and rows carry no cost_usd or book_cost_usd, /v1/costs, budgets and the
    FOCUS export answer 403 naming the setting; an operator key still sees
    cost. Off (the default), the tenant key sees its cost as before."""
    off = collectors(db)
    seed(db, off)
    key = db.create_key("read", tenant="acme")
    params = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-04T00:00:00Z"}
    r = off.get("/v1/rollups", key=key, params=params)
    assert r.status_code == 200 and "cost_usd" in r.json()["totals"], r.text
    assert "cost_usd" in off.get("/v1/rows", key=key).json()["rows"][0]
    off.stop()

    on = collectors(db, config_text="hide_cost_from_tenants = on\n")
    read = db.create_key("read")
    r = on.get("/v1/rollups", key=key, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    for obj in body["rows"] + [body["totals"]]:
        assert not COST_FIELDS & set(obj) and "rated_price_usd" in obj, obj
    head = on.get("/v1/rollups", key=key, params={**params, "format": "csv"}).text.splitlines()[0]
    assert not COST_FIELDS & set(head.split(",")) and "rated_price_usd" in head, head
    rows = on.get("/v1/rows", key=key).json()["rows"]
    assert rows and all(not COST_FIELDS & set(row) and row["tenant_id"] == "acme" for row in rows)
    for path in ["/v1/costs", "/v1/budgets", "/v1/export/focus"]:
        r = on.get(path, key=key, params={"billing_period": "2026-12"}
                   if "focus" in path else None)
        assert r.status_code == 403 and "hide_cost_from_tenants" in r.text, (path, r.text)
    assert "cost_usd" in on.get("/v1/rollups", key=read, params=params).json()["totals"]
    assert "cost_usd" in on.get("/v1/rows", key=read).json()["rows"][0]
    assert on.get("/v1/costs", key=read).status_code == 200
