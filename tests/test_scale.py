"""Issue 14 acceptance (`make test-scale`): the collector scaled out on real
parts. haproxy balances 3 collectors (health checks on /readyz); they write
through pgbouncer in transaction mode to a primary, LISTEN on db_direct, and
read from a streaming hot standby made with pg_basebackup -R. vgsink-sim
workers stream rows through haproxy while one collector is SIGKILLed,
pgbouncer is restarted and the standby is stopped for 10 s. Then every
acknowledged row is stored once, the rollups equal the rows, and the reads
answered while the standby was down came from the primary and were right."""

import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal

import httpx
import pytest

from conftest import (Collector, Db, PgCluster, assert_ledger_consistent,
                      assert_sink_stats_add_up, free_port, make_row, run_vgc, wait_until)
from test_sink import tool

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scale"))
from parts import Haproxy, Pgbouncer, Standby  # noqa: E402

PROBE = "scale-probe"


def jloads(r):
    return json.loads(r.text, parse_float=Decimal)


def metric(text, name):
    """The value of an unlabelled sample, or the sum of a labelled family."""
    total, seen = 0.0, False
    for line in text.splitlines():
        m = re.match(re.escape(name) + r"(\{[^}]*\})? (\S+)$", line)
        if m:
            total += float(m.group(2))
            seen = True
    assert seen, f"{name} not in /metrics"
    return total


@pytest.fixture
def stack():
    """Primary, standby, pgbouncer and a migrated database; torn down after."""
    parts = {}
    primary = PgCluster().start()
    parts["primary"] = primary
    try:
        bouncer = Pgbouncer(primary).start()
        parts["bouncer"] = bouncer
        name = primary.createdb()
        # Migrations through the pooler: their lock is transaction-scoped.
        r = run_vgc("migrate", "--db", bouncer.conninfo(name))
        assert r.returncode == 0, r.stderr
        standby = Standby(primary).start()
        parts["standby"] = standby
        standby.wait_streaming()
        db = Db(primary, name)
        parts["db"] = db
        yield primary, standby, bouncer, db
    finally:
        for c in parts.get("collectors", []):
            if c.proc.poll() is None:
                c.stop()
        if "db" in parts:
            parts["db"].close()
        if "standby" in parts:
            parts["standby"].destroy()
        if "bouncer" in parts:
            parts["bouncer"].destroy()
        primary.stop()


def start_collector(db, bouncer, standby, port=None):
    return Collector(None, port=port, args=[
        "--db", bouncer.conninfo(db.name), "--db-direct", db.conninfo,
        "--read-db", standby.conninfo(db.name), "--rate-limit-rps", "0",
        "--pool-size", "3"])


class Reader(threading.Thread):
    """Reads /v1/costs through haproxy in a loop, keeping (when, status, where
    it ran) for every answer, until stopped."""

    def __init__(self, url, key):
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.answers = []
        self.halt = threading.Event()

    def run(self):
        with httpx.Client(timeout=10) as client:
            while not self.halt.is_set():
                try:
                    r = client.get(self.url + "/v1/costs",
                                   headers={"Authorization": f"Bearer {self.key}"})
                    self.answers.append((time.monotonic(), r.status_code,
                                         r.headers.get("X-Vgc-Read-Source")))
                except httpx.HTTPError:
                    self.answers.append((time.monotonic(), None, None))
                self.halt.wait(0.1)


def probe_sql(db):
    n, cost = db.query("SELECT count(*), coalesce(sum(cost_usd), 0) FROM cost_rows"
                       " WHERE project = %s", PROBE)[0]
    return n, Decimal(cost)


def test_scaled_out_stack_survives_kill_pooler_restart_and_standby_outage(stack):
    primary, standby, bouncer, db = stack
    # Keys through the pooler too.
    keys = {}
    for role in ("ingest", "read"):
        r = run_vgc("keys", "create", "--role", role, "--db", bouncer.conninfo(db.name))
        assert r.returncode == 0, r.stderr
        keys[role] = r.stdout.splitlines()[0].strip()

    cols = [start_collector(db, bouncer, standby) for _ in range(3)]
    stack_parts = cols
    proxy = Haproxy([c.port for c in cols])
    try:
        _run_scenario(primary, standby, bouncer, db, cols, proxy, keys)
    finally:
        proxy.destroy()
        for c in stack_parts:
            if c.proc.poll() is None:
                c.stop()


def _run_scenario(primary, standby, bouncer, db, cols, proxy, keys):
    # Every collector sees the standby caught up before the load starts.
    for c in cols:
        wait_until(lambda c=c: c.get("/readyz").json().get("replica", {}).get("state") == "ok",
                   15, f"{c.url} /readyz replica ok")
    wait_until(lambda: httpx.get(proxy.url + "/readyz", timeout=2).status_code == 200, 15,
               "haproxy forwarding /readyz")

    spool = tempfile.mkdtemp(prefix="vgc-scale-spool-")
    sims = [tool("vgsink-sim", "--url", proxy.url, "--key", keys["ingest"], "--threads", 2,
                 "--rows", 6000, "--rate", 200, "--agents", 8, "--tenants", 3,
                 "--spool", os.path.join(spool, str(i)), "--retry-initial-ms", 50,
                 "--retry-max-ms", 500, "--close-timeout-ms", 120000, background=True)
            for i in range(3)]
    reader = Reader(proxy.url, keys["read"])
    reader.start()
    try:
        time.sleep(4)
        cols[2].proc.send_signal(signal.SIGKILL)
        cols[2].proc.wait(timeout=10)
        time.sleep(3)
        bouncer.restart()
        time.sleep(3)

        # The standby goes away for 10 s. Once every live collector has seen
        # it down, reads must be answered by the primary: a marker batch
        # written now cannot be on the stopped standby, so an answer that
        # counts it came from the primary.
        outage_start = time.monotonic()
        standby.stop()
        for c in cols[:2]:
            wait_until(lambda c=c: c.get("/readyz").json()["replica"]["state"] == "down", 5,
                       f"{c.url} sees the standby down")
            assert c.get("/readyz").status_code == 200  # falls back; still ready
        outage_reads = 0
        batch = 0
        while time.monotonic() - outage_start < 10:
            rows = [make_row(i, project=PROBE, cost_usd=round(0.001 * (batch % 9 + 1) + 0.0001 * i, 4))
                    for i in range(5)]
            batch += 1
            r = httpx.post(proxy.url + "/v1/ingest", json=rows, timeout=10,
                           headers={"Authorization": f"Bearer {keys['ingest']}"})
            if r.status_code != 200:
                continue  # pgbouncer just restarted; the next batch will do
            want_n, want_cost = probe_sql(db)
            r = httpx.get(proxy.url + "/v1/costs", timeout=10,
                          headers={"Authorization": f"Bearer {keys['read']}"})
            if r.status_code != 200:
                continue
            assert r.headers["X-Vgc-Read-Source"] == "primary", r.headers
            got = jloads(r)["by_project"][PROBE]
            assert (got["requests"], got["cost"]) == (want_n, want_cost)
            outage_reads += 1
        outage_end = time.monotonic()
        standby.start()
        assert outage_reads > 0, "no read was answered while the standby was down"

        # Reads return to the standby once it has caught up.
        wait_until(lambda: httpx.get(proxy.url + "/v1/costs", timeout=5, headers={
            "Authorization": f"Bearer {keys['read']}"}).headers.get("X-Vgc-Read-Source")
            == "replica", 30, "reads on the standby again")

        results = []
        for s in sims:
            s.wait(timeout=150)
            out = s.stdout.read()
            assert out.strip(), s.stderr.read()
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        reader.halt.set()
        reader.join(timeout=15)
        for s in sims:
            if s.poll() is None:
                s.kill()
                s.wait()

    # Reads answered by the standby, before and after; none of those answered
    # while it was stopped claims to come from it.
    during = [a for a in reader.answers if outage_start + 1 < a[0] < outage_end and a[1] == 200]
    assert during and all(a[2] == "primary" for a in during), during[:5]
    assert any(a[2] == "replica" for a in reader.answers if a[1] == 200)
    fallbacks = sum(metric(c.get("/metrics").text, "vgcollector_replica_reads_fallback_total")
                    for c in cols[:2])
    assert fallbacks >= outage_reads + len(during), (fallbacks, outage_reads, len(during))

    # Every acknowledged row stored once: the sinks' identity adds up with
    # nothing left queued, spooled, dropped or rejected, and the database
    # holds exactly the rows sent.
    for st in results:
        assert_sink_stats_add_up(st)
        assert st["dropped"] == 0 and st["rejected"] == 0, st
        assert st["queued"] == 0 and st["spooled_rows"] == 0, st
    sent = sum(st["sent"] for st in results)
    assert sent == sum(st["recorded"] for st in results) == 36000
    n, distinct, cost = db.query(
        "SELECT count(*), count(DISTINCT id), coalesce(sum(cost_usd), 0) FROM cost_rows"
        " WHERE project <> %s", PROBE)[0]
    assert n == distinct == sent
    assert Decimal(cost) == sum(Decimal(st["cost_usd_recorded"]) for st in results)
    assert_ledger_consistent(db)
