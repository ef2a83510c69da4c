"""Billing periods over the real binaries: a month closes only on evidence
(every worker that wrote rows in it reported after its end with an empty
backlog) or by force, once, even with two collectors closing at the same
moment; a closed month's FOCUS export and manifest never change, and a late
row into it is billed exactly once, in the first open month, as a Correction
with its own day."""

import hashlib
import json
import threading
import time
from decimal import Decimal

from conftest import make_row, metrics_map, run_vgc, wait_until
from test_focus import at, export, ingest, month_start, parse, period_name

EMPTY_SINK = {"recorded": 10, "sent": 10, "dropped": 0, "rejected": 0, "queued": 0,
              "spooled_rows": 0, "spool_bytes": 0}


def beat(c, key, agent_id, sink):
    body = {"agent_id": agent_id, "status": "idle", "active_sessions": 0, "ts": time.time(),
            "sink": sink}
    r = c.post("/v1/agents/heartbeat", json=body, key=key)
    assert r.status_code in (200, 204), r.text


def close(c, key, period, force=None):
    return c.post(f"/v1/periods/{period}/close", key=key,
                  json=None if force is None else {"force": force})


def period_entry(c, key, period):
    r = c.get("/v1/periods", key=key)
    assert r.status_code == 200, r.text
    hits = [p for p in r.json()["periods"] if p["period"] == period]
    assert len(hits) == 1, r.text
    return hits[0]


def test_close_without_evidence_is_refused_naming_the_workers_and_force_closes(db, collector):
    """Two workers wrote rows in the month. With no heartbeats both are named
    (CLI exit 1, HTTP 409); a worker whose beat shows a backlog still counts
    as not reported; once one reports empty only the other is named; force
    closes, and the close is recorded with who and when."""
    ingest_key, admin = db.create_key("ingest"), db.create_key("admin")
    month = month_start(2)
    name = period_name(month)
    ingest(collector, ingest_key, [
        make_row(0, timestamp=at(month, 4), agent_id="worker-a", cost_usd=1.5),
        make_row(1, timestamp=at(month, 5), agent_id="worker-b", cost_usd=0.25)])
    r = run_vgc("periods", "close", name, "--db", db.conninfo)
    assert r.returncode == 1
    assert "worker-a" in r.stderr and "worker-b" in r.stderr, r.stderr
    r = close(collector, admin, name)
    assert r.status_code == 409 and "worker-a" in r.text and "worker-b" in r.text, r.text

    beat(collector, ingest_key, "worker-a", EMPTY_SINK)
    beat(collector, ingest_key, "worker-b", dict(EMPTY_SINK, queued=3))
    p = period_entry(collector, admin, name)
    assert p["state"] == "open"
    assert p["completeness"]["workers"] == 2 and p["completeness"]["workers_reported"] == 1
    r = close(collector, admin, name)
    assert r.status_code == 409 and "worker-b" in r.text and "worker-a" not in r.text, r.text
    assert db.scalar("SELECT count(*) FROM billing_periods") == 0

    read = db.create_key("read")
    assert close(collector, read, name, force=True).status_code == 403
    r = close(collector, admin, name, force=True)
    assert r.status_code == 200, r.text
    p = period_entry(collector, admin, name)
    assert p["state"] == "closed" and p["forced"] is True
    assert p["closed_by"].startswith("key:") and p["closed_at"]
    assert close(collector, admin, name, force=True).status_code == 409  # once

    ls = run_vgc("periods", "ls", "--db", db.conninfo)
    assert ls.returncode == 0 and name in ls.stdout and "closed" in ls.stdout, ls.stdout


def test_close_with_every_worker_reported_needs_no_force(db, collector):
    """Evidence suffices: every worker reported after the month's end with an
    empty backlog, so the CLI closes without --force."""
    ingest_key = db.create_key("ingest")
    month = month_start(2)
    ingest(collector, ingest_key, [make_row(0, timestamp=at(month, 4), agent_id="worker-a")])
    beat(collector, ingest_key, "worker-a", EMPTY_SINK)
    r = run_vgc("periods", "close", period_name(month), "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    assert db.scalar("SELECT forced FROM billing_periods") is False


def test_late_row_leaves_the_closed_month_byte_identical_and_is_billed_once_as_correction(
        db, collector):
    """After the close a row lands on day 6 of the closed month. The closed
    month's export and manifest stay byte for byte the same; the rollups
    count the row; the next (open) month's export holds exactly one
    Correction line with the late cost, its own day and the open month's
    billing period; late_rows and the metric count it. Closing the next month
    freezes that correction, and the month after bills nothing again."""
    ingest_key, admin = db.create_key("ingest"), db.create_key("admin")
    m1, m2 = month_start(3), month_start(2)
    ingest(collector, ingest_key, [make_row(0, timestamp=at(m1, 4), cost_usd=1.5),
                                   make_row(1, timestamp=at(m2, 7), cost_usd=0.5)])
    assert close(collector, admin, period_name(m1), force=True).status_code == 200
    before = export(collector, admin, period_name(m1))
    man_before = collector.get("/v1/export/focus/manifest", key=admin,
                               params={"billing_period": period_name(m1)}).content
    assert b'"state":"closed"' in man_before and b'"ties_out":true' in man_before
    # The manifest stored at the close is the one of the bytes the export answers.
    assert json.loads(man_before)["sha256"] == hashlib.sha256(before).hexdigest()
    assert json.loads(man_before)["rows"] == len(parse(before))

    ingest(collector, ingest_key, [make_row(2, timestamp=at(m1, 6, hour=3), cost_usd=0.375)])
    assert db.scalar("SELECT sum(cost_usd) FROM vgc_rollup_hourly_live WHERE hour < %s", m2) == \
        Decimal("1.875")
    assert export(collector, admin, period_name(m1)) == before
    assert collector.get("/v1/export/focus/manifest", key=admin,
                         params={"billing_period": period_name(m1)}).content == man_before

    lines = parse(export(collector, admin, period_name(m2)))
    corr = [ln for ln in lines if ln["ChargeClass"] == "Correction"]
    assert len(corr) == 1, lines
    assert Decimal(corr[0]["BilledCost"]) == Decimal("0.375")
    assert corr[0]["ChargePeriodStart"] == m1.replace(day=6).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert corr[0]["BillingPeriodStart"] == m2.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert corr[0]["x_Requests"] == "1"
    usage = [ln for ln in lines if ln["ChargeClass"] == ""]
    assert [Decimal(ln["BilledCost"]) for ln in usage] == [Decimal("0.5")]
    m = collector.get("/v1/export/focus/manifest", key=admin,
                      params={"billing_period": period_name(m2)}).json()
    assert m["ties_out"] is True and Decimal(m["billed_cost"]) == Decimal("0.875")

    assert period_entry(collector, admin, period_name(m1))["completeness"]["late_rows"] == 1
    wait_until(lambda: metrics_map(collector.get("/metrics").text).get(
        "vgcollector_period_late_rows_total") == 1, 30, "the late-row counter at 1")

    # Billed once: closing the next month freezes the correction with it.
    assert close(collector, admin, period_name(m2), force=True).status_code == 200
    frozen = parse(export(collector, admin, period_name(m2)))
    assert frozen == lines
    after = parse(export(collector, admin, period_name(month_start(1))))
    assert [ln for ln in after if ln["ChargeClass"] == "Correction"] == []


def test_two_collectors_closing_at_once_record_one_close(db, collectors):
    """Two collectors on one database get the same close at the same moment:
    one answers 200, the other 409, and one close is recorded."""
    ingest_key, admin = db.create_key("ingest"), db.create_key("admin")
    a, b = collectors(db), collectors(db)
    for c in (a, b):
        c.wait_key(admin)
    month = month_start(2)
    ingest(a, ingest_key, [make_row(i, timestamp=at(month, 1 + i)) for i in range(20)])
    start = threading.Barrier(2)
    got = {}

    def run(c):
        start.wait()
        got[c.url] = close(c, admin, period_name(month), force=True)

    threads = [threading.Thread(target=run, args=(c,)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in got.values())
    assert codes == [200, 409], [r.text for r in got.values()]
    assert db.scalar("SELECT count(*) FROM billing_periods") == 1
    assert db.scalar("SELECT count(*) FROM billing_period_events WHERE action = 'close'") == 1
    assert db.scalar("SELECT sum(requests) FROM billing_period_lines") == 20


def test_reopen_is_an_admin_act_recorded_and_refused_while_a_later_month_is_closed(
        db, collector):
    """Reopen drops the frozen export and is recorded; a month cannot reopen
    while a later one is closed (that month billed its late rows)."""
    ingest_key, admin = db.create_key("ingest"), db.create_key("admin")
    m1, m2 = month_start(3), month_start(2)
    ingest(collector, ingest_key, [make_row(0, timestamp=at(m1, 4)),
                                   make_row(1, timestamp=at(m2, 4))])
    for m in (m1, m2):
        assert close(collector, admin, period_name(m), force=True).status_code == 200
    r = run_vgc("periods", "reopen", period_name(m1), "--db", db.conninfo)
    assert r.returncode == 1 and period_name(m2) in r.stderr, r.stderr
    r = run_vgc("periods", "reopen", period_name(m2), "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    assert "reopened" in r.stdout
    assert period_entry(collector, admin, period_name(m2))["state"] == "open"
    assert db.scalar("SELECT count(*) FROM billing_period_events WHERE action = 'reopen'") == 1
    # Over HTTP: admin only, then recorded the same way.
    read = db.create_key("read")
    assert collector.post(f"/v1/periods/{period_name(m1)}/reopen", key=read).status_code == 403
    r = collector.post(f"/v1/periods/{period_name(m1)}/reopen", key=admin)
    assert r.status_code == 200, r.text
    assert db.scalar("SELECT by_whom FROM billing_period_events WHERE action = 'reopen'"
                     " AND period = %s", m1.date()).startswith("key:")
    assert collector.post(f"/v1/periods/{period_name(m1)}/reopen", key=admin).status_code == 409
    assert db.scalar("SELECT count(*) FROM billing_period_lines WHERE billing_period = %s",
                     m2.date()) == 0


def test_a_month_that_has_not_ended_cannot_close(db, collector):
    """The current month is refused even with force: it has not ended."""
    admin = db.create_key("admin")
    r = close(collector, admin, period_name(month_start(0)), force=True)
    assert r.status_code == 409 and "not ended" in r.text, r.text
    r = collector.post(f"/v1/periods/{period_name(month_start(2))}/close", key=admin,
                       json={"force": "yes"})
    assert r.status_code == 400 and "force" in r.text


def test_closed_month_keeps_the_billing_account_it_closed_with(db, collectors):
    """focus_billing_account changed after a close changes the open months'
    BillingAccountId, never the closed month's bytes."""
    ingest_key, admin = db.create_key("ingest"), db.create_key("admin")
    m1, m2 = month_start(3), month_start(2)
    c = collectors(db, "--focus-billing-account", "acct-one")
    ingest(c, ingest_key, [make_row(0, timestamp=at(m1, 4)), make_row(1, timestamp=at(m2, 4))])
    assert close(c, admin, period_name(m1), force=True).status_code == 200
    before = export(c, admin, period_name(m1))
    assert {ln["BillingAccountId"] for ln in parse(before)} == {"acct-one"}
    c.stop()
    c = collectors(db, "--focus-billing-account", "acct-two")
    c.wait_key(admin)
    assert export(c, admin, period_name(m1)) == before
    assert {ln["BillingAccountId"] for ln in parse(export(c, admin, period_name(m2)))} == \
        {"acct-two"}


def test_tenant_key_sees_only_its_tenants_workers_and_lines(db, collector):
    """GET /v1/periods with a tenant key counts only that tenant's workers; the
    export of the closed month for that key holds only its lines, and the
    unattributed lines are asked for with tenant= (empty) by an unscoped key."""
    ingest_key, admin = db.create_key("ingest"), db.create_key("admin")
    acme = db.create_key("read", tenant="acme")
    month = month_start(2)
    ingest(collector, ingest_key, [
        make_row(0, timestamp=at(month, 4), agent_id="a-1", tenant_id="acme", metadata={}),
        make_row(1, timestamp=at(month, 4), agent_id="g-1", tenant_id="globex", metadata={}),
        make_row(2, timestamp=at(month, 5), agent_id="n-1", tenant_id=None, metadata={},
                 cost_usd=0.125)])
    p = period_entry(collector, acme, period_name(month))
    assert p["completeness"]["workers"] == 1
    assert p["completeness"]["not_reported"] == [{"tenant": "acme", "agent_id": "a-1"}]
    assert close(collector, admin, period_name(month), force=True).status_code == 200
    assert {ln["SubAccountId"] for ln in parse(export(collector, acme, period_name(month)))} == \
        {"acme"}
    un = parse(export(collector, admin, period_name(month), tenant=""))
    assert [(ln["SubAccountId"], ln["ResourceId"], ln["BilledCost"]) for ln in un] == \
        [("", "n-1", "0.125")]
    assert close(collector, acme, period_name(month), force=True).status_code == 403


def test_completeness_counts_the_months_rows_the_price_book_did_not_price(db, collector):
    """With the price book pricing one model, a month's completeness counts
    the rows of the others as unpriced_rows (it was always null)."""
    admin, key = db.create_key("admin"), db.create_key("ingest")
    feed = {"provider": "deepgram", "currency": "USD", "updated": "2025-01-01", "models": [
        {"id": "nova-3", "modality": "stt", "rates": [
            {"meter": "audio_input", "amount": "0.0043", "unit": "minute",
             "effective_from": "2025-01-01"}]}]}
    r = collector.post("/v1/billing/price-book", json=feed, key=admin)
    assert r.status_code in (200, 201), r.text
    month = month_start(1)
    ingest(collector, key, [
        make_row(0, timestamp=at(month, 3), modality="stt", provider="deepgram",
                 model_id="deepgram/nova-3", input_units=2, output_units=0, agent_id="w-1"),
        make_row(1, timestamp=at(month, 3), agent_id="w-1"),
        make_row(2, timestamp=at(month, 4), agent_id="w-2")])
    assert period_entry(collector, admin, period_name(month))["completeness"]["unpriced_rows"] == 2
