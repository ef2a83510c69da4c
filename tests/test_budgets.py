"""Budgets: spend, forecast, state and alerts over the real
collector and PostgreSQL, with a real webhook receiver started by the test."""

import hashlib
import hmac
import http.server
import json
import random
import ssl
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pytest

from conftest import make_certs, make_row, run_vgc, wait_until

# The receivers here listen on loopback, which webhooks may reach only when
# webhook_allow lists it.
FAST = ("--budget-check-s", "0.2", "--budget-eval-delay-s", "0.05",
        "--budget-retry-base-s", "0.2", "--budget-retry-max-s", "1",
        "--webhook-allow", "127.0.0.1/32")
SECRET = "s3cret-hmac-key"


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST (path, headers,
    body) and answers 500 to the first `fail` of them, 200 after."""

    def __init__(self, fail=0, cert=None):
        self.lock = threading.Lock()
        self.got = []
        self.fail = fail
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    status = 500 if outer.fail > 0 else 200
                    if outer.fail > 0:
                        outer.fail -= 1
                    outer.got.append({"path": self.path, "headers": dict(self.headers),
                                      "body": body, "status": status, "at": time.time()})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*cert)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def deliveries(self):
        with self.lock:
            return list(self.got)

    def ok(self):
        return [d for d in self.deliveries() if d["status"] == 200]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def ingest(c, key, rows):
    r = c.post("/v1/ingest", json=rows, key=key)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(rows), r.text


def put_budget(c, admin, name, **fields):
    r = httpx.put(f"{c.url}/v1/budgets/{name}", json=fields,
                  headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    return r


def budgets(c, key):
    r = c.get("/v1/budgets", key=key)
    assert r.status_code == 200, r.text
    return {b["name"]: b for b in r.json()["budgets"]}


def signature_ok(secret, delivery, timestamp, body, signature, now=None, tolerance=300):
    """The receiver's check, as documented: HMAC-SHA256 over
    "<X-Vgc-Delivery>.<X-Vgc-Timestamp>.<body>", and a timestamp within
    5 minutes of now."""
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    mac = hmac.new(secret.encode(), f"{delivery}.{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(signature, "sha256=" + mac.hexdigest())


def verify(d, secret=SECRET):
    h = d["headers"]
    assert signature_ok(secret, h["X-Vgc-Delivery"], h["X-Vgc-Timestamp"], d["body"],
                        h["X-Vgc-Signature"], now=d["at"]), "signature does not verify"
    return json.loads(d["body"])


def gauge(c, budget_id, metric="vgcollector_budget_spent_ratio", headers=None):
    """The budget's gauge in /metrics, which labels budgets by id."""
    text = c.get("/metrics", headers=headers).text
    for line in text.splitlines():
        if line.startswith(f'{metric}{{budget_id="{budget_id}"}} '):
            return float(line.split()[-1])
    return None


def evaluated_after(c, admin, name, cost, row=None):
    """Ingests one row of `cost` inside the budget `name`'s scope (the default
    row's, or `row`'s fields) and waits until the gauge shows the spend GET
    reports after it: proof that an evaluation ran after everything before."""
    ingest(c, admin, [make_row(0, cost_usd=cost, **(row or {}))])
    b = budgets(c, admin)[name]
    want = float(Decimal(b["spent_usd"]) / Decimal(b["limit_usd"]))
    wait_until(lambda: abs((gauge(c, b["id"]) or 0) - want) < 1e-12, 20,
               f"gauge of {name} reaching {want}")


def test_spend_equals_sql_over_cost_rows_for_each_scope_part_and_combinations(db, collectors):
    c = collectors(db, *FAST)
    ingest_key = db.create_key("ingest")
    read = db.create_key("read")
    rnd = random.Random(16)
    now = time.time()
    rows = [make_row(i, timestamp=now - rnd.uniform(0, 40 * 3600),
                     tenant_id=rnd.choice(["acme", "globex", None]),
                     project=rnd.choice(["p1", "p2"]),
                     agent_id=rnd.choice(["a1", "a2", None]),
                     provider=rnd.choice(["openai", "deepgram"]),
                     model_id=rnd.choice(["m1", "m2", None]),
                     cost_usd=round(rnd.uniform(0, 0.9), rnd.randint(1, 9)))
            for i in range(300)]
    for i in range(0, len(rows), 100):
        ingest(c, ingest_key, rows[i:i + 100])
    scopes = [{}, {"tenant": "acme"}, {"project": "p2"}, {"agent": "a1"},
              {"provider": "deepgram"}, {"model": "m2"},
              {"tenant": "acme", "project": "p1"},
              {"tenant": "globex", "provider": "openai", "model": "m1"},
              {"project": "p2", "agent": "a2", "provider": "openai"},
              {"tenant": "acme", "project": "p1", "agent": "a1", "provider": "openai",
               "model": "m1"}]
    cols = {"tenant": "tenant_id", "project": "project", "agent": "agent_id",
            "provider": "provider", "model": "model_id"}
    for n, scope in enumerate(scopes):
        for period in ("day", "week", "month"):
            args = ["budgets", "set", "--db", db.conninfo, "--name", f"b{n}-{period}",
                    "--period", period, "--limit-usd", "10"]
            for k, v in scope.items():
                args += [f"--{k}", v]
            r = run_vgc(*args)
            assert r.returncode == 0, r.stderr
    got = budgets(c, read)
    assert len(got) == len(scopes) * 3
    for n, scope in enumerate(scopes):
        for period in ("day", "week", "month"):
            b = got[f"b{n}-{period}"]
            assert b["scope"] == scope
            where = " AND ".join(f"{cols[k]} = %s" for k in scope) or "true"
            want = db.scalar(f"SELECT coalesce(sum(cost_usd), 0) FROM cost_rows WHERE ts >= %s"
                             f" AND ts < %s AND {where}", b["period_start"], b["period_end"],
                             *scope.values())
            assert isinstance(b["spent_usd"], str)
            assert Decimal(b["spent_usd"]) == want, (scope, period, b["spent_usd"], want)
    # Weeks start on Monday, calendar periods in UTC.
    start = datetime.fromisoformat(got["b0-week"]["period_start"].replace("Z", "+00:00"))
    assert start.weekday() == 0 and start.hour == 0 and start.tzinfo == timezone.utc
    assert got["b0-month"]["period_start"][8:] == "01T00:00:00Z"


def test_ingest_crossing_50_then_100_delivers_exactly_two_signed_alerts(db, collectors, receiver):
    c = collectors(db, *FAST)
    key = db.create_key("ingest")
    admin = db.create_key("admin")
    r = put_budget(c, admin, "team", project="default", period="month", limit_usd="1.00",
                   thresholds=[50, 100], webhook=receiver.url, webhook_secret=SECRET)
    assert r.status_code == 200, r.text
    ingest(c, key, [make_row(0, cost_usd=0.3), make_row(1, cost_usd=0.25)])
    wait_until(lambda: len(receiver.ok()) >= 1, 20, "the 50% alert")
    ingest(c, key, [make_row(2, cost_usd=0.45)])
    wait_until(lambda: len(receiver.ok()) >= 2, 20, "the 100% alert")
    evaluated_after(c, admin, "team", 0.01)
    got = receiver.deliveries()
    assert len(got) == 2, [d["body"] for d in got]
    bodies = [verify(d) for d in got]
    assert [b["threshold"] for b in bodies] == [50, 100]
    assert all(b["event"] == "budget.threshold" for b in bodies)
    assert bodies[0]["budget"]["name"] == "team" and bodies[0]["budget"]["spent_usd"] == "0.55"
    assert bodies[1]["budget"]["state"] == "over"
    ids = [d["headers"]["X-Vgc-Delivery"] for d in got]
    assert sorted(int(i) for i in ids) == [row[0] for row in db.query(
        "SELECT id FROM budget_alerts WHERE state = 'delivered' ORDER BY id")]
    assert gauge(c, bodies[0]["budget"]["id"], "vgcollector_budget_forecast_ratio") is not None


def test_receiver_answering_500_twice_gets_the_same_delivery_until_2xx(db, collectors):
    rec = Receiver(fail=2)
    try:
        c = collectors(db, *FAST)
        key = db.create_key("ingest")
        admin = db.create_key("admin")
        assert put_budget(c, admin, "retry", period="day", limit_usd="1", thresholds=[50],
                          webhook=rec.url, webhook_secret=SECRET).status_code == 200
        ingest(c, key, [make_row(0, cost_usd=0.7)])
        wait_until(lambda: len(rec.ok()) >= 1, 30, "a 2xx after two 500s")
        assert wait_until(lambda: db.scalar("SELECT state FROM budget_alerts") == "delivered",
                          10, "the alert marked delivered")
        evaluated_after(c, admin, "retry", 0.01)
        got = rec.deliveries()
        assert [d["status"] for d in got] == [500, 500, 200]
        assert len({d["headers"]["X-Vgc-Delivery"] for d in got}) == 1
        assert len({d["body"] for d in got}) == 1
        for d in got:
            verify(d)
        assert db.scalar("SELECT attempts FROM budget_alerts") == 3
    finally:
        rec.close()


def test_two_collectors_and_a_restart_deliver_each_alert_exactly_once(db, collectors, receiver):
    c1 = collectors(db, *FAST)
    c2 = collectors(db, *FAST)
    key = db.create_key("ingest")
    admin = db.create_key("admin")
    assert put_budget(c1, admin, "fleet", period="week", limit_usd="4",
                      thresholds=[25, 50, 75, 100], webhook=receiver.url,
                      webhook_secret=SECRET).status_code == 200
    ingest(c1, key, [make_row(0, cost_usd=1.1)])
    wait_until(lambda: len(receiver.ok()) >= 1, 20, "the 25% alert")
    ingest(c2, key, [make_row(1, cost_usd=1.0)])
    wait_until(lambda: len(receiver.ok()) >= 2, 20, "the 50% alert")
    c2.stop()
    c3 = collectors(db, *FAST)
    ingest(c3, key, [make_row(2, cost_usd=1.0)])
    ingest(c1, key, [make_row(3, cost_usd=1.0)])
    wait_until(lambda: len(receiver.ok()) >= 4, 20, "the 75% and 100% alerts")
    for c in (c1, c3):
        evaluated_after(c, admin, "fleet", 0.01)
    got = receiver.deliveries()
    thresholds = sorted(verify(d)["threshold"] for d in got)
    assert thresholds == [25, 50, 75, 100], thresholds
    assert len({d["headers"]["X-Vgc-Delivery"] for d in got}) == 4
    assert db.scalar("SELECT count(*) FROM budget_alerts") == 4


def test_scoped_keys_see_only_their_budgets_and_an_ingest_key_gets_403(db, collectors, receiver):
    c = collectors(db, *FAST)
    admin = db.create_key("admin")
    for name, fields in (("all", {}), ("acme", {"tenant": "acme"}),
                         ("acme-p1", {"tenant": "acme", "project": "p1"}),
                         ("globex", {"tenant": "globex"}), ("p1", {"project": "p1"})):
        r = put_budget(c, admin, name, period="month", limit_usd="5", webhook=receiver.url,
                       webhook_secret=SECRET, **fields)
        assert r.status_code == 200, r.text
    assert set(budgets(c, db.create_key("read", tenant="acme"))) == {"acme", "acme-p1"}
    assert set(budgets(c, db.create_key("read", project="p1"))) == {"acme-p1", "p1"}
    assert set(budgets(c, db.create_key("read", tenant="acme", project="p1"))) == {"acme-p1"}
    everything = c.get("/v1/budgets", key=admin)
    assert set(b["name"] for b in everything.json()["budgets"]) == {
        "all", "acme", "acme-p1", "globex", "p1"}
    assert SECRET not in everything.text and "secret" not in everything.text
    listed = run_vgc("budgets", "list", "--db", db.conninfo)
    assert listed.returncode == 0 and SECRET not in listed.stdout
    ing = db.create_key("ingest")
    assert c.get("/v1/budgets", key=ing).status_code == 403
    assert put_budget(c, ing, "x", period="day", limit_usd="1").status_code == 403
    read = db.create_key("read")
    assert put_budget(c, read, "x", period="day", limit_usd="1").status_code == 403
    scoped_admin = db.create_key("admin", tenant="acme")
    assert put_budget(c, scoped_admin, "mine", tenant="globex", period="day",
                      limit_usd="1").status_code == 403
    # Names are per tenant: acme's own "globex" is a budget of its own, and
    # nothing tells acme that tenant globex uses the name.
    r = put_budget(c, scoped_admin, "globex", tenant="acme", period="day", limit_usd="1")
    assert r.status_code == 200 and r.json()["created"] is True, r.text
    theirs = db.query("SELECT tenant_id, limit_usd::text FROM budgets WHERE name = 'globex'"
                      " ORDER BY tenant_id")
    assert theirs == [("acme", "1"), ("globex", "5")]
    r = httpx.delete(f"{c.url}/v1/budgets/globex", headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 409 and "tenant" in r.json()["error"], r.text
    r = httpx.delete(f"{c.url}/v1/budgets/globex", headers={"Authorization": f"Bearer {scoped_admin}"})
    assert r.status_code == 200 and r.json()["deleted"] is True
    r = httpx.delete(f"{c.url}/v1/budgets/globex", headers={"Authorization": f"Bearer {scoped_admin}"})
    assert r.status_code == 404
    r = httpx.delete(f"{c.url}/v1/budgets/globex?tenant=globex",
                     headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert "globex" not in budgets(c, admin)


def iso(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def hand_forecast(b, as_of, rows):
    """The forecast formula, by hand: spend so far plus the average hourly
    spend of the current hour and the 23 before it (from the period start if
    later) times the whole hours left after the current one."""
    ps, pe, h0 = iso(b["period_start"]), iso(b["period_end"]), iso(as_of)
    ws = max(ps, h0 - timedelta(hours=23))
    spent = sum((Decimal(str(c)) for t, c in rows if ps <= t < pe), Decimal(0))
    recent = sum((Decimal(str(c)) for t, c in rows if ws <= t < pe), Decimal(0))
    n = int((h0 - ws).total_seconds() // 3600) + 1
    left = int((pe - h0).total_seconds() // 3600) - 1
    # PostgreSQL's round() takes a half away from zero (Decimal's default
    # quantize would take it to even: 8.2578125 -> 8.257812, not 8.257813).
    return spent, (spent + recent * left / n).quantize(Decimal("0.000001"), ROUND_HALF_UP)


def test_forecast_matches_hand_computed_values_on_a_constructed_history(db, collectors):
    c = collectors(db, *FAST)
    key = db.create_key("ingest")
    admin = db.create_key("admin")
    for period in ("day", "week", "month"):
        assert put_budget(c, admin, f"f-{period}", project="fc", period=period,
                          limit_usd="3").status_code == 200
    h0 = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    history = [(h0 - timedelta(hours=k, minutes=-m), cost) for k, m, cost in (
        (0, 0, 0.125), (1, 30, 0.25), (2, 5, 0.5), (5, 59, 0.0625), (23, 1, 0.375),
        (24, 1, 1.0), (30, 0, 0.75), (80, 0, 2.5))]
    ingest(c, key, [make_row(i, project="fc", timestamp=t.timestamp(), cost_usd=cost)
                    for i, (t, cost) in enumerate(history)])
    r = c.get("/v1/budgets", key=admin).json()
    assert r["budgets"]
    for period in ("day", "week", "month"):
        b = next(x for x in r["budgets"] if x["name"] == f"f-{period}")
        spent, forecast = hand_forecast(b, r["as_of"], history)
        assert Decimal(b["spent_usd"]) == spent
        assert Decimal(b["forecast_usd"]) == forecast, (period, b, r["as_of"])
        assert Decimal(str(b["percent"])) == (spent * 100 / 3).quantize(Decimal("0.01"))
        want = ("over" if spent >= 3 else "forecast_over" if forecast > 3
                else "warn" if spent * 100 >= 50 * 3 else "ok")
        assert b["state"] == want
        assert b["thresholds_crossed"] == [t for t in (50, 80, 100) if spent * 100 >= t * 3]


def test_budgets_etag_gives_304_until_the_spend_changes(db, collectors):
    c = collectors(db, *FAST)
    key = db.create_key("ingest")
    read = db.create_key("read")
    assert run_vgc("budgets", "set", "--db", db.conninfo, "--name", "w", "--period", "month",
                   "--limit-usd", "100").returncode == 0
    a = c.get("/v1/budgets", key=read)
    etag = a.headers["ETag"]
    b = c.get("/v1/budgets", key=read, headers={"If-None-Match": etag})
    if b.status_code == 200:  # the hour turned between the two reads
        etag = b.headers["ETag"]
        b = c.get("/v1/budgets", key=read, headers={"If-None-Match": etag})
    assert b.status_code == 304 and b.content == b""
    ingest(c, key, [make_row(0, cost_usd=0.5)])
    d = c.get("/v1/budgets", key=read, headers={"If-None-Match": etag})
    assert d.status_code == 200 and d.headers["ETag"] != etag
    assert d.json()["budgets"][0]["spent_usd"] == "0.5"


def test_a_raised_limit_sends_budget_resolved_once(db, collectors, receiver):
    c = collectors(db, *FAST)
    key = db.create_key("ingest")
    admin = db.create_key("admin")
    spec = dict(period="month", limit_usd="1", thresholds=[50, 80], webhook=receiver.url,
                webhook_secret=SECRET)
    assert put_budget(c, admin, "raise", **spec).status_code == 200
    ingest(c, key, [make_row(0, cost_usd=0.85)])
    wait_until(lambda: len(receiver.ok()) >= 2, 20, "the 50% and 80% alerts")
    spec["limit_usd"] = "1.25"  # 68%: 80 no longer holds, 50 still does
    assert put_budget(c, admin, "raise", **spec).status_code == 200
    wait_until(lambda: len(receiver.ok()) >= 3, 20, "budget.resolved")
    evaluated_after(c, admin, "raise", 0.001)
    evaluated_after(c, admin, "raise", 0.001)
    events = [(b["event"], b["threshold"]) for b in map(verify, receiver.deliveries())]
    assert sorted(events) == [("budget.resolved", 80), ("budget.threshold", 50),
                              ("budget.threshold", 80)]


@pytest.mark.hand_made_rows
def test_a_new_period_starts_without_alerts(db, collectors, receiver):
    c = collectors(db, *FAST)
    key = db.create_key("ingest")
    admin = db.create_key("admin")
    assert put_budget(c, admin, "daily", period="day", limit_usd="1", thresholds=[50],
                      webhook=receiver.url, webhook_secret=SECRET).status_code == 200
    b = budgets(c, admin)["daily"]
    start = iso(b["period_start"])
    # Yesterday was over budget and alerted (its claim is in the table).
    ingest(c, key, [make_row(0, cost_usd=2.0, timestamp=(start - timedelta(hours=1)).timestamp())])
    db.query("INSERT INTO budget_alerts (budget_id, period_start, threshold, spent_usd, percent,"
             " body, state) VALUES (%s, %s, 50, 2, 200, '{}', 'delivered')", b["id"],
             start - timedelta(days=1))
    # A small cost: in the first hour of the UTC day the forecast multiplies
    # this hour's spend by the 23 hours left (0.1 would forecast 2.4 > 1).
    evaluated_after(c, admin, "daily", 0.001)
    assert budgets(c, admin)["daily"]["state"] == "ok"
    assert receiver.deliveries() == []
    ingest(c, key, [make_row(1, cost_usd=0.5)])
    wait_until(lambda: receiver.ok(), 20, "today's 50% alert")
    body = verify(receiver.ok()[0])
    assert body["budget"]["period_start"] == b["period_start"] and body["threshold"] == 50


def test_cli_budgets_set_list_rm_and_bad_input(db):
    def vgc(*a):
        return run_vgc("budgets", *a, "--db", db.conninfo)

    r = vgc("set", "--name", "cli-b", "--tenant", "acme", "--period", "week", "--limit-usd",
            "12.50", "--thresholds", "10,90", "--webhook", "https://example.test/hook",
            "--webhook-secret", "k")
    assert r.returncode == 0, r.stderr
    bid = int(r.stdout.strip())
    again = vgc("set", "--name", "cli-b", "--tenant", "acme", "--period", "day", "--limit-usd",
                "3")
    assert again.returncode == 0 and int(again.stdout) == bid
    table = vgc("list")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "PERIOD", "LIMIT_USD", "SPENT_USD", "PERCENT",
                                "FORECAST", "STATE", "SCOPE"]
    assert lines[1].split()[:4] == [str(bid), "cli-b", "day", "3"]
    assert lines[0].index("STATE") == lines[1].index("ok")
    js = json.loads(vgc("list", "--json").stdout)
    assert js["budgets"][0]["thresholds"] == [50, 80, 100]
    assert js["budgets"][0]["scope"] == {"tenant": "acme"}
    for args, words in ((("--name", "x", "--period", "year", "--limit-usd", "1"), "period"),
                        (("--name", "x", "--period", "day", "--limit-usd", "1e3"), "limit_usd"),
                        (("--name", "x y", "--period", "day", "--limit-usd", "1"), "name"),
                        (("--name", "x", "--period", "day", "--limit-usd", "1",
                          "--thresholds", "50,abc"), "thresholds"),
                        (("--name", "x", "--period", "day", "--limit-usd", "1",
                          "--webhook", "ftp://h/"), "webhook"),
                        (("--name", "x", "--period", "day", "--limit-usd", "1",
                          "--webhook", "http://h/"), "webhook_secret"),
                        (("--period", "day", "--limit-usd", "1"), "--name")):
        bad = vgc("set", *args)
        assert bad.returncode == 2 and words in bad.stderr, (args, bad.stderr)
    assert vgc("rm", "cli-b").returncode == 0
    assert vgc("rm", "cli-b").returncode == 1
    assert run_vgc("budgets", "set", "--help").returncode == 0


def test_put_refuses_bad_fields_naming_them(db, collector):
    admin = db.create_key("admin")
    for fields, name in (({"period": "day", "limit_usd": 5}, "limit_usd"),
                         ({"period": "day", "limit_usd": "5", "colour": "red"}, "colour"),
                         ({"period": "hour", "limit_usd": "5"}, "period"),
                         ({"period": "day", "limit_usd": "5", "thresholds": [50.5]},
                          "thresholds")):
        r = put_budget(collector, admin, "bad", **fields)
        assert r.status_code == 400 and r.json()["error"].startswith(name), r.text


def test_https_webhook_verifies_the_certificate_and_host(db, collectors):
    d = tempfile.mkdtemp(prefix="vgc-budget-certs-")
    certs = make_certs(d)
    good = Receiver(cert=(certs["good.pem"], certs["good.key"]))
    wrong = Receiver(cert=(certs["wrong.pem"], certs["wrong.key"]))
    try:
        c = collectors(db, *FAST, "--webhook-ca-file", certs["ca.pem"])
        admin = db.create_key("admin")
        for name, rec in (("good", good), ("wrong", wrong)):
            assert put_budget(c, admin, name, provider=name, period="day", limit_usd="1",
                              thresholds=[50], webhook=rec.url,
                              webhook_secret=SECRET).status_code == 200
        ingest(c, admin, [make_row(0, provider="good", cost_usd=0.6),
                          make_row(1, provider="wrong", cost_usd=0.6)])
        wait_until(lambda: good.ok(), 20, "the alert over verified https")
        verify(good.ok()[0])
        err = wait_until(lambda: db.first(
            "SELECT last_error FROM budget_alerts a JOIN budgets b ON b.id = a.budget_id"
            " WHERE b.name = 'wrong' AND a.attempts >= 1 AND a.last_error IS NOT NULL"),
            20, "a failed attempt against the wrong certificate")
        assert "certificate" in err.lower(), err
        assert wrong.deliveries() == []
    finally:
        good.close()
        wrong.close()
