"""The dashboard's fleet and budgets views, in headless Chromium over the real collector:
each lists exactly what GET /v1/agents and GET /v1/budgets list,
with the data-attribute contract."""

import os
import time

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


def shown_rows(p):
    return p.eval("[...document.querySelectorAll('tr[data-agent-id]')]"
                  ".map(r => [r.dataset.agentId, r.dataset.status, r.dataset.delivery])")


# The order the fleet view promises: offline, then dropping, then rejecting, then the rest.
def problem_rank(status, delivery):
    if status == "offline":
        return 0
    return {"dropping": 1, "rejecting": 2}.get(delivery, 3)


def test_fleet_view_lists_what_the_api_lists_marked_first(db, collectors, page):  # noqa: F811
    c = collectors(db)
    ik, rk = db.create_key("ingest"), db.create_key("read")
    beat(c, ik, dict(CANONICAL, agent_id="gone-quiet"))
    db.query("UPDATE agents SET last_seen = now() - interval '10 minutes'")
    beat(c, ik, CANONICAL)
    beat(c, ik, dict(CANONICAL, agent_id="busy-1", status="busy", active_sessions=3,
                     sink=sink()))
    beat(c, ik, dict(CANONICAL, agent_id="lossy-1", sink=sink()))
    beat(c, ik, dict(CANONICAL, agent_id="lossy-1", sink=sink(recorded=110, dropped=10)))
    beat(c, ik, dict(CANONICAL, agent_id="a-refused", sink=sink(recorded=110, rejected=10)))
    api = c.get("/v1/agents", key=rk).json()["agents"]
    assert {a["agent_id"] for a in api} == {"gone-quiet", "worker-host-1", "busy-1", "lossy-1",
                                            "a-refused"}

    p = page()
    p.goto(f"{c.url}/?view=fleet&from={FROM}&to={TO}#key={rk}")
    p.wait(f"document.querySelectorAll('tr[data-agent-id]').length === {len(api)}")
    shown = shown_rows(p)
    assert {s[0]: (s[1], s[2]) for s in shown} == \
        {a["agent_id"]: (a["status"], a["delivery"]) for a in api}
    # Offline, dropping and rejecting workers come first, in that order, and are marked.
    assert [s[0] for s in shown] == ["gone-quiet", "lossy-1", "a-refused", "busy-1",
                                     "worker-host-1"]
    assert p.eval("[...document.querySelectorAll('tr.marked')].map(r => r.dataset.agentId)") \
        == ["gone-quiet", "lossy-1", "a-refused"]
    assert p.eval("document.getElementById('fleet-more')") is None
    p.screenshot(os.path.join(SHOTS, "fleet-1280.png"))
    p.resize(390, 844, True)
    p.pump(0.4)
    p.screenshot(os.path.join(SHOTS, "fleet-390.png"))
    assert p.console_errors() == []


def test_fleet_view_of_100k_workers_pages_problems_first(db, collectors, page):  # noqa: F811
    """The fleet view fetched the whole roster in one GET (a 500k roster was
    254 MB). Now it pages through GET /v1/agents: the first screen is 200
    workers with every problem first (offline, then dropping, then
    rejecting, across the roster's pages), and "Show more" fetches the next
    ones."""
    c = collectors(db)
    rk = db.create_key("read")
    db.query(
        "INSERT INTO agents (tenant_id, agent_id, project, status, active_sessions, last_seen,"
        " sink_recorded, sink_sent, sink_dropped, sink_rejected, sink_queued, sink_spooled_rows,"
        " sink_spool_bytes, dropped_grew_at, rejected_grew_at)"
        " SELECT NULL, 'w-' || lpad(g::text, 6, '0'), 'p', 'busy', 2,"
        "  CASE WHEN mod(g, 20011) = 0 THEN now() - interval '1 hour' ELSE now() END,"
        "  100, 100, 0, 0, 0, 0, 0,"
        "  CASE WHEN mod(g, 30011) = 7 THEN now() END, CASE WHEN mod(g, 40009) = 9 THEN now() END"
        " FROM generate_series(1, 100000) g")
    db.query("ANALYZE agents")
    p = page()
    t0 = time.monotonic()
    p.goto(f"{c.url}/?view=fleet&from={FROM}&to={TO}#key={rk}")
    p.wait("document.querySelectorAll('tr[data-agent-id]').length === 200")
    took = time.monotonic() - t0
    print(f"fleet view of 100,000 workers: first 200 rows drawn in {took:.2f} s")
    shown = shown_rows(p)
    offline = [f"w-{g:06d}" for g in range(20011, 100001, 20011)]
    dropping = [f"w-{g:06d}" for g in range(7, 100001) if g % 30011 == 7]
    rejecting = [f"w-{g:06d}" for g in range(9, 100001) if g % 40009 == 9
                 and g % 30011 != 7 and g % 20011 != 0]
    problems = offline + dropping + rejecting
    assert [s[0] for s in shown[:len(problems)]] == problems
    ranks = [problem_rank(s[1], s[2]) for s in shown]
    assert ranks == sorted(ranks)
    assert "problems first" in p.eval("document.getElementById('fleet-count').textContent")
    p.screenshot(os.path.join(SHOTS, "fleet-100k-1280.png"))
    p.eval("document.getElementById('fleet-more').scrollIntoView()")
    p.pump(0.2)
    p.screenshot(os.path.join(SHOTS, "fleet-100k-more-1280.png"))
    p.eval("document.getElementById('fleet-more').click()")
    p.wait("document.querySelectorAll('tr[data-agent-id]').length === 400")
    more = shown_rows(p)
    ids = [s[0] for s in more]
    assert len(set(ids)) == 400 and ids[:200] == [s[0] for s in shown]
    rest = [i for i in ids if i not in problems]
    assert rest == sorted(rest) and rest[0] == "w-000001"
    assert took < 20
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
