"""Rating on ingest: the collector sets every row's rated_price_usd and
rate_rule from the rate card in the ingest transaction, overwriting what the
worker sent, and stores the card revision that rated it. Before, the
collector stored the worker's rated price as sent (a worker could send 999).
Each expected price is computed here with Decimal."""

import json
from decimal import Decimal

from conftest import make_row, run_vgc

BOOK_FEED = {
    "provider": "openai", "currency": "USD",
    "models": [{"id": "gpt-4o-mini", "modality": "llm", "rates": [
        {"meter": "text_input", "amount": "0.00000015", "unit": "token"},
        {"meter": "text_output", "amount": "0.0000006", "unit": "token"},
    ]}],
}


def rule(db, kind="cost_plus", **scope):
    cols = ", ".join(["kind"] + list(scope))
    marks = ", ".join(["%s"] * (len(scope) + 1))
    return db.scalar(f"INSERT INTO rate_card_rules ({cols}) VALUES ({marks}) RETURNING rule_id",
                     kind, *scope.values())


def ingest(c, key, rows):
    r = c.post("/v1/ingest", json=rows, key=key)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(rows), r.text


def rated(db, row_id):
    """(rated_price_usd, rate_rule, rate_revision) as stored."""
    return db.query("SELECT rated_price_usd, rate_rule, rate_revision FROM cost_rows"
                    " WHERE id = %s", row_id)[0]


def revision(db):
    return db.scalar("SELECT revision FROM rate_card")


def llm(i, tenant="acme", cost=0.01, **over):
    return make_row(i, id=over.pop("id", f"r{i}"), tenant_id=tenant, cost_usd=cost,
                    rated_price_usd=999, rate_rule="forged", **over)


def test_no_rule_rates_at_the_default_markup_overwriting_the_worker(db, collector):
    """No rule: cost_plus at default_markup, token default:<markup>; the
    worker's rated_price_usd of 999 and its rate_rule are overwritten."""
    key = db.create_key("ingest")
    ingest(collector, key, [llm(0, cost=0.0123)])
    assert rated(db, "r0") == (Decimal("0.0123"), "default:1", revision(db))
    db.query("UPDATE rate_card SET default_markup = 1.50")
    ingest(collector, key, [llm(1, cost=0.0123)])
    assert rated(db, "r1") == (Decimal("0.0123") * Decimal("1.5"), "default:1.5", revision(db))


def test_every_resolution_case_gives_its_price_and_token(db, collector):
    """tenant beats plan beats global; model beats provider beats modality;
    the rule created or changed last wins a tie; each with the exact price."""
    key = db.create_key("ingest")
    cost = Decimal("0.0123")
    n = iter(range(1000))

    def rate_one(**over):
        i = next(n)
        ingest(collector, key, [llm(i, cost=float(cost), **over)])
        return rated(db, f"r{i}")[:2]

    rule(db, markup="1.1", modality="llm")
    assert rate_one() == (cost * Decimal("1.1"), "cost_plus:1.1")
    rule(db, markup="1.2", modality="llm", provider="openai")
    assert rate_one() == (cost * Decimal("1.2"), "cost_plus:1.2")
    # The model as VoiceGateway writes it beside its provider, and whole.
    rule(db, markup="1.25", provider="openai", model="gpt-4o-mini")
    assert rate_one() == (cost * Decimal("1.25"), "cost_plus:1.25")
    assert rate_one(model_id="gpt-4o-mini") == (cost * Decimal("1.25"), "cost_plus:1.25")
    assert rate_one(model_id="openai/gpt-5") == (cost * Decimal("1.2"), "cost_plus:1.2")
    # A plan rule beats every global one, once the tenant is on the plan.
    rule(db, markup="1.4", plan="growth")
    assert rate_one() == (cost * Decimal("1.25"), "cost_plus:1.25")
    db.query("INSERT INTO tenant_plans VALUES ('acme', 'growth')")
    assert rate_one() == (cost * Decimal("1.4"), "cost_plus:1.4")
    # A tenant rule beats the plan; fixed per 1k tokens: (1200 + 350) / 1000.
    rule(db, "fixed", tenant_id="acme", fixed="0.00200", unit="1k_token")
    assert rate_one() == (Decimal("0.002") * Decimal("1.55"), "fixed:0.002/1k_token")
    # Another tenant with no plan: the global model rule.
    assert rate_one(tenant="other") == (cost * Decimal("1.25"), "cost_plus:1.25")
    # A tie: two tenant rules of one level (the model, written alone and
    # whole). The one created last wins, then the one changed last.
    older = rule(db, markup="3", tenant_id="acme", model="gpt-4o-mini")
    rule(db, markup="2.0", tenant_id="acme", model="openai/gpt-4o-mini")
    assert rate_one() == (cost * 2, "cost_plus:2")
    db.query("UPDATE rate_card_rules SET markup = 3.0 WHERE rule_id = %s", older)
    assert rate_one() == (cost * 3, "cost_plus:3")


def test_fixed_units_and_shortest_tokens(db, collector):
    """fixed x the row's quantity in the rule's unit (STT minutes, TTS
    characters, 1 per request), tokens in their shortest decimal form, and
    exact arithmetic rounded half-even to 12 digits."""
    key = db.create_key("ingest")
    rule(db, "fixed", modality="stt", fixed="0.006", unit="minute")
    rule(db, "fixed", modality="tts", fixed="0.00005", unit="char")
    rule(db, "fixed", modality="llm", fixed="0.0000000000005", unit="request")
    ingest(collector, key, [
        make_row(0, id="stt", modality="stt", provider="deepgram", model_id="nova-3",
                 input_units=2.5, output_units=0, rated_price_usd=999),
        make_row(1, id="tts", modality="tts", provider="cartesia", model_id="sonic",
                 input_units=1234, output_units=0),
        make_row(2, id="llm-half", modality="llm"),
    ])
    assert rated(db, "stt")[:2] == (Decimal("0.006") * Decimal("2.5"), "fixed:0.006/minute")
    assert rated(db, "tts")[:2] == (Decimal("0.00005") * 1234, "fixed:0.00005/char")
    # 5e-13 is exactly half of the 12th digit after an even one: half-even gives 0.
    assert rated(db, "llm-half")[:2] == (Decimal("0"), "fixed:0.0000000000005/request")


def test_basis_book_uses_the_book_cost_and_unpriced_rows_are_unrated(db, collector, tmp_path):
    """cost_plus with basis book multiplies book_cost_usd, whatever cost the
    worker recorded; on a row the book does not price the price is NULL,
    never 0, and the token unrated:no_price."""
    feed = tmp_path / "oa.json"
    feed.write_text(json.dumps(BOOK_FEED))
    r = run_vgc("prices", "import", str(feed), "--effective-from", "2026-01-01",
                "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    rule(db, markup="1.3", basis="book")
    key = db.create_key("ingest")
    ingest(collector, key, [llm(0, cost=5), llm(1, model_id="openai/unknown-model")])
    book = 1200 * Decimal("0.00000015") + 350 * Decimal("0.0000006")
    assert rated(db, "r0")[:2] == (book * Decimal("1.3"), "cost_plus:1.3")
    assert rated(db, "r1")[:2] == (None, "unrated:no_price")
    # The rollup counts an unrated row as nothing billed.
    assert db.scalar("SELECT sum(rated_price_usd) FROM vgc_rollup_hourly_live") == \
        book * Decimal("1.3")


def test_a_card_change_leaves_stored_rows_alone(db, collector):
    """A change to the card applies to rows ingested after it; a stored row
    keeps its price, token and the revision it was rated with."""
    key = db.create_key("ingest")
    rule(db, markup="1.3")
    rev1 = revision(db)
    ingest(collector, key, [llm(0)])
    before = rated(db, "r0")
    assert before == (Decimal("0.013"), "cost_plus:1.3", rev1)
    db.query("UPDATE rate_card_rules SET markup = 2")
    db.query("INSERT INTO tenant_plans VALUES ('acme', 'pro')")
    assert revision(db) > rev1
    ingest(collector, key, [llm(1)])
    assert rated(db, "r0") == before
    assert rated(db, "r1") == (Decimal("0.02"), "cost_plus:2", revision(db))
