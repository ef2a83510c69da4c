"""The dashboard's fleet and budgets views, in headless Chromium over the real collector:
each lists exactly what GET /v1/agents and GET /v1/budgets list,
with the data-attribute contract."""

import json
import os

from conftest import make_row, run_vgc, wait_until
from test_dashboard import FROM, SHOTS, TO, browser, fmt_money, ingest, page  # noqa: F401

CANONICAL = {"agent_id": "worker-host-1", "agent_name": "myvoiceagents", "status": "idle",
             "active_sessions": 0, "version": "0.13.0", "project": "mahimai-realty",
             "tenant_id": None, "region": "iad", "host": "worker-host-1",
             "started_at": 1783200000.0, "ts": 1783200015.0}


def sink(**over):
    s = {"recorded": 100, "sent": 100, "dropped": 0, "rejected": 0, "queued": 0,
         "spooled_rows": 0, "spool_bytes": 0, "last_error": None}
    s.update(over)
    return s


def beat(collector, key, body):
    r = collector.post("/v1/agents/heartbeat", json=body, key=key)
    assert r.status_code == 200, r.text


def test_fleet_view_lists_what_the_api_lists_marked_first(db, collectors, page):  # noqa: F811
    c = collectors(db, config_text="agent_ttl_s = 2\n")
    ik, rk = db.create_key("ingest"), db.create_key("read")
    beat(c, ik, dict(CANONICAL, agent_id="gone-quiet"))
    wait_until(lambda: c.get("/v1/agents", key=rk).json()["agents"][0]["status"] == "offline",
               20, "gone-quiet offline after agent_ttl_s")
    beat(c, ik, CANONICAL)
    beat(c, ik, dict(CANONICAL, agent_id="busy-1", status="busy", active_sessions=3,
                     sink=sink()))
    beat(c, ik, dict(CANONICAL, agent_id="lossy-1", sink=sink()))
    beat(c, ik, dict(CANONICAL, agent_id="lossy-1", sink=sink(recorded=110, dropped=10)))
    api = c.get("/v1/agents", key=rk).json()["agents"]
    assert {a["agent_id"] for a in api} == {"gone-quiet", "worker-host-1", "busy-1", "lossy-1"}

    p = page()
    p.goto(f"{c.url}/?view=fleet&from={FROM}&to={TO}#key={rk}")
    p.wait(f"document.querySelectorAll('tr[data-agent-id]').length === {len(api)}")
    # Statuses move with time (agent_ttl_s is 2 s), so the rows are held against the
    # very answer the page drew them from, read back from the browser; the ids must
    # also be what the API lists now.
    for _ in range(3):
        answers = [e["params"]["requestId"] for e in p.events
                   if e["method"] == "Network.responseReceived"
                   and e["params"]["response"]["url"].endswith("/v1/agents")]
        shown = p.eval("[...document.querySelectorAll('tr[data-agent-id]')]"
                       ".map(r => [r.dataset.agentId, r.dataset.status, r.dataset.delivery])")
        p.pump(0.1)
        if answers == [e["params"]["requestId"] for e in p.events
                       if e["method"] == "Network.responseReceived"
                       and e["params"]["response"]["url"].endswith("/v1/agents")]:
            break
    body = json.loads(p.call("Network.getResponseBody", requestId=answers[-1])["body"])
    drawn_from = {a["agent_id"]: (a["status"], a["delivery"]) for a in body["agents"]}
    assert {s[0]: (s[1], s[2]) for s in shown} == drawn_from
    assert set(drawn_from) == {a["agent_id"] for a in c.get("/v1/agents", key=rk).json()["agents"]}
    # Offline, dropping and rejecting workers come first, and are marked.
    marked = [s[0] for s in shown if s[1] == "offline" or s[2] in ("dropping", "rejecting")]
    assert [s[0] for s in shown[:len(marked)]] == marked and "gone-quiet" in marked
    assert p.eval("[...document.querySelectorAll('tr.marked')].map(r => r.dataset.agentId)") \
        == marked
    p.screenshot(os.path.join(SHOTS, "fleet-1280.png"))
    p.resize(390, 844, True)
    p.pump(0.4)
    p.screenshot(os.path.join(SHOTS, "fleet-390.png"))
    assert p.console_errors() == []


def budget(db, *args):
    r = run_vgc("budgets", "set", "--db", db.conninfo, *args)
    assert r.returncode == 0, r.stderr


def test_budgets_view_lists_what_the_api_lists(db, collector, page):  # noqa: F811
    rk = db.create_key("read")
    budget(db, "--name", "acme-monthly", "--tenant", "acme", "--period", "month",
           "--limit-usd", "100")
    budget(db, "--name", "globex-daily", "--tenant", "globex", "--period", "day",
           "--limit-usd", "10", "--thresholds", "50,80,100")
    budget(db, "--name", "openai-weekly", "--provider", "openai", "--period", "week",
           "--limit-usd", "1000000")
    ingest(collector, db.create_key("ingest"), [
        make_row(1, tenant_id="acme", cost_usd=60, metadata={}),
        make_row(2, tenant_id="globex", cost_usd=12.5, metadata={})])

    def settled():
        b = {x["name"]: x for x in collector.get("/v1/budgets", key=rk).json()["budgets"]}
        return b if b["globex-daily"]["state"] == "over" else None
    api = wait_until(settled, 30, "globex-daily over its limit")

    p = page()
    p.goto(f"{collector.url}/?view=budgets&from={FROM}&to={TO}#key={rk}")
    p.wait(f"document.querySelectorAll('[data-budget]').length === {len(api)}")
    shown = dict(p.eval("[...document.querySelectorAll('[data-budget]')]"
                        ".map(r => [r.dataset.budget, r.dataset.state])"))
    api = {x["name"]: x for x in collector.get("/v1/budgets", key=rk).json()["budgets"]}
    assert shown == {n: b["state"] for n, b in api.items()}
    assert shown["globex-daily"] == "over" and shown["acme-monthly"] in ("warn", "forecast_over")
    for name, b in api.items():
        text = p.eval(f"document.querySelector('[data-budget=\"{name}\"]').textContent")
        assert fmt_money(b["spent_usd"]) in text and fmt_money(b["limit_usd"]) in text
    p.screenshot(os.path.join(SHOTS, "budgets-1280.png"))
    p.resize(390, 844, True)
    p.pump(0.4)
    p.screenshot(os.path.join(SHOTS, "budgets-390.png"))
    assert p.console_errors() == []
