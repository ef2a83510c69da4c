"""The web dashboard over the real collector and PostgreSQL, in Debian's headless Chromium driven
over the DevTools protocol (tests/cdp.py): serving and its headers, signing in, the
overview's figures against /v1/rollups digit for digit, scoped keys, the CSV link, a
hostile tenant name, refresh, and the URL contract. Screenshots go to build/screenshots/."""

import csv
import gzip
import io
import json
import os
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from cdp import Browser
from conftest import BUILD, Collector, Db, assert_ledger_consistent, make_row

SHOTS = os.path.join(BUILD, "screenshots")
XSS = "<img src=x onerror=alert(1)>"
# A second hostile name whose handler would leave a flag behind if it ever ran.
XSS_FLAG = "<img src=x onerror=\"window.__vgc_pwned=1\">"


def day(offset=0):
    d = datetime.now(timezone.utc).date() + timedelta(days=offset)
    return d.isoformat()


# The page's default period, given explicitly: the 30 days ending today (UTC).
FROM, TO = day(-29), day(1)


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


class Shared:
    """One database with seed() in it and one collector, for the tests that only read."""

    def __init__(self, pg):
        self.db = Db(pg, pg.createdb()).migrate()
        self.collector = Collector(self.db)
        seed(self.collector, self.db.create_key("ingest"))
        self.read = self.db.create_key("read")


@pytest.fixture(scope="module")
def shared(pg):
    s = Shared(pg)
    yield s
    s.collector.stop()
    assert_ledger_consistent(s.db)
    s.db.close()


@pytest.fixture
def page(browser):
    pages = []

    def open_page(width=1280, height=800, mobile=False):
        p = browser.new_page(width, height, mobile)
        pages.append(p)
        return p

    yield open_page
    for p in pages:
        p.close()


def fmt_money(s):
    """The page's money text for an API decimal string: thousands separators, every
    digit kept, at least two decimals ("1234.5" -> "$1,234.50")."""
    neg = s.startswith("-")
    whole, _, frac = s.lstrip("+-").partition(".")
    whole = f"{int(whole):,}"
    return ("\u2212" if neg else "") + "$" + whole + "." + frac.ljust(2, "0")


def ingest(collector, key, rows):
    r = collector.post("/v1/ingest", json=rows, key=key)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    return r.json()


def seed(collector, key):
    """Tenants with large and sub-cent amounts, an unattributed row, two modalities."""
    now = time.time()
    rows = [
        make_row(1, tenant_id="acme", cost_usd=1234567.891234, timestamp=now - 3600, metadata={}),
        make_row(2, tenant_id="acme", cost_usd=0.000001, timestamp=now - 86400, metadata={},
                 agent_id="agent-2", model_id="deepgram/nova", provider="deepgram",
                 modality="stt"),
        make_row(3, tenant_id="globex", cost_usd=12.5, timestamp=now - 2 * 86400, metadata={},
                 status="error"),
        make_row(4, tenant_id="globex", cost_usd=0.333333, timestamp=now - 600, metadata={},
                 status="fallback", fallback_from="openai"),
        make_row(5, tenant_id=None, cost_usd=7.25, timestamp=now - 7200, metadata={}),
    ]
    ingest(collector, key, rows)


def rollups(collector, key, **params):
    r = collector.get("/v1/rollups", key=key, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def open_overview(page_factory, collector, key, frm=FROM, to=TO, **kw):
    p = page_factory(**kw)
    p.goto(f"{collector.url}/?from={frm}&to={to}#key={key}")
    p.wait("!!document.querySelector('#total-cost[data-cost]')", what="#total-cost[data-cost]")
    return p


def tenant_rows(p):
    return p.eval("[...document.querySelectorAll('tr[data-tenant]')]"
                  ".map(r => [r.dataset.tenant, r.dataset.cost, r.querySelector('th').textContent])")


# ---- serving -------------------------------------------------------------------

def test_dashboard_is_served_with_security_headers_etags_caching_and_gzip(shared):
    collector = shared.collector
    html = httpx.get(collector.url + "/")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert html.headers["cache-control"] == "no-cache"
    assets = [a for a in ("/ui/app.js", "/ui/style.css") if a in html.text]
    assert len(assets) == 2, "the HTML names its assets under /ui/"
    for r in [html] + [httpx.get(collector.url + "/ui/nope.js")]:
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in html.text and " on" + "load=" not in html.text
    for a in assets:
        url = html.text.split(a + "?v=")[1].split('"')[0]
        r = httpx.get(f"{collector.url}{a}?v={url}", headers={"Accept-Encoding": "identity"})
        assert r.status_code == 200 and "max-age=31536000" in r.headers["cache-control"]
        etag = r.headers["etag"]
        assert etag.strip('"') == url, "the ETag is the content hash the HTML names"
        again = httpx.get(collector.url + a, headers={"If-None-Match": etag,
                                                      "Accept-Encoding": "identity"})
        assert again.status_code == 304 and again.content == b""
        with httpx.stream("GET", collector.url + a, headers={"Accept-Encoding": "gzip"}) as z:
            assert z.headers["content-encoding"] == "gzip"
            assert z.headers["etag"] != etag, "the gzip body is another representation"
            raw = b"".join(z.iter_raw())
        assert len(raw) < len(r.content) and gzip.decompress(raw) == r.content
        plain = httpx.get(collector.url + a, headers={"Accept-Encoding": "gzip;q=0"})
        assert "content-encoding" not in plain.headers and plain.content == r.content


def test_dashboard_off_answers_404(db, collectors):
    c = collectors(db, config_text="dashboard = off\n")
    assert httpx.get(c.url + "/").status_code == 404
    assert httpx.get(c.url + "/ui/app.js").status_code == 404
    assert httpx.get(c.url + "/healthz").status_code == 200


# ---- the page ---------------------------------------------------------------------

def test_page_loads_with_no_console_errors_and_no_failed_requests(shared, page):
    db, collector, key = shared.db, shared.collector, shared.read
    p = open_overview(page, collector, key)
    p.wait("document.querySelectorAll('tr[data-tenant]').length === 3")
    p.pump(0.3)
    assert p.console_errors() == []
    assert p.failed_requests() == []
    resp = p.responses()
    assert resp and all(r["status"] < 400 for r in resp), [(r["url"], r["status"]) for r in resp]
    hosts = {r["url"].split("/")[2] for r in resp if r["url"].startswith("http")}
    assert hosts == {collector.url.split("/")[2]}, f"requests left the collector: {hosts}"


def test_sign_in_works_and_a_bad_key_brings_the_form_back_with_the_reason(shared, page):
    db, collector, key = shared.db, shared.collector, shared.read
    p = page()
    p.goto(collector.url + "/")
    p.wait("!document.getElementById('signin').hidden", what="the sign-in form")
    assert p.eval("document.getElementById('view-overview').hidden")

    def sign_in(k):
        p.eval("(() => { document.getElementById('key').value = %s;"
               " document.getElementById('signin-form').requestSubmit(); return true })()"
               % json.dumps(k))

    sign_in(key)
    p.wait("!!document.querySelector('#total-cost[data-cost]')", what="overview after sign-in")
    assert p.eval("document.getElementById('signin').hidden")
    assert p.eval("sessionStorage.getItem('vgc_key')") == key
    assert p.eval("document.cookie") == ""

    p.click("#sign-out")
    p.wait("!document.getElementById('signin').hidden")
    sign_in("vgk_" + "A" * 43)
    reason = p.wait("!document.getElementById('signin').hidden &&"
                    " !document.getElementById('signin-reason').hidden &&"
                    " document.getElementById('signin-reason').textContent.startsWith('401') &&"
                    " document.getElementById('signin-reason').textContent",
                    what="the form back with a reason")
    assert reason.startswith("401: ") and len(reason) > 6, reason
    assert p.eval("sessionStorage.getItem('vgc_key')") is None

    ingest_key = db.create_key("ingest")
    sign_in(ingest_key)
    # Either the page's own check of the role or the API's 403, whichever answers first.
    reason = p.wait("!document.getElementById('signin-reason').hidden &&"
                    " document.getElementById('signin-reason').textContent.includes('ingest') &&"
                    " document.getElementById('signin-reason').textContent")
    assert f"key {ingest_key[:12]} has role ingest" in reason, reason
    assert p.eval("sessionStorage.getItem('vgc_key')") is None


def test_total_and_every_tenant_row_equal_rollups_digit_for_digit(shared, page):
    db, collector, key = shared.db, shared.collector, shared.read
    api = rollups(collector, key, **{"from": FROM, "to": TO, "granularity": "total",
                                      "group_by": "tenant"})
    p = open_overview(page, collector, key)
    p.wait("document.querySelectorAll('tr[data-tenant]').length > 0")
    assert p.eval("document.getElementById('total-cost').dataset.cost") == api["totals"]["cost_usd"]
    assert p.eval("document.getElementById('total-requests').dataset.requests") == \
        str(api["totals"]["requests"])
    shown = sorted((t, c) for t, c, _ in tenant_rows(p))
    want = sorted(("" if r["tenant"] is None else r["tenant"], r["cost_usd"]) for r in api["rows"])
    assert shown == want and len(shown) == 3
    # Shown with separators, every digit kept, and the unattributed row named so.
    assert p.eval("document.getElementById('total-cost').textContent") == "$1,234,587.974568"
    for t, c, _ in tenant_rows(p):
        sel = "tr[data-tenant=\"%s\"] .money" % t
        assert p.eval(f"document.querySelector('{sel}').textContent") == fmt_money(c)
    names = {t: n for t, _, n in tenant_rows(p)}
    assert names[""] == "unattributed"
    assert p.eval("document.querySelector('tr[data-tenant=\"acme\"] .money').textContent") == \
        "$1,234,567.891235"
    # The previous period (empty) and the change are shown, exactly.
    assert "+$1,234,587.974568" in p.eval("document.getElementById('prev-cost').textContent")
    p.screenshot(os.path.join(SHOTS, "overview-1280.png"))
    p.resize(390, 844, True)
    p.pump(0.4)
    p.screenshot(os.path.join(SHOTS, "overview-390.png"))


def test_empty_period_says_no_rows_in_this_period(shared, page):
    collector, key = shared.collector, shared.read
    p = open_overview(page, collector, key, frm="2024-01-01", to="2024-01-08")
    assert p.eval("document.getElementById('total-cost').dataset.cost") == "0"
    assert p.wait("document.getElementById('chart').textContent") == "no rows in this period"
    assert p.eval("document.getElementById('table-tenant').textContent") == "no rows in this period"


def test_tenant_scoped_key_page_shows_only_its_tenant(shared, page):
    collector, key = shared.collector, shared.db.create_key("read", tenant="globex")
    p = open_overview(page, collector, key)
    p.wait("document.querySelectorAll('tr[data-tenant]').length > 0")
    assert [(t, c) for t, c, _ in tenant_rows(p)] == [("globex", "12.833333")]
    assert p.eval("document.getElementById('total-cost').dataset.cost") == "12.833333"
    note = p.eval("document.getElementById('scope-note').hidden ? '' :"
                  " document.getElementById('scope-note').textContent")
    assert "tenant globex" in note and "only" in note


def test_csv_link_downloads_exactly_the_shown_rows(shared, page):
    db, collector, key = shared.db, shared.collector, shared.read
    p = page()
    p.goto(f"{collector.url}/?view=tenant&tenant=acme&from={FROM}&to={TO}#key={key}")
    p.wait("document.querySelectorAll('#tenant-table-agent tr[data-agent]').length > 0 &&"
           " document.querySelectorAll('#tenant-table-model tr[data-model]').length > 0")
    assert p.eval("document.getElementById('tenant-name').textContent") == "acme"
    for by in ("agent", "model"):
        href = p.eval(f"document.getElementById('csv-{by}').getAttribute('href')")
        assert "format=csv" in href and "key" not in href
        # Fetched as the page fetches it: the link's URL with the key in the header.
        got = p.eval("fetch(%s, {headers: {Authorization: 'Bearer ' +"
                     " sessionStorage.getItem('vgc_key')}}).then(r => r.text())"
                     % json.dumps(href))
        want = collector.get("/v1/rollups", key=key, params={
            "from": FROM, "to": TO, "granularity": "day", "group_by": by, "tenant": "acme",
            "format": "csv"})
        assert want.status_code == 200 and got == want.text
        lines = list(csv.DictReader(io.StringIO(got)))
        shown = p.eval(f"[...document.querySelectorAll('#tenant-table-{by} tr[data-{by}]')]"
                       f".map(r => [r.dataset.period, r.dataset.{by}, r.dataset.cost])")
        assert sorted(shown) == sorted([l["period"], l[by], l["cost_usd"]] for l in lines)
        assert len(shown) == 2
    p.screenshot(os.path.join(SHOTS, "tenant-1280.png"))
    p.resize(390, 844, True)
    p.pump(0.4)
    p.screenshot(os.path.join(SHOTS, "tenant-390.png"))


@pytest.mark.hand_made_rows
def test_xss_tenant_name_is_shown_literally_and_no_script_runs(db, collector, page):
    # Ingest refuses such a tenant id, so it goes into the rollup by hand (an older
    # collector, or a hand edit, could have left one); agent and model names may hold it.
    ingest(collector, db.create_key("ingest"), [
        make_row(1, tenant_id="acme", agent_id=XSS_FLAG, model_id=XSS, cost_usd=1.5,
                 metadata={})])
    db.query("INSERT INTO cost_rollup_hourly (hour, project, tenant_id, modality, requests,"
             " cost_usd) VALUES (date_trunc('hour', now()), 'default', %s, 'llm', 1, 2.25),"
             " (date_trunc('hour', now()), 'default', %s, 'llm', 1, 0.75)", XSS, XSS_FLAG)
    key = db.create_key("read")
    p = open_overview(page, collector, key)
    p.wait("document.querySelectorAll('tr[data-tenant]').length === 3")
    names = {t: n for t, _, n in tenant_rows(p)}
    assert names[XSS] == XSS and names[XSS_FLAG] == XSS_FLAG
    assert XSS_FLAG in p.eval("[...document.querySelectorAll('#table-agent tbody th')]"
                              ".map(t => t.textContent)")
    assert XSS in p.eval("[...document.querySelectorAll('#table-model tbody th')]"
                         ".map(t => t.textContent)")
    p.click("tr[data-tenant='" + XSS.replace("'", "\\'") + "'] a")
    p.wait("!document.getElementById('view-tenant').hidden &&"
           " document.querySelectorAll('#tenant-table-agent tr').length > 0 ||"
           " document.querySelector('#tenant-table-agent .empty')")
    assert p.eval("document.getElementById('tenant-name').textContent") == XSS
    p.pump(0.5)
    assert p.eval("document.querySelectorAll('img').length") == 0, "a name became an element"
    assert p.eval("typeof window.__vgc_pwned") == "undefined"
    assert p.dialogs() == []
    # The tenant view also asks /v1/budgets: it must answer, so nothing complains.
    assert p.console_errors() == []


def test_newly_ingested_row_shows_after_a_refresh(db, collector, page):
    ik = db.create_key("ingest")
    seed(collector, ik)
    key = db.create_key("read")
    p = open_overview(page, collector, key)
    before = p.eval("document.getElementById('total-cost').dataset.cost")
    assert before == "1234587.974568"
    ingest(collector, ik, [make_row(9, tenant_id="initech", cost_usd=0.02, metadata={})])
    p.click("#refresh")
    after = rollups(collector, key, **{"from": FROM, "to": TO, "granularity": "total"})
    assert after["totals"]["cost_usd"] == "1234587.994568"
    p.wait("document.getElementById('total-cost').dataset.cost === '1234587.994568'",
           what="the new total after Refresh")
    p.wait("!!document.querySelector('tr[data-tenant=\"initech\"][data-cost=\"0.02\"]')")


def test_period_from_the_query_and_key_from_the_fragment_show_with_no_click(shared, page):
    collector, key = shared.collector, shared.read
    frm, to = day(-1), day(1)  # two days: only some of the rows, drawn hourly
    api = rollups(collector, key, **{"from": frm, "to": to, "granularity": "total",
                                      "group_by": "tenant"})
    p = open_overview(page, collector, key, frm=frm, to=to)
    assert p.eval("document.getElementById('total-cost').dataset.cost") == api["totals"]["cost_usd"]
    assert api["totals"]["cost_usd"] != "1234587.974568", "the period must cut the rows"
    assert "2 days" in p.eval("document.getElementById('period-text').textContent")
    assert p.eval("document.getElementById('chart-title').textContent").startswith("Hourly")
    href = p.eval("location.href")
    assert "key" not in href and "#" not in href and f"from={frm}" in href and f"to={to}" in href
    sent = [e["params"]["request"] for e in p.events if e["method"] == "Network.requestWillBeSent"]
    assert sent and not any(key in r["url"] for r in sent), "the key went into a URL"
    assert all(r["headers"].get("Authorization") == f"Bearer {key}"
               for r in sent if "/v1/" in r["url"])
