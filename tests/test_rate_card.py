"""The rate card's resolution (schema/0014_rate_card.sql, migrated by the real
binary): the one rule that applies to a row, the price it gives and its
token, as VoiceGateway's contract says. Each case's price is computed here
with Decimal."""

from decimal import Decimal

import pytest


def rule(db, kind="cost_plus", **scope):
    cols = ", ".join(["kind"] + list(scope))
    marks = ", ".join(["%s"] * (len(scope) + 1))
    return db.scalar(f"INSERT INTO rate_card_rules ({cols}) VALUES ({marks}) RETURNING rule_id",
                     kind, *scope.values())


def rate(db, tenant="acme", modality="llm", provider="openai", model="openai/gpt-4o-mini",
         cost="0.01", book=None, input_units="1200", output_units="350"):
    price, token, rule_id = db.query(
        "SELECT price, rule, rule_id FROM vgc_rate_card_rate(%s, %s, %s, %s, %s::numeric,"
        " %s::numeric, %s::numeric, %s::numeric)",
        tenant, modality, provider, model, cost, book, input_units, output_units)[0]
    return price, token, rule_id


def test_no_rule_is_cost_plus_at_the_default_markup(db):
    assert rate(db) == (Decimal("0.01"), "default:1", None)
    db.query("UPDATE rate_card SET default_markup = 1.250")
    assert rate(db) == (Decimal("0.01") * Decimal("1.25"), "default:1.25", None)


def test_tenant_beats_plan_beats_global(db):
    g = rule(db, markup="1.1")
    assert rate(db)[1:] == ("cost_plus:1.1", g)
    db.query("INSERT INTO tenant_plans VALUES ('acme', 'growth')")
    p = rule(db, markup="1.2", plan="growth")
    assert rate(db)[1:] == ("cost_plus:1.2", p)
    # A global rule naming the model is still less specific than a plan rule.
    rule(db, markup="1.9", provider="openai", model="gpt-4o-mini")
    assert rate(db)[1:] == ("cost_plus:1.2", p)
    t = rule(db, markup="1.3", tenant_id="acme")
    assert rate(db) == (Decimal("0.013"), "cost_plus:1.3", t)
    # Another tenant, with no plan: the global model rule.
    assert rate(db, tenant="other")[1] == "cost_plus:1.9"


def test_model_beats_provider_beats_modality(db):
    m = rule(db, markup="1.1", modality="llm")
    assert rate(db)[2] == m
    p = rule(db, markup="1.2", modality="llm", provider="openai")
    assert rate(db)[2] == p
    # A rule's model may be written with its provider prefix.
    x = rule(db, markup="1.5", provider="openai", model="openai/gpt-4o-mini")
    assert db.scalar("SELECT model FROM rate_card_rules WHERE rule_id = %s", x) == "gpt-4o-mini"
    assert rate(db)[2] == x and rate(db, model="gpt-4o-mini")[2] == x
    assert rate(db, model="openai/gpt-5")[2] == p
    assert rate(db, modality="stt", provider="deepgram", model="nova-3")[1] == "default:1"


def test_the_rule_changed_last_wins_a_tie(db):
    a = rule(db, markup="1.1", provider="openai")
    b = rule(db, markup="1.2", provider="openai", modality="llm")
    assert rate(db)[2] == b
    db.query("UPDATE rate_card_rules SET markup = 1.15 WHERE rule_id = %s", a)
    assert rate(db)[1:] == ("cost_plus:1.15", a)


def test_fixed_rules_price_the_billable_quantity_in_their_unit(db):
    rule(db, kind="fixed", fixed="0.006", unit="minute", modality="stt")
    rule(db, kind="fixed", fixed="0.00003", unit="char", modality="tts")
    rule(db, kind="fixed", fixed="2.50", unit="1m_token", modality="llm")
    rule(db, kind="fixed", fixed="0.0100", unit="request", provider="acme-asr")
    assert rate(db, modality="stt", provider="deepgram", model="nova-3", input_units="2.5",
                output_units="0") == (Decimal("0.015"), "fixed:0.006/minute", 1)
    assert rate(db, modality="tts", provider="cartesia", model="sonic", input_units="1234",
                output_units="0")[:2] == (Decimal("0.03702"), "fixed:0.00003/char")
    assert rate(db)[:2] == (Decimal("1550") * Decimal("2.5") / 1000000, "fixed:2.5/1m_token")
    assert rate(db, modality="stt", provider="acme-asr", model="a1")[:2] == (
        Decimal("0.01"), "fixed:0.01/request")


def test_a_unit_that_does_not_measure_the_row_is_unrated(db):
    rule(db, kind="fixed", fixed="0.006", unit="minute")
    assert rate(db)[:2] == (None, "unrated:unit")


def test_basis_book_prices_from_the_book_and_an_unpriced_row_is_unrated(db):
    rule(db, markup="1.3", basis="book", provider="openai")
    assert rate(db, cost="999", book="0.000375")[:2] == (Decimal("0.0004875"), "cost_plus:1.3")
    assert rate(db, cost="999", book=None)[:2] == (None, "unrated:no_price")


def test_tokens_use_the_shortest_decimal(db):
    rule(db, markup="2.000")
    assert rate(db)[1] == "cost_plus:2"
    db.query("UPDATE rate_card_rules SET markup = 0.00005")
    assert rate(db)[1] == "cost_plus:0.00005"


def test_prices_round_half_even_to_12_digits(db):
    """5e-13 after an even 12th digit rounds down (PostgreSQL's round() would
    give 1e-12); after an odd one, up."""
    rule(db, markup="0.5")
    assert rate(db, cost="0.000000000001")[0] == Decimal("0")
    assert rate(db, cost="0.000000000003")[0] == Decimal("0.000000000002")


def test_bad_rules_are_refused_by_the_schema(db):
    import psycopg2
    for bad in ({"kind": "cost_plus", "markup": "-1"},
                {"kind": "fixed", "fixed": "1", "unit": "hour"},
                {"kind": "cost_plus", "markup": "1", "fixed": "1", "unit": "minute"}):
        with pytest.raises(psycopg2.Error):
            rule(db, **bad)
        db.conn.rollback() if not db.conn.autocommit else None


def test_every_change_is_a_new_revision(db):
    r0 = db.scalar("SELECT revision FROM rate_card")
    rid = rule(db, markup="1.1")
    db.query("INSERT INTO tenant_plans VALUES ('acme', 'growth')")
    db.query("DELETE FROM rate_card_rules WHERE rule_id = %s", rid)
    assert db.scalar("SELECT revision FROM rate_card") == r0 + 3
    # One rule per scope.
    rule(db, markup="1.1", provider="openai")
    import psycopg2
    with pytest.raises(psycopg2.Error):
        rule(db, markup="1.2", provider="openai")
