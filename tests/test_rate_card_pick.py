"""The rate card's pick on ingest, a batch at a time (vgc_rate_card_picks,
schema/0024_rate_pick_index.sql): it finds each key's matching rules by
equality lookups split by the rule's first set scope column, where it used to
compare every key with every rule. These tests hold it to the card's SQL
reference, vgc_rate_card_rate (one row at a time, what re-rating uses), over
many overlapping rules, and check that a change to the card is honoured by
the very next batch through the same connection (the function's plan is kept
per connection; nothing it read may be)."""

import random
from decimal import Decimal

from conftest import make_row

TENANTS = ["acme", "globex", "initech", "umbrella", None]
PLANS = ["growth", "pro"]
MODELS = [("llm", "openai", "openai/gpt-4o-mini"), ("llm", "openai", "gpt-4o-mini"),
          ("llm", "anthropic", "anthropic/claude-3-haiku"), ("stt", "deepgram", "deepgram/nova-3"),
          ("stt", None, "deepgram/nova-3"), ("tts", "cartesia", "cartesia/sonic"),
          ("tts", "cartesia", None)]
UNITS = ["minute", "second", "char", "1k_char", "token", "1k_token", "1m_token", "request"]


def ingest(c, key, rows):
    r = c.post("/v1/ingest", json=rows, key=key)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(rows), r.text


def random_rule(rnd):
    """A rule with a random scope over few values, so that scopes overlap,
    tie, and name models both as the book does and whole."""
    scope = {}
    if rnd.random() < 0.35:
        scope["tenant_id"] = rnd.choice(TENANTS[:-1])
    if rnd.random() < 0.3:
        scope["plan"] = rnd.choice(PLANS)
    modality, provider, model = rnd.choice(MODELS)
    if rnd.random() < 0.4:
        scope["modality"] = modality
    if provider and rnd.random() < 0.5:
        scope["provider"] = provider
    if model and rnd.random() < 0.4:
        scope["model"] = model if rnd.random() < 0.5 else model.split("/")[-1]
    if rnd.random() < 0.25:
        return "fixed", dict(scope, fixed=str(Decimal(rnd.randrange(1, 9000)) / 10000),
                             unit=rnd.choice(UNITS))
    return "cost_plus", dict(scope, markup=str(Decimal(rnd.randrange(100, 400)) / 100),
                             basis=rnd.choice(["recorded", "recorded", "book"]))


def upsert(db, kind, scope):
    cols = ["kind"] + list(scope)
    sets = ", ".join(f"{c} = excluded.{c}" for c in ("kind", "markup", "basis", "fixed", "unit")
                     if c in cols) or "kind = excluded.kind"
    clear = ", ".join(f"{c} = NULL" for c in ("markup", "fixed", "unit") if c not in cols)
    db.query(f"INSERT INTO rate_card_rules ({', '.join(cols)})"
             f" VALUES ({', '.join(['%s'] * len(cols))})"
             " ON CONFLICT (tenant_id, plan, modality, provider, model)"
             f" DO UPDATE SET {sets}{', ' + clear if clear else ''}"
             f"{', basis = DEFAULT' if 'basis' not in cols else ''}",
             kind, *scope.values())


def rows_for(rnd, batch, n):
    rows = []
    for i in range(n):
        modality, provider, model = rnd.choice(MODELS)
        rows.append(make_row(i, id=f"b{batch}-{i}", tenant_id=rnd.choice(TENANTS),
                             modality=modality, provider=provider,
                             model_id=model or "cartesia/sonic-2",
                             input_units=rnd.randrange(1, 5000),
                             output_units=rnd.randrange(0, 900) if modality == "llm" else 0,
                             cost_usd=rnd.randrange(1, 100000) / 1e7))
    return rows


def differences(db, batch):
    """The stored rows of a batch whose price or token differ from what the
    card's SQL reference gives now."""
    return db.query(
        "SELECT c.id, c.tenant_id, c.modality, c.provider, c.model_id,"
        " c.rated_price_usd, c.rate_rule, v.price, v.rule"
        " FROM cost_rows c CROSS JOIN LATERAL vgc_rate_card_rate(c.tenant_id, c.modality,"
        " c.provider, c.model_id, c.cost_usd, c.book_cost_usd, c.input_units, c.output_units) v"
        " WHERE c.id LIKE %s AND (c.rated_price_usd, c.rate_rule) IS DISTINCT FROM"
        " (v.price, v.rule) ORDER BY c.id", f"b{batch}-%")


def test_many_overlapping_rules_resolve_as_the_sql_reference(db, collectors):
    """Seeded rounds of 60 then more overlapping rules (tenant, plan, global;
    model written both ways; ties; fixed and basis book), with rules added,
    changed and removed between batches: every row of every batch gets the
    price and token the card's one-row SQL reference computes, through one
    connection."""
    c = collectors(db, "--pool-size", "1")
    key = db.create_key("ingest")
    rnd = random.Random(26)
    db.query("INSERT INTO tenant_plans VALUES ('acme', 'growth'), ('globex', 'pro'),"
             " ('initech', 'growth')")
    for _ in range(60):
        upsert(db, *random_rule(rnd))
    ruled = 0
    for batch in range(6):
        rows = rows_for(rnd, batch, 200)
        ingest(c, key, rows)
        assert differences(db, batch) == []
        ruled += db.scalar("SELECT count(*) FROM cost_rows WHERE id LIKE %s"
                           " AND rate_rule NOT LIKE 'default:%%'", f"b{batch}-%")
        # Between batches: change some rules, remove some, add some, move a
        # tenant between plans.
        ids = [r[0] for r in db.query("SELECT rule_id FROM rate_card_rules ORDER BY rule_id")]
        for rid in rnd.sample(ids, 5):
            db.query("UPDATE rate_card_rules SET markup = markup + 0.5 WHERE rule_id = %s"
                     " AND kind = 'cost_plus'", rid)
        for rid in rnd.sample(ids, 5):
            db.query("DELETE FROM rate_card_rules WHERE rule_id = %s", rid)
        for _ in range(8):
            upsert(db, *random_rule(rnd))
        db.query("UPDATE tenant_plans SET plan = %s WHERE tenant_id = 'acme'", rnd.choice(PLANS))
    # The rules really decided most rows, not the default markup.
    assert ruled > 600


def test_a_card_change_is_honoured_by_the_very_next_batch(db, collectors):
    """Through one connection, each change to the card between two batches
    (a rule added, its markup changed, a tie broken by the later change, a
    plan assigned, the rule removed) decides the very next batch."""
    c = collectors(db, "--pool-size", "1")
    key = db.create_key("ingest")
    n = iter(range(100))

    def rate_one():
        i = next(n)
        ingest(c, key, [make_row(i, id=f"x{i}", tenant_id="acme", cost_usd=0.01)])
        return db.query("SELECT rated_price_usd, rate_rule FROM cost_rows WHERE id = %s",
                        f"x{i}")[0]

    cost = Decimal("0.01")
    assert rate_one() == (cost, "default:1")
    a = db.scalar("INSERT INTO rate_card_rules (kind, markup, provider)"
                  " VALUES ('cost_plus', 1.2, 'openai') RETURNING rule_id")
    assert rate_one() == (cost * Decimal("1.2"), "cost_plus:1.2")
    db.query("UPDATE rate_card_rules SET markup = 1.7 WHERE rule_id = %s", a)
    assert rate_one() == (cost * Decimal("1.7"), "cost_plus:1.7")
    b = db.scalar("INSERT INTO rate_card_rules (kind, markup, modality, provider)"
                  " VALUES ('cost_plus', 1.3, 'llm', 'openai') RETURNING rule_id")
    assert rate_one() == (cost * Decimal("1.3"), "cost_plus:1.3")
    db.query("UPDATE rate_card_rules SET markup = 1.8 WHERE rule_id = %s", a)
    assert rate_one() == (cost * Decimal("1.8"), "cost_plus:1.8")
    db.query("INSERT INTO rate_card_rules (kind, fixed, unit, plan)"
             " VALUES ('fixed', 0.5, 'request', 'pro')")
    assert rate_one() == (cost * Decimal("1.8"), "cost_plus:1.8")
    db.query("INSERT INTO tenant_plans VALUES ('acme', 'pro')")
    assert rate_one() == (Decimal("0.5"), "fixed:0.5/request")
    db.query("DELETE FROM tenant_plans")
    db.query("DELETE FROM rate_card_rules WHERE rule_id = %s", a)
    assert rate_one() == (cost * Decimal("1.3"), "cost_plus:1.3")
    db.query("DELETE FROM rate_card_rules WHERE rule_id = %s", b)
    assert rate_one() == (cost, "default:1")
