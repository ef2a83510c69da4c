"""The dashboard's overview marks closed billing months, in headless Chromium over
the real collector: a month closed with POST /v1/periods/{month}/close shows as
closed (with when and by whom), the current month as open. Screenshot:
build/screenshots/overview-periods-1280.png."""

import os
from datetime import datetime, timezone

import pytest

from cdp import Browser
from conftest import make_row
from test_dashboard import SHOTS, day, open_overview
from test_focus import at, ingest, month_start, period_name


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def test_overview_marks_closed_months_and_open_ones(db, collector, browser):
    ingest_key, admin, read = db.create_key("ingest"), db.create_key("admin"), db.create_key("read")
    old, now = month_start(2), month_start(0)
    ingest(collector, ingest_key, [
        make_row(0, timestamp=at(old, 10), cost_usd=3.5, tenant_id="acme", metadata={}),
        make_row(1, timestamp=datetime.now(timezone.utc).timestamp() - 60, cost_usd=1.25,
                 tenant_id="acme", metadata={})])
    r = collector.post(f"/v1/periods/{period_name(old)}/close", key=admin, json={"force": True})
    assert r.status_code == 200, r.text
    p = browser.new_page(1280, 800, False)
    try:
        p = open_overview(lambda **kw: p, collector, read, frm=old.strftime("%Y-%m-%d"),
                          to=day(1))
        p.wait("document.querySelectorAll('#billing-periods [data-state]').length > 0",
               what="billing period badges")
        marks = p.eval("[...document.querySelectorAll('#billing-periods [data-state]')]"
                       ".map(b => [b.dataset.period, b.dataset.state, b.textContent, b.title])")
        by = {m[0]: m for m in marks}
        assert by[period_name(old)][1] == "closed"
        assert by[period_name(old)][2] == f"{period_name(old)} closed"
        assert "frozen for billing" in by[period_name(old)][3]
        assert by[period_name(now)][1] == "open"
        assert not p.eval("document.getElementById('billing-periods').hidden")
        os.makedirs(SHOTS, exist_ok=True)
        p.screenshot(os.path.join(SHOTS, "overview-periods-1280.png"))
    finally:
        p.close()
