"""The dashboard's Billing view, in headless Chromium over the real
collector: for operator keys, revenue, adjustments, cost, margin and unpriced
rows per tenant exactly as GET /v1/billing/usage answers them, and the models
GET /v1/billing/unpriced lists; names shown as text, never HTML; the view is
not offered to a tenant key."""

import json
import os
import time

from conftest import make_row
from test_dashboard import FROM, SHOTS, TO, XSS, browser, fmt_money, ingest, page  # noqa: F401

OPENAI = {"provider": "openai", "currency": "USD", "models": [{"id": "gpt-4o-mini",
          "modality": "llm", "rates": [
              {"meter": "text_input", "amount": "0.00000015", "unit": "token",
               "effective_from": "2026-01-01"}]}]}


def test_billing_view_shows_what_the_usage_api_answers(db, collector, page):  # noqa: F811
    admin = db.create_key("admin")
    r = collector.post("/v1/billing/price-book", body=json.dumps(OPENAI), key=admin)
    assert r.status_code in (200, 201), r.text
    now = time.time()
    ingest(collector, db.create_key("ingest"), [
        make_row(1, tenant_id="acme", cost_usd=12.5, rated_price_usd=20, timestamp=now - 3600,
                 metadata={}),
        make_row(2, tenant_id="acme", cost_usd=0.000001, rated_price_usd=0.25,
                 timestamp=now - 86400, metadata={}, model_id="deepgram/nova-3",
                 provider="deepgram", modality="stt"),
        make_row(3, tenant_id="globex", cost_usd=3, rated_price_usd=2.5, timestamp=now - 7200,
                 metadata={}, model_id=XSS, provider="hostile"),
        make_row(4, tenant_id=None, cost_usd=1, rated_price_usd=1.1, timestamp=now - 600,
                 metadata={}, model_id="elevenlabs/flash", provider="elevenlabs",
                 modality="tts"),
    ])
    usage = collector.get("/v1/billing/usage", key=admin,
                          params={"from": FROM, "to": TO}).json()
    unpriced = collector.get("/v1/billing/unpriced", key=admin,
                             params={"from": FROM, "to": TO}).json()["models"]
    assert len(usage["tenants"]) == 3 and len(unpriced) == 4

    p = page()
    p.goto(f"{collector.url}/?view=billing&from={FROM}&to={TO}#key={admin}")
    p.wait("document.querySelectorAll('tr[data-billing-tenant]').length === 3"
           " && document.querySelectorAll('tr[data-unpriced-model]').length === 4")
    shown = {r[0]: r[1:] for r in p.eval(
        "[...document.querySelectorAll('tr[data-billing-tenant]')]"
        ".map(r => [r.dataset.billingTenant, r.dataset.rated, r.dataset.cost, r.dataset.margin,"
        " r.textContent])")}
    for t in usage["tenants"]:
        name = "" if t["tenant_id"] is None else t["tenant_id"]
        rated, cost, margin, text = shown[name]
        assert (rated, cost, margin) == (t["rated_usd"], t["cost_usd"], t["margin_usd"])
        for k in ("rated_usd", "cost_usd", "book_cost_usd", "margin_usd", "adjustments_usd"):
            assert fmt_money(t[k]) in text, (k, t[k], text)
    # The hostile model name is text: no element was made from it.
    assert XSS in p.eval("document.querySelector('#billing-unpriced').textContent")
    assert p.eval("document.querySelectorAll('main img').length") == 0
    assert p.eval("document.querySelector('#billing-total').dataset.margin") == \
        usage["totals"]["margin_usd"]
    models = p.eval("[...document.querySelectorAll('tr[data-unpriced-model]')]"
                    ".map(r => r.dataset.unpricedModel)")
    assert sorted(models) == sorted(m["model_id"] for m in unpriced)
    p.screenshot(os.path.join(SHOTS, "billing-1280.png"))
    p.resize(390, 844, True)
    p.pump(0.4)
    p.screenshot(os.path.join(SHOTS, "billing-390.png"))
    assert p.console_errors() == []


def test_billing_view_is_not_offered_to_a_tenant_key(db, collector, page):  # noqa: F811
    key = db.create_key("read", tenant="acme")
    p = page()
    p.goto(f"{collector.url}/?view=billing&from={FROM}&to={TO}#key={key}")
    p.wait("document.querySelector('#billing').textContent.includes('operator keys')")
    assert p.eval("document.querySelector('#nav-billing').hidden") is True
    assert p.eval("document.querySelectorAll('tr[data-billing-tenant]').length") == 0
    assert p.console_errors() == []
