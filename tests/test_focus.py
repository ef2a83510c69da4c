"""The FOCUS 1.2 cost export (GET /v1/export/focus, `vgcollector export
focus`) and its tie-out manifest, over the real binaries and a real
PostgreSQL: FOCUS's exact column names, our own columns x_-prefixed, ISO UTC
times, sums equal to SQL over cost_rows per month and per tenant, the
manifest's sha256 of the exact bytes, and a tenant key seeing only its own
tenant."""

import csv
import hashlib
import io
import re
from datetime import datetime, timezone
from decimal import Decimal

from conftest import fold_rollup, make_row, run_vgc

# FOCUS 1.2's mandatory columns, and the conditional ones that apply to us.
MANDATORY = [
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost",
    "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity", "PricingUnit",
    "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
]
CONDITIONAL = ["ConsumedQuantity", "ConsumedUnit", "ResourceId", "ResourceName", "SkuId",
               "SubAccountId", "SubAccountName", "Tags"]
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def month_start(months_back):
    """The first instant of the UTC month months_back months before this one."""
    now = datetime.now(timezone.utc)
    y, m = now.year, now.month - months_back
    while m < 1:
        m += 12
        y -= 1
    return datetime(y, m, 1, tzinfo=timezone.utc)


def period_name(d):
    return d.strftime("%Y-%m")


def at(month, day, hour=12):
    return month.replace(day=day, hour=hour).timestamp()


def ingest(c, key, rows):
    r = c.post("/v1/ingest", json=rows, key=key)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(rows), r.text


def export(c, key, period, **params):
    r = c.get("/v1/export/focus", key=key, params={"billing_period": period, **params})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return r.content


def parse(content):
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"))))


def seed(c, key, month):
    """Rows over three tenants (one unattributed), two days, three modalities."""
    rows = []
    for i, (tenant, day, modality, cost) in enumerate([
        ("acme", 2, "llm", 0.125), ("acme", 2, "llm", 0.5), ("acme", 3, "stt", 1.75),
        ("globex", 3, "tts", 0.0031), ("globex", 9, "llm", 2.2), (None, 9, "stt", 0.07),
    ]):
        rows.append(make_row(i, timestamp=at(month, day), tenant_id=tenant, modality=modality,
                             cost_usd=cost, provider={"llm": "openai", "stt": "deepgram",
                                                      "tts": "cartesia"}[modality],
                             model_id=f"{modality}-model", agent_id=f"w-{tenant or 'none'}"))
    ingest(c, key, rows)


def sql_sums(db, month):
    """SQL's own answer from cost_rows: total and per tenant for the month."""
    rows = db.query(
        "SELECT tenant_id, sum(cost_usd) FROM cost_rows WHERE ts >= %s AND ts < %s + interval"
        " '1 month' GROUP BY tenant_id", month, month)
    return {t: Decimal(s) for t, s in rows}


def test_focus_export_has_every_column_by_focus_name_and_sums_equal_sql(db, collector):
    """Every mandatory and applicable conditional FOCUS 1.2 column, spelt as
    FOCUS spells it; our own columns start with x_; times are ISO UTC; the
    BilledCost sums equal SQL over cost_rows for the month and per tenant; the
    CLI writes the very same bytes."""
    ingest_key, read_key = db.create_key("ingest"), db.create_key("read")
    month = month_start(2)
    seed(collector, ingest_key, month)
    body = export(collector, read_key, period_name(month))
    header = body.split(b"\r\n", 1)[0].decode().split(",")
    for name in MANDATORY + CONDITIONAL:
        assert name in header, f"{name} missing from {header}"
    focus_names = set(MANDATORY + CONDITIONAL)
    assert [h for h in header if h not in focus_names and not h.startswith("x_")] == []
    assert "x_Requests" in header
    lines = parse(body)
    assert len(lines) == 5  # six rows, two share a group; one line per (day, tenant, project, agent, provider, model, modality)
    want = sql_sums(db, month)
    got = {}
    for ln in lines:
        for col in ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart",
                    "BillingPeriodEnd"):
            assert ISO.match(ln[col]), (col, ln[col])
        assert ln["BillingPeriodStart"] == month.strftime("%Y-%m-%dT00:00:00Z")
        assert ln["BillingCurrency"] == "USD"
        assert ln["ChargeCategory"] == "Usage" and ln["ChargeClass"] == ""
        assert ln["ServiceCategory"] == "AI and Machine Learning"
        assert ln["BilledCost"] == ln["EffectiveCost"] == ln["ContractedCost"] == ln["ListCost"]
        assert ln["ProviderName"] == ln["ServiceName"] == ln["PublisherName"] == \
            ln["InvoiceIssuerName"]
        assert (ln["PricingUnit"] == "") == (ln["PricingQuantity"] == "")
        assert ln["PricingUnit"] == {"llm": "Tokens", "stt": "Minutes",
                                     "tts": "Characters"}[ln["x_Modality"]]
        assert ln["Tags"] == '{"vg/project":"default"}'
        assert ln["SubAccountId"] == ln["SubAccountName"]
        t = ln["SubAccountId"] or None
        got[t] = got.get(t, Decimal(0)) + Decimal(ln["BilledCost"])
    assert got == want
    acme_llm = [ln for ln in lines if ln["SubAccountId"] == "acme" and ln["x_Modality"] == "llm"]
    assert len(acme_llm) == 1 and acme_llm[0]["x_Requests"] == "2"
    assert acme_llm[0]["ChargePeriodStart"] == month.replace(day=2).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert acme_llm[0]["ChargePeriodEnd"] == month.replace(day=3).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert Decimal(acme_llm[0]["ConsumedQuantity"]) == 2 * (1200 + 350)

    out = f"{collector.dir}/focus.csv"
    r = run_vgc("export", "focus", "--period", period_name(month), "--out", out,
                "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        assert f.read() == body

    # Folded into the hours and summarised into the daily rollup, the same
    # month exports the same bytes.
    fold_rollup(db)
    r = run_vgc("rollup-daily", "--db", db.conninfo, "--rollup-daily-settle-s", "0")
    assert r.returncode == 0, r.stderr
    assert db.scalar("SELECT count(*) FROM cost_rollup_daily") > 0
    assert export(collector, read_key, period_name(month)) == body


def test_manifest_hashes_the_exact_csv_and_ties_out_with_rollups(db, collector):
    """The manifest's sha256 is the CSV's, rows its line count, and ties_out
    is true: the BilledCost sum equals /v1/rollups' month total digit for digit."""
    ingest_key, read_key = db.create_key("ingest"), db.create_key("read")
    month = month_start(2)
    seed(collector, ingest_key, month)
    body = export(collector, read_key, period_name(month))
    r = collector.get("/v1/export/focus/manifest", key=read_key,
                      params={"billing_period": period_name(month)})
    assert r.status_code == 200, r.text
    m = r.json()
    for k in ("billing_period", "focus_version", "rows", "sha256", "billed_cost",
              "rollup_cost_usd", "ties_out", "state", "generated_at"):
        assert k in m, k
    assert m["billing_period"] == period_name(month) and m["focus_version"] == "1.2"
    assert m["sha256"] == hashlib.sha256(body).hexdigest()
    assert m["rows"] == len(parse(body))
    assert m["state"] == "open" and m["ties_out"] is True
    nxt = month_start(1)
    rollups = collector.get("/v1/rollups", key=read_key, params={
        "from": month.strftime("%Y-%m-%dT%H:%M:%SZ"), "to": nxt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "granularity": "total"}).json()
    assert m["rollup_cost_usd"] == rollups["totals"]["cost_usd"]
    assert m["billed_cost"] == rollups["totals"]["cost_usd"]
    assert Decimal(m["billed_cost"]) == sum(Decimal(ln["BilledCost"]) for ln in parse(body))


def test_tenant_key_exports_only_its_tenant(db, collector):
    """A tenant-scoped read key gets only its tenant's lines (and its own
    manifest); asking for another tenant is 403."""
    ingest_key = db.create_key("ingest")
    acme = db.create_key("read", tenant="acme")
    month = month_start(2)
    seed(collector, ingest_key, month)
    lines = parse(export(collector, acme, period_name(month)))
    assert lines and {ln["SubAccountId"] for ln in lines} == {"acme"}
    assert sum(Decimal(ln["BilledCost"]) for ln in lines) == sql_sums(db, month)["acme"]
    r = collector.get("/v1/export/focus", key=acme,
                      params={"billing_period": period_name(month), "tenant": "globex"})
    assert r.status_code == 403 and "acme" in r.text
    m = collector.get("/v1/export/focus/manifest", key=acme,
                      params={"billing_period": period_name(month)}).json()
    assert m["ties_out"] is True and Decimal(m["billed_cost"]) == sql_sums(db, month)["acme"]
    admin = db.create_key("admin")
    lines = parse(export(collector, admin, period_name(month), tenant="globex"))
    assert {ln["SubAccountId"] for ln in lines} == {"globex"}


def test_export_refuses_a_bad_billing_period_naming_it(db, collector):
    """billing_period must be YYYY-MM; a bad or missing one is 400 naming it."""
    key = db.create_key("read")
    for bad in ("2026-13", "2026-1", "26-01", "2026-01-01"):
        r = collector.get("/v1/export/focus", key=key, params={"billing_period": bad})
        assert r.status_code == 400 and "billing_period" in r.text, (bad, r.text)
    r = collector.get("/v1/export/focus", key=key)
    assert r.status_code == 400 and "billing_period" in r.text
    r = collector.get("/v1/export/focus", key=key, params={"billing_period": "2026-01",
                                                           "month": "x"})
    assert r.status_code == 400 and "month" in r.text


def test_names_from_workers_cannot_run_as_spreadsheet_formulas(db, collector):
    """A provider, agent or model named like a formula gets a ' in front, as in every
    CSV of ours; money keeps its exact digits."""
    ingest_key, read_key = db.create_key("ingest"), db.create_key("read")
    month = month_start(2)
    ingest(collector, ingest_key, [make_row(0, timestamp=at(month, 3), cost_usd=0.5,
                                            provider="=HYPERLINK(\"x\")", agent_id="+agent",
                                            model_id="@model")])
    (ln,) = parse(export(collector, read_key, period_name(month)))
    assert ln["ProviderName"] == "'=HYPERLINK(\"x\")"
    assert ln["ResourceId"] == "'+agent" and ln["SkuId"] == "'@model"
    assert ln["BilledCost"] == "0.5"


def test_list_cost_is_the_price_books_when_every_row_of_a_line_is_priced(db, collector):
    """ListCost is the book's cost of a line whose every row the price book
    priced (12.5 audio minutes at 0.0043 = 0.05375, against 3 recorded), and
    the recorded cost of a line the book priced only in part."""
    admin, key = db.create_key("admin"), db.create_key()
    for feed in (
        {"provider": "deepgram", "currency": "USD", "updated": "2025-01-01", "models": [
            {"id": "nova-3", "modality": "stt", "rates": [
                {"meter": "audio_input", "amount": "0.0043", "unit": "minute",
                 "effective_from": "2025-01-01"}]}]},
        {"provider": "openai", "currency": "USD", "updated": "2025-01-01", "models": [
            {"id": "gpt-x", "modality": "llm", "rates": [
                {"meter": "text_input", "amount": "0.000001", "unit": "token",
                 "effective_from": "2025-01-01"}]}]}):
        r = collector.post("/v1/billing/price-book", json=feed, key=admin)
        assert r.status_code in (200, 201), r.text
    month = month_start(1)
    ingest(collector, key, [
        make_row(0, timestamp=at(month, 2), modality="stt", provider="deepgram",
                 model_id="deepgram/nova-3", agent_id="w-a", input_units=10, output_units=0,
                 cost_usd=1),
        make_row(1, timestamp=at(month, 2), modality="stt", provider="deepgram",
                 model_id="deepgram/nova-3", agent_id="w-a", input_units=2.5, output_units=0,
                 cost_usd=2),
        # The book has no output rate for gpt-x: the second row is unpriced.
        make_row(2, timestamp=at(month, 2), provider="openai", model_id="openai/gpt-x",
                 agent_id="w-b", input_units=1000, output_units=0, cost_usd=0.5),
        make_row(3, timestamp=at(month, 2), provider="openai", model_id="openai/gpt-x",
                 agent_id="w-b", input_units=1000, output_units=10, cost_usd=0.25),
    ])
    lines = {r["ResourceId"]: r for r in parse(export(collector, admin, period_name(month)))}
    assert Decimal(lines["w-a"]["BilledCost"]) == Decimal("3")
    assert Decimal(lines["w-a"]["ListCost"]) == Decimal("0.05375")
    assert Decimal(lines["w-b"]["BilledCost"]) == Decimal("0.75")
    assert Decimal(lines["w-b"]["ListCost"]) == Decimal("0.75")
