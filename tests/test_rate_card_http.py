"""The rate card over HTTP, VoiceGateway's billing API: GET
/v1/billing/rate-card and /rules, POST /rules (upsert by scope), DELETE
/rules/{rule_id}, PUT /v1/billing/rate-card (the default markup) and PUT
/v1/billing/plans/{tenant}; money as decimal strings. Markups are the
operator's: a tenant-scoped key gets 403. Each rule written here then rates
the rows ingested after it, with the price computed here with Decimal."""

from decimal import Decimal

import httpx
import pytest

from conftest import make_row


def call(c, method, path, key, json=None, params=None):
    return httpx.request(method, c.url + path, json=json, params=params,
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)


def ingest_one(c, key, i, **over):
    row = make_row(i, id=f"h{i}", tenant_id="acme", cost_usd=0.0123, rated_price_usd=999,
                   **over)
    r = c.post("/v1/ingest", json=[row], key=key)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    return row["id"]


def stored(db, row_id):
    return db.query("SELECT rated_price_usd, rate_rule FROM cost_rows WHERE id = %s", row_id)[0]


def test_rules_are_upserted_listed_and_rate_new_rows(db, collector):
    """A rule posted by scope rates the rows after it; posting the same scope
    again replaces it (created false); the card lists it with its token, as
    strings; deleting it brings back the default."""
    admin, ingest = db.create_key("admin"), db.create_key("ingest")
    cost = Decimal("0.0123")
    card = call(collector, "GET", "/v1/billing/rate-card", admin)
    assert card.status_code == 200, card.text
    assert card.json() == {"revision": card.json()["revision"], "default_markup": "1",
                           "rules": []}
    r = call(collector, "POST", "/v1/billing/rate-card/rules", admin,
             json={"provider": "openai", "model": "openai/gpt-4o-mini", "markup": "1.30"})
    assert r.status_code == 201, r.text
    rule_id = r.json()["rule_id"]
    assert r.json()["created"] is True
    assert stored(db, ingest_one(collector, ingest, 0)) == (cost * Decimal("1.3"),
                                                            "cost_plus:1.3")
    # The same scope written VoiceGateway's way (model beside provider): replaced.
    r = call(collector, "POST", "/v1/billing/rate-card/rules", admin,
             json={"provider": "openai", "model": "gpt-4o-mini", "fixed": 0.00005,
                   "unit": "token"})
    assert r.status_code == 200 and r.json()["rule_id"] == rule_id, r.text
    assert r.json()["created"] is False
    # 1200 + 350 tokens at 0.00005.
    assert stored(db, ingest_one(collector, ingest, 1)) == (Decimal("0.00005") * 1550,
                                                            "fixed:0.00005/token")
    rules = call(collector, "GET", "/v1/billing/rate-card/rules", admin).json()["rules"]
    assert rules == [{"rule_id": rule_id, "modality": None, "provider": "openai",
                      "model": "gpt-4o-mini", "tenant": None, "plan": None, "kind": "fixed",
                      "markup": None, "unit_price_usd": "0.00005", "unit": "token",
                      "basis": None, "rule": "fixed:0.00005/token"}]
    r = call(collector, "DELETE", f"/v1/billing/rate-card/rules/{rule_id}", admin)
    assert r.status_code == 200, r.text
    assert call(collector, "DELETE", f"/v1/billing/rate-card/rules/{rule_id}",
                admin).status_code == 404
    r = call(collector, "PUT", "/v1/billing/rate-card", admin, json={"default_markup": "1.5"})
    assert r.status_code == 200, r.text
    assert stored(db, ingest_one(collector, ingest, 2)) == (cost * Decimal("1.5"), "default:1.5")
    # A read key reads the card.
    read = db.create_key("read")
    body = call(collector, "GET", "/v1/billing/rate-card", read).json()
    assert body["default_markup"] == "1.5" and body["rules"] == []


def test_a_plan_assigned_over_http_makes_plan_rules_match(db, collector):
    """PUT /v1/billing/plans/{tenant} puts a tenant on a plan, so a plan rule
    rates its rows; null takes it off."""
    admin, ingest = db.create_key("admin"), db.create_key("ingest")
    r = call(collector, "POST", "/v1/billing/rate-card/rules", admin,
             json={"plan": "growth", "markup": 2, "basis": "recorded"})
    assert r.status_code == 201, r.text
    assert stored(db, ingest_one(collector, ingest, 0))[1] == "default:1"
    r = call(collector, "PUT", "/v1/billing/plans/acme", admin, json={"plan": "growth"})
    assert r.status_code == 200 and r.json()["plan"] == "growth", r.text
    assert stored(db, ingest_one(collector, ingest, 1)) == (Decimal("0.0246"), "cost_plus:2")
    r = call(collector, "PUT", "/v1/billing/plans/acme", admin, json={"plan": None})
    assert r.status_code == 200, r.text
    assert stored(db, ingest_one(collector, ingest, 2))[1] == "default:1"


@pytest.mark.parametrize("body,field", [
    ({"markup": "1.3", "fixed": "0.1", "unit": "minute"}, "markup and fixed"),
    ({"fixed": "0.1", "unit": "hour"}, "unit \"hour\""),
    ({"fixed": "0.1"}, "unit"),
    ({"markup": "-1"}, "markup \"-1\": must not be negative"),
    ({"markup": -1}, "markup -1: must not be negative"),
    ({"markup": "1e3"}, "markup \"1e3\""),
    ({"modality": "video", "markup": "1"}, "modality \"video\""),
    ({"markup": "1", "basis": "invoice"}, "basis \"invoice\""),
    ({"markup": "1", "colour": "red"}, "colour: unknown field"),
    ({}, "markup or fixed"),
    ({"tenant": 5, "markup": "1"}, "tenant: must be a string"),
])
def test_each_bad_rule_is_refused_naming_the_field(db, collector, body, field):
    admin = db.create_key("admin")
    r = call(collector, "POST", "/v1/billing/rate-card/rules", admin, json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"], r.text
    assert db.scalar("SELECT count(*) FROM rate_card_rules") == 0


def test_bad_bodies_and_ids(db, collector):
    admin = db.create_key("admin")
    r = httpx.post(collector.url + "/v1/billing/rate-card/rules", content=b'{"markup": "1", "fixed": 1.}',
                   headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"].startswith("fixed: not valid JSON"), r.text
    r = call(collector, "PUT", "/v1/billing/rate-card", admin, json={"default_markup": "-0.5"})
    assert r.status_code == 400 and "default_markup" in r.json()["error"], r.text
    assert call(collector, "DELETE", "/v1/billing/rate-card/rules/abc",
                admin).status_code == 400
    r = call(collector, "PUT", "/v1/billing/plans/acme", admin, json={"tier": "x"})
    assert r.status_code == 400 and "tier" in r.json()["error"], r.text


def test_expected_revision_refuses_a_lost_update(db, collector):
    """Two editors read revision N; the first write wins, the second,
    still expecting N, gets 409 and changes nothing."""
    admin = db.create_key("admin")
    rev = call(collector, "GET", "/v1/billing/rate-card", admin).json()["revision"]
    r = call(collector, "POST", "/v1/billing/rate-card/rules", admin,
             json={"modality": "llm", "markup": "1.2", "expected_revision": rev})
    assert r.status_code == 201, r.text
    assert r.json()["revision"] > rev
    r = call(collector, "POST", "/v1/billing/rate-card/rules", admin,
             json={"modality": "llm", "markup": "1.9", "expected_revision": rev})
    assert r.status_code == 409 and "expected_revision" in r.json()["error"], r.text
    assert db.scalar("SELECT markup FROM rate_card_rules") == Decimal("1.2")
    rule_id = db.scalar("SELECT rule_id FROM rate_card_rules")
    r = call(collector, "DELETE", f"/v1/billing/rate-card/rules/{rule_id}", admin,
             params={"expected_revision": rev})
    assert r.status_code == 409, r.text
    r = call(collector, "PUT", "/v1/billing/rate-card", admin,
             json={"default_markup": "2", "expected_revision": rev})
    assert r.status_code == 409, r.text


def test_scoped_and_read_keys_are_refused(db, collector):
    """Markups are operator information: a tenant-scoped key, read or admin,
    gets 403 on every rate card route; a read key cannot write; an ingest key
    gets 403."""
    tenant_read = db.create_key("read", tenant="acme")
    tenant_admin = db.create_key("admin", tenant="acme")
    read, ingest = db.create_key("read"), db.create_key("ingest")
    for key in (tenant_read, tenant_admin):
        for path in ("/v1/billing/rate-card", "/v1/billing/rate-card/rules"):
            r = call(collector, "GET", path, key)
            assert r.status_code == 403 and "scoped" in r.json()["error"], r.text
    r = call(collector, "POST", "/v1/billing/rate-card/rules", tenant_admin,
             json={"markup": "1"})
    assert r.status_code == 403, r.text
    r = call(collector, "POST", "/v1/billing/rate-card/rules", read, json={"markup": "1"})
    assert r.status_code == 403 and "admin" in r.json()["error"], r.text
    assert call(collector, "GET", "/v1/billing/rate-card", ingest).status_code == 403
    assert call(collector, "PUT", "/v1/billing/plans/acme", read,
                json={"plan": "x"}).status_code == 403
    assert db.scalar("SELECT count(*) FROM rate_card_rules") == 0
