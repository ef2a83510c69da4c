"""Re-rating: POST /v1/billing/rerate prices stored rows by the current rate
card and answers, per tenant, the exact sum of (card price - stored price);
a commit appends one adjustment per (tenant, day, project, provider, model)
with the run's id, who ran it and why, never changing a row, and a commit
repeated with one Idempotency-Key adds nothing. Usage's adjustments_usd and
margin include them."""

import calendar
import json
import re
from decimal import ROUND_HALF_EVEN, Decimal

from conftest import make_row, run_vgc


def ts(d, h=12):
    return calendar.timegm((2026, 12, d, h, 0, 0))


def seed(db, c):
    ing = db.create_key("ingest")
    rows = []
    for i in range(24):
        rows.append(make_row(i, timestamp=ts(1 + (i // 3) % 3, i % 20), metadata={},
                             tenant_id=["acme", "globex", None][i % 3],
                             provider=["openai", "deepgram"][i % 2],
                             model_id=["openai/gpt-4o-mini", "deepgram/nova-3"][i % 2],
                             modality=["llm", "stt"][i % 2],
                             cost_usd=f"N0.00{i + 1}3", rated_price_usd=f"N0.00{i + 2}7"))
    body = re.sub(r'"N([0-9.]+)"', r"\1", json.dumps(rows))
    r = c.post("/v1/ingest", body=body, key=ing, headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["accepted"] == 24, r.text
    # The card now: 1.25 by default, acme's LLM rows cost plus 1.5, and a
    # fixed per-minute price for deepgram.
    db.query("UPDATE rate_card SET default_markup = 1.25")
    db.query("INSERT INTO rate_card_rules (tenant_id, modality, kind, markup)"
             " VALUES ('acme', 'llm', 'cost_plus', 1.5)")
    db.query("INSERT INTO rate_card_rules (provider, kind, fixed, unit)"
             " VALUES ('deepgram', 'fixed', 0.0071, 'minute')")


def expected(db, tenant=None):
    """The deltas the card gives, computed here: cost x markup or fixed x
    minutes, rounded half-even to 12 digits, minus the stored price."""
    out = {}
    for t, model, cost, rated, units in db.query(
            "SELECT tenant_id, model_id, cost_usd, rated_price_usd, input_units FROM cost_rows"
            " WHERE ts >= '2026-12-01' AND ts < '2026-12-03'"):
        if tenant and t != tenant:
            continue
        if model.startswith("deepgram/"):
            price = Decimal("0.0071") * units
        elif t == "acme":
            price = cost * Decimal("1.5")
        else:
            price = cost * Decimal("1.25")
        price = price.quantize(Decimal("1e-12"), ROUND_HALF_EVEN) if -price.as_tuple().exponent > 12 \
            else price
        n, d = out.get(t, (0, Decimal(0)))
        out[t] = (n + 1, d + price - rated)
    return out


def rerate(c, key, idem=None, **body):
    h = {"Idempotency-Key": idem} if idem else {}
    return c.post("/v1/billing/rerate", json=body, key=key, headers=h)


def test_a_dry_run_answers_the_deltas_the_card_gives_and_changes_nothing(db, collector):
    """Per tenant, rows and the exact sum of (current card price - stored
    price) over the range; no adjustment is written and no row changes."""
    seed(db, collector)
    before = db.query("SELECT id, rated_price_usd, rate_rule FROM cost_rows ORDER BY id")
    admin = db.create_key("admin")
    r = rerate(collector, admin, **{"from": "2026-12-01", "to": "2026-12-03", "dry_run": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["run"], int) and body["dry_run"] is True
    want = expected(db)
    got = {t["tenant_id"]: (t["rows"], Decimal(t["delta_usd"])) for t in body["tenants"]}
    assert got == want and len(got) == 3
    assert all(isinstance(t["delta_usd"], str) for t in body["tenants"])
    assert db.scalar("SELECT count(*) FROM billing_adjustments") == 0
    assert db.query("SELECT id, rated_price_usd, rate_rule FROM cost_rows ORDER BY id") == before

    r = rerate(collector, admin, **{"from": "2026-12-01", "to": "2026-12-03",
                                    "tenant": "globex"})
    assert r.status_code == 200, r.text
    got = {t["tenant_id"]: (t["rows"], Decimal(t["delta_usd"])) for t in r.json()["tenants"]}
    assert got == expected(db, "globex")


def test_a_commit_sent_twice_with_one_idempotency_key_adds_once(db, collector):
    """The commit appends the adjustments once; the repeat answers the same
    run; the run is listed with who ran it and why; usage's adjustments_usd
    is the delta and its margin includes it."""
    seed(db, collector)
    admin = db.create_key("admin")
    body = {"from": "2026-12-01", "to": "2026-12-03", "dry_run": False, "reason": "card fix"}
    first = rerate(collector, admin, idem="fix-dec-1", **body)
    assert first.status_code == 200, first.text
    n = db.scalar("SELECT count(*) FROM billing_adjustments")
    assert n == db.scalar(
        "SELECT count(*) FROM (SELECT DISTINCT tenant_id, ts::date, project, provider, model_id"
        " FROM cost_rows WHERE ts >= '2026-12-01' AND ts < '2026-12-03') d")
    again = rerate(collector, admin, idem="fix-dec-1", **body)
    assert again.status_code == 200 and again.json() == first.json()
    assert db.scalar("SELECT count(*) FROM billing_adjustments") == n
    want = expected(db)
    assert db.scalar("SELECT sum(delta_usd) FROM billing_adjustments") == sum(
        d for _, d in want.values())

    # The same key for another range is refused, naming the header.
    other = rerate(collector, admin, idem="fix-dec-1", **{**body, "to": "2026-12-04"})
    assert other.status_code == 409 and "Idempotency-Key" in other.text

    runs = collector.get("/v1/billing/rerates", key=admin).json()["runs"]
    assert len(runs) == 1
    run = runs[0]
    assert run["run"] == first.json()["run"] and run["reason"] == "card fix"
    assert run["ran_by"] == "key:" + admin[:len(run["ran_by"]) - 4] and run["dry_run"] is False
    assert Decimal(run["delta_usd"]) == sum(d for _, d in want.values())

    # Usage counts the adjustments on their days.
    u = collector.get("/v1/billing/usage", key=admin,
                      params={"start": "2026-12-01", "end": "2026-12-02"}).json()
    for t in u["tenants"]:
        assert Decimal(t["adjustments_usd"]) == want[t["tenant_id"]][1]
        assert Decimal(t["margin_usd"]) == (Decimal(t["rated_usd"]) + want[t["tenant_id"]][1]
                                            - Decimal(t["cost_usd"]))

    # Adjustments are history: the table refuses changes.
    try:
        db.query("DELETE FROM billing_adjustments")
        raise AssertionError("a delete was allowed")
    except Exception as e:  # psycopg2 error, the transaction must be rolled back
        db.conn.rollback()
        assert "append-only" in str(e)


def test_rerate_is_the_operators_and_refuses_bad_bodies_by_name(db, collector):
    """A read key gets 403 (admin route), a tenant admin key 403; bad members
    get a 400 naming them."""
    admin = db.create_key("admin")
    read = db.create_key("read")
    scoped = db.create_key("admin", tenant="acme")
    ok = {"from": "2026-12-01", "to": "2026-12-03"}
    assert rerate(collector, read, **ok).status_code == 403
    assert rerate(collector, scoped, **ok).status_code == 403
    assert collector.get("/v1/billing/rerates", key=scoped).status_code == 403
    for body, name in [({"to": "2026-12-03"}, "from"), ({**ok, "to": "soon"}, "to"),
                       ({**ok, "dry_run": "no"}, "dry_run"), ({**ok, "tenants": "a"}, "tenants"),
                       ({"from": "2026-12-03", "to": "2026-12-01"}, "from")]:
        r = rerate(collector, admin, **body)
        assert r.status_code == 400 and name in r.text, (body, r.text)


def test_cli_rerate_reports_the_same_deltas_and_commits_with_a_reason(db, collector):
    """`vgcollector prices rerate` prints the run id first, then per tenant the
    rows and delta the card gives; --commit appends the adjustments, kept
    with ran_by cli and the reason."""
    seed(db, collector)
    want = expected(db)
    r = run_vgc("prices", "rerate", "--from", "2026-12-01", "--to", "2026-12-03",
                "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].isdigit() and "dry run" in lines[1]
    got = {}
    for line in lines[3:]:
        name, rows, delta = line.split()
        got[None if name == "(none)" else name] = (int(rows), Decimal(delta))
    assert got == want
    assert db.scalar("SELECT count(*) FROM billing_adjustments") == 0
    r = run_vgc("prices", "rerate", "--from", "2026-12-01", "--to", "2026-12-03", "--commit",
                "--reason", "december card", "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    run = int(r.stdout.splitlines()[0])
    assert db.query("SELECT ran_by, reason, dry_run FROM billing_rerate_runs WHERE run_id = %s",
                    run) == [("cli", "december card", False)]
    assert db.scalar("SELECT sum(delta_usd) FROM billing_adjustments WHERE run_id = %s",
                     run) == sum(d for _, d in want.values())
    r = run_vgc("prices", "rerate", "--from", "2026-12-03", "--to", "2026-12-01",
                "--db", db.conninfo)
    assert r.returncode == 2 and "from" in r.stderr


def test_cli_reconcile_lists_tenants_under_the_margin_floor(db, collector):
    """`prices reconcile` lists each tenant whose (rated + adjustments - cost)
    / (rated + adjustments) is under --min-margin, exiting 1; none under: 0.
    The collector rates rows on ingest, so each tenant's margin comes from a
    card rule of its own set before the rows arrive (markups whose margins
    1 - 1/markup are exact decimals: 0.2 and 0.5)."""
    db.query("INSERT INTO rate_card_rules (tenant_id, kind, markup) VALUES"
             " ('acme', 'cost_plus', 1.25), ('globex', 'cost_plus', 2)")
    seed(db, collector)
    margins = {}
    for t, cost, rated in db.query(
            "SELECT tenant_id, sum(cost_usd), sum(rated_price_usd) FROM cost_rows"
            " WHERE ts >= '2026-12-01' AND ts < '2026-12-04' GROUP BY tenant_id"):
        margins[t or "(none)"] = (rated - cost) / rated
    floor = sorted(margins.values())[1]  # the lowest tenant is under, the others not
    args = ("prices", "reconcile", "--from", "2026-12-01", "--to", "2026-12-04",
            "--db", db.conninfo)
    r = run_vgc(*args, "--min-margin", str(floor))
    assert r.returncode == 1, r.stdout + r.stderr
    listed = [line.split()[0] for line in r.stdout.splitlines()[1:-1]]
    assert listed == [min(margins, key=margins.get)]
    r = run_vgc(*args, "--min-margin", "-5")
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("0 tenants"), r.stdout
    r = run_vgc(*args, "--min-margin", "lots")
    assert r.returncode == 2 and "--min-margin" in r.stderr
