"""x_RatedPrice in the FOCUS export: the rate card's price of each line's rows,
summed exactly as SQL sums cost_rows, read from the rollups for an open month
and from the lines frozen at the close for a closed one; a late row's rated
price is billed once, on its Correction line; and a month closed before the
column existed keeps its bytes."""

from decimal import Decimal

from conftest import make_row
from test_focus import at, export, ingest, month_start, parse, period_name
from test_periods import close


def rated_sums(db, month):
    rows = db.query(
        "SELECT tenant_id, coalesce(sum(rated_price_usd), 0) FROM cost_rows WHERE ts >= %s"
        " AND ts < %s + interval '1 month' GROUP BY tenant_id", month, month)
    return {t: Decimal(s) for t, s in rows}


def export_rated_sums(lines, charge_class=""):
    got = {}
    for ln in lines:
        if ln["ChargeClass"] != charge_class:
            continue
        assert ln["x_RatedPrice"] != "" and "e" not in ln["x_RatedPrice"].lower()
        t = ln["SubAccountId"] or None
        got[t] = got.get(t, Decimal(0)) + Decimal(ln["x_RatedPrice"])
    return got


def test_rated_price_sums_equal_sql_per_month_and_tenant_open_and_closed(db, collector):
    """x_RatedPrice is a column of ours (last, x_-prefixed); its sums per
    tenant and for the month equal SQL over cost_rows' rated_price_usd, digit
    for digit as decimals, before and after the month closes; an unrated row
    adds nothing."""
    ingest_key, admin = db.create_key("ingest"), db.create_key("admin")
    month = month_start(2)
    rows = []
    for i, (tenant, day, price) in enumerate([
            ("acme", 2, 0.125), ("acme", 2, 0.0000003), ("acme", 3, 1.75),
            ("globex", 3, 0.0031), ("globex", 9, None), (None, 9, 0.07)]):
        rows.append(make_row(i, timestamp=at(month, day), tenant_id=tenant,
                             rated_price_usd=price, agent_id=f"w-{tenant}"))
    ingest(collector, ingest_key, rows)
    want = rated_sums(db, month)
    assert sum(want.values()) > 0
    open_body = export(collector, admin, period_name(month))
    assert open_body.split(b"\r\n", 1)[0].endswith(b",x_RatedPrice")
    assert export_rated_sums(parse(open_body)) == want
    assert close(collector, admin, period_name(month), force=True).status_code == 200
    closed_body = export(collector, admin, period_name(month))
    assert closed_body == open_body
    assert export_rated_sums(parse(closed_body)) == want


def test_late_rows_rated_price_is_billed_once_on_its_correction_line(db, collector):
    """After the close a rated row lands in the closed month: the closed
    month's export is byte for byte the same, and the next month's Correction
    line carries the late row's rated price as stored (and its cost) exactly."""
    ingest_key, admin = db.create_key("ingest"), db.create_key("admin")
    m1, m2 = month_start(3), month_start(2)
    ingest(collector, ingest_key, [
        make_row(0, timestamp=at(m1, 4), cost_usd=1.5, rated_price_usd=2.25),
        make_row(1, timestamp=at(m2, 7), cost_usd=0.5, rated_price_usd=0.75)])
    assert close(collector, admin, period_name(m1), force=True).status_code == 200
    before = export(collector, admin, period_name(m1))
    late = make_row(2, timestamp=at(m1, 4), cost_usd=0.375, rated_price_usd=0.5625)
    ingest(collector, ingest_key, [late])
    assert export(collector, admin, period_name(m1)) == before
    lines = parse(export(collector, admin, period_name(m2)))
    corr = [ln for ln in lines if ln["ChargeClass"] == "Correction"]
    assert len(corr) == 1, lines
    # The rated price the collector stored for the late row (rating on ingest decides it).
    late_rated = db.scalar("SELECT rated_price_usd FROM cost_rows WHERE id = %s", late["id"])
    assert late_rated > 0
    assert Decimal(corr[0]["x_RatedPrice"]) == late_rated
    assert Decimal(corr[0]["BilledCost"]) == Decimal("0.375")
    # The month's and its corrections' rated price add up to SQL's over both months.
    total = sum(Decimal(ln["x_RatedPrice"]) for ln in parse(before) + lines)
    assert total == sum(rated_sums(db, m1).values()) + sum(rated_sums(db, m2).values())


def test_month_closed_before_the_rated_price_keeps_its_columns_and_bytes(db, collector):
    """A month closed before x_RatedPrice existed (its lines hold no rated
    price, x_rated_price false, as the migration leaves them) exports without
    the column, the same bytes before and after a late row; the late row's
    Correction bills its cost with a rated price of 0 for a line key the
    closed lines billed."""
    ingest_key, admin = db.create_key("ingest"), db.create_key("admin")
    m1, m2 = month_start(3), month_start(2)
    ingest(collector, ingest_key, [make_row(0, timestamp=at(m1, 4), cost_usd=1.5,
                                            rated_price_usd=2.25)])
    assert close(collector, admin, period_name(m1), force=True).status_code == 200
    # As a month closed before migration 0023 stands after it.
    db.query("UPDATE billing_period_lines SET rated_price_usd = NULL")
    db.query("UPDATE billing_periods SET x_rated_price = false, csv_sha256 = NULL")
    before = export(collector, admin, period_name(m1))
    assert b"x_RatedPrice" not in before
    assert before.split(b"\r\n", 1)[0].endswith(b",x_Modality")
    ingest(collector, ingest_key, [make_row(1, timestamp=at(m1, 4), cost_usd=0.375,
                                            rated_price_usd=0.5625)])
    assert export(collector, admin, period_name(m1)) == before
    corr = [ln for ln in parse(export(collector, admin, period_name(m2)))
            if ln["ChargeClass"] == "Correction"]
    assert len(corr) == 1, corr
    assert Decimal(corr[0]["BilledCost"]) == Decimal("0.375")
    assert Decimal(corr[0]["x_RatedPrice"]) == 0
