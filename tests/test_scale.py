"""Scaling out (`make test-scale`): the collector scaled out on real
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
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal

import httpx
import pytest

from conftest import (ROOT, VGC, Collector, Db, PgCluster, assert_ledger_consistent,
                      assert_sink_stats_add_up, fold_rollup, make_row, run_vgc, wait_until)
import psycopg2
from test_sink import tool

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "scale"))
from parts import HAPROXY, Haproxy, Pgbouncer, Standby  # noqa: E402

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
    proxy = Haproxy([c.port for c in cols])
    try:
        _run_scenario(primary, standby, bouncer, db, cols, proxy, keys)
    finally:
        proxy.destroy()
        for c in cols:
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


# ---- the parts one at a time ------------------------------------------------


@pytest.fixture(scope="module")
def replicated():
    """A primary with a streaming standby, shared by the tests below; each test
    makes its own database (CREATE DATABASE replicates too)."""
    primary = PgCluster().start()
    standby = None
    try:
        standby = Standby(primary).start()
        standby.wait_streaming()
        yield primary, standby
    finally:
        if standby:
            standby.destroy()
        primary.stop()


def wait_replayed(primary_db, standby, what):
    """Waits for the standby to replay everything the primary has committed
    (its insert position: with synchronous_commit off the commit may not be
    written out yet)."""
    lsn = primary_db.scalar("SELECT pg_current_wal_insert_lsn()::text")

    def replayed():
        try:
            conn = psycopg2.connect(standby.conninfo(primary_db.name))
        except psycopg2.OperationalError:  # not even the database replayed yet
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))
                return cur.fetchone()[0]
        finally:
            conn.close()

    wait_until(replayed, 30, what)


@pytest.fixture
def rdb(replicated):
    """A migrated database whose schema the standby has replayed: a test that
    pauses the standby's replay pauses it behind its own writes, never behind
    the migrations (a standby behind them lacks the relations reads name)."""
    primary, standby = replicated
    d = Db(primary, primary.createdb()).migrate()
    wait_replayed(d, standby, "the standby replays the migrations")
    yield d, standby
    assert_ledger_consistent(d)
    d.close()


@pytest.fixture
def bouncer1(replicated):
    """pgbouncer with ONE server connection: every client shares it, so any
    session state (a named prepared statement, a temp table, a session lock,
    LISTEN) one client leaves on it is seen, or missed, by the others."""
    b = Pgbouncer(replicated[0], pool_size=1).start()
    yield b
    b.destroy()


def wait_replica_state(c, state, timeout=10):
    return wait_until(lambda: (c.get("/readyz").json().get("replica") or {}).get("state") == state
                      and c.get("/readyz").json(), timeout, f"{c.url} replica {state}")


def test_concurrent_migrates_through_pgbouncer_take_turns(replicated, bouncer1):
    primary = replicated[0]
    name = primary.createdb()
    procs = [subprocess.Popen(
        [VGC, "migrate", "--db", bouncer1.conninfo(name)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)]
    outs = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in outs), outs
    d = Db(primary, name)
    try:
        versions = d.query("SELECT version, count(*) FROM schema_migrations GROUP BY 1")
        assert versions and all(n == 1 for _, n in versions), versions
        # Nothing outlives the transactions: no advisory lock is left behind
        # on the pooler's server connection.
        assert d.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    finally:
        d.close()


def test_ingest_through_pgbouncer_transaction_mode_answers_every_batch(rdb, bouncer1):
    """No batch may depend on session state: with 4 workers sharing one server
    connection, each batch must succeed the first time."""
    db, standby = rdb
    key = db.create_key("ingest")
    c = Collector(None, args=["--db", bouncer1.conninfo(db.name), "--db-direct", db.conninfo,
                              "--rate-limit-rps", "0", "--pool-size", "4"])
    try:
        statuses, lock = [], threading.Lock()

        def post(t):
            with httpx.Client(timeout=30) as client:
                for b in range(15):
                    rows = [make_row(i, id=f"pb-{t}-{b}-{i}") for i in range(40)]
                    r = client.post(c.url + "/v1/ingest", json=rows,
                                    headers={"Authorization": f"Bearer {key}"})
                    with lock:
                        statuses.append((r.status_code, r.text[:200]))

        threads = [threading.Thread(target=post, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        bad = [s for s in statuses if s[0] != 200]
        why = sorted({re.sub(r"request_id=\S+|ts=\S+|key=\S+", "", line)[:200]
                      for line in c.output().splitlines() if "msg=\"500: " in line})
        assert len(statuses) == 90 and not bad, \
            f"{len(bad)} of {len(statuses)} failed: {bad[:2]}; collector log: {why[:4]}"
        assert db.scalar("SELECT count(*) FROM cost_rows") == 90 * 40
    finally:
        c.stop()


def test_key_revocation_reaches_collector_behind_pgbouncer_through_db_direct(rdb, bouncer1):
    """LISTEN runs on db_direct: through a transaction-mode pooler it would
    sit on a shared server connection and the notification would be lost."""
    db, standby = rdb
    c = Collector(None, args=["--db", bouncer1.conninfo(db.name), "--db-direct", db.conninfo,
                              "--key-refresh-s", "3600"])
    try:
        key = db.create_key("ingest")
        c.wait_key(key)
        r = run_vgc("keys", "revoke", key[:12], "--db", bouncer1.conninfo(db.name))
        assert r.returncode == 0, r.stderr
        wait_until(lambda: c.get("/v1/whoami", key=key).status_code == 401, 3,
                   "the collector refusing the revoked key")
    finally:
        c.stop()


def test_idle_caught_up_standby_counts_as_lag_zero(rdb):
    """The primary is idle longer than read_max_lag_s: the standby's last
    replayed transaction is old, but it has replayed everything, so reads
    stay on it and the lag is 0."""
    db, standby = rdb
    c = Collector(None, args=["--db", db.conninfo, "--read-db", standby.conninfo(db.name),
                              "--read-max-lag-s", "1"])
    try:
        read = db.create_key("read")
        time.sleep(2.5)  # idle: nothing written for longer than read_max_lag_s
        st = wait_replica_state(c, "ok")
        assert st["replica"]["lag_s"] == 0, st
        assert metric(c.get("/metrics").text, "vgcollector_replica_lag_seconds") == 0
        r = c.get("/v1/costs", key=read)
        assert r.status_code == 200 and r.headers["X-Vgc-Read-Source"] == "replica"
    finally:
        c.stop()


def test_standby_lagging_past_read_max_lag_sends_reads_to_primary(rdb):
    db, standby = rdb
    c = Collector(None, args=["--db", db.conninfo, "--read-db", standby.conninfo(db.name),
                              "--read-max-lag-s", "1", "--rate-limit-rps", "0"])
    sconn = None
    try:
        ingest, read = db.create_key("ingest"), db.create_key("read")
        wait_replica_state(c, "ok")
        sconn = psycopg2.connect(standby.conninfo(db.name))
        sconn.autocommit = True
        sconn.cursor().execute("SELECT pg_wal_replay_pause()")
        # A write the paused standby cannot replay; then time passes.
        assert c.post("/v1/ingest", json=[make_row(0, cost_usd=0.25, project="lagged")],
                      key=ingest).status_code == 200
        st = wait_replica_state(c, "lagging")
        assert st["status"] == "ready" and st["replica"]["lag_s"] > 1, st
        assert metric(c.get("/metrics").text, "vgcollector_replica_lag_seconds") > 1
        before = metric(c.get("/metrics").text, "vgcollector_replica_reads_fallback_total")
        r = c.get("/v1/costs", key=read)
        assert r.status_code == 200 and r.headers["X-Vgc-Read-Source"] == "primary"
        assert jloads(r)["by_project"]["lagged"] == {"cost": Decimal("0.25"), "requests": 1}
        after = metric(c.get("/metrics").text, "vgcollector_replica_reads_fallback_total")
        assert after == before + 1
        sconn.cursor().execute("SELECT pg_wal_replay_resume()")
        wait_replica_state(c, "ok")
        r = c.get("/v1/costs", key=read)
        assert r.headers["X-Vgc-Read-Source"] == "replica"
        assert jloads(r)["by_project"]["lagged"]["requests"] == 1
    finally:
        if sconn:
            sconn.cursor().execute("SELECT pg_wal_replay_resume()")
            sconn.close()
        c.stop()


def test_read_whose_standby_connection_fails_is_answered_by_the_primary(rdb):
    """A dead or restarted standby gave 503 on the first read, while /readyz
    said the replica was fine: the read pool's connection predated the
    restart. Such a read is now retried on the primary (200), the standby
    counts as down until it answers a new connection, and reads return to it
    after."""
    db, standby = rdb
    c = Collector(None, args=["--db", db.conninfo, "--read-db", standby.conninfo(db.name),
                              "--pool-size", "1", "--rate-limit-rps", "0"])
    try:
        ingest, read = db.create_key("ingest"), db.create_key("read")
        assert c.post("/v1/ingest", json=[make_row(0, cost_usd=0.5, project="before")],
                      key=ingest).status_code == 200
        wait_replica_state(c, "ok")
        # The one read worker connects to the standby.
        wait_until(lambda: "before" in jloads(c.get("/v1/costs", key=read))["by_project"], 10,
                   "the standby serving the first row")
        r = c.get("/v1/costs", key=read)
        assert r.status_code == 200 and r.headers["X-Vgc-Read-Source"] == "replica"

        # Restarted: the tracker reconnects and says ok; the worker's
        # connection is from before the restart.
        standby.stop()
        wait_replica_state(c, "down")
        standby.start()
        wait_replica_state(c, "ok", timeout=30)
        r = c.get("/v1/costs", key=read)
        assert r.status_code == 200, r.text
        assert r.headers["X-Vgc-Read-Source"] == "primary", r.headers
        assert jloads(r)["by_project"]["before"]["requests"] == 1
        assert metric(c.get("/metrics").text, "vgcollector_replica_reads_retried_total") == 1
        wait_replica_state(c, "ok", timeout=30)
        r = c.get("/v1/costs", key=read)
        assert r.status_code == 200 and r.headers["X-Vgc-Read-Source"] == "replica", r.headers

        # Stopped: the next read is answered by the primary (a row written
        # now cannot be on the stopped standby), and health says down.
        standby.stop()
        assert c.post("/v1/ingest", json=[make_row(1, cost_usd=0.25, project="during")],
                      key=ingest).status_code == 200
        r = c.get("/v1/costs", key=read)
        assert r.status_code == 200, r.text
        assert r.headers["X-Vgc-Read-Source"] == "primary", r.headers
        assert jloads(r)["by_project"]["during"] == {"cost": Decimal("0.25"), "requests": 1}
        st = wait_replica_state(c, "down")
        assert st["status"] == "ready", st
        assert metric(c.get("/metrics").text, "vgcollector_replica_up") == 0

        # Back: used again once it answers.
        standby.start()
        wait_replica_state(c, "ok", timeout=30)
        wait_until(lambda: c.get("/v1/costs", key=read).headers["X-Vgc-Read-Source"]
                   == "replica", 30, "reads on the standby again")
        assert metric(c.get("/metrics").text, "vgcollector_replica_up") == 1
        # Within read_max_lag_s it may still be replaying the row written while
        # it was down; it gets there.
        wait_until(lambda: "during" in jloads(c.get("/v1/costs", key=read))["by_project"], 30,
                   "the standby replaying the row written while it was down")
    finally:
        if standby_stopped(standby):  # the module's later tests need it
            standby.start()
        c.stop()




def test_read_naming_a_view_the_standby_has_not_replayed_is_answered_by_the_primary(rdb):
    """A standby that has not replayed the newest migration lacks a view a read
    names (SQLSTATE 42P01): the read answered 500. It is now run once more on
    the primary (200, X-Vgc-Read-Source: primary), counted in
    vgcollector_replica_reads_fallback_total and by SQLSTATE, and the log says
    the standby lags a migration. Where the primary lacks it too, the client
    still gets our 500, never the database's words."""
    db, standby = rdb
    c = Collector(None, args=["--db", db.conninfo, "--read-db", standby.conninfo(db.name),
                              "--read-max-lag-s", "3600", "--rate-limit-rps", "0"])
    sconn = None
    t = int(time.time()) // 3600 * 3600 - 3600  # the previous whole hour
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t + 3600))
    hour = f"granularity=hour&group_by=project&from={at}&to={until}"
    try:
        ingest, read = db.create_key("ingest"), db.create_key("read")
        rows = [make_row(i, timestamp=t + i, cost_usd=0.125, project="migrating")
                for i in range(3)]
        assert c.post("/v1/ingest", json=rows, key=ingest).status_code == 200
        wait_replica_state(c, "ok")

        # The standby is made to lack the view the hour rollup reads, the way
        # one that has not replayed a migration adding it would: renamed away
        # and replayed, replay paused, then back on the primary alone.
        db.query("ALTER VIEW vgc_rollup_hourly_live RENAME TO vgc_rollup_hourly_live_away")
        wait_replayed(db, standby, "the standby replays the view going away")
        sconn = psycopg2.connect(standby.conninfo(db.name))
        sconn.autocommit = True
        scur = sconn.cursor()
        scur.execute("SELECT pg_wal_replay_pause()")

        def paused():  # a pause is a request the startup process takes up
            scur.execute("SELECT pg_get_wal_replay_pause_state()")
            return scur.fetchone()[0] == "paused"

        wait_until(paused, 10, "the standby's replay paused")
        db.query("ALTER VIEW vgc_rollup_hourly_live_away RENAME TO vgc_rollup_hourly_live")
        scur.execute("SELECT to_regclass('vgc_rollup_hourly_live') IS NULL")
        assert scur.fetchone()[0], "the paused standby replayed the view coming back"
        assert wait_replica_state(c, "ok")["replica"]["state"] == "ok"

        before = metric(c.get("/metrics").text, "vgcollector_replica_reads_fallback_total")
        r = c.get("/v1/rollups?" + hour, key=read)
        assert r.status_code == 200, (r.status_code, r.text)  # was 500
        assert r.headers["X-Vgc-Read-Source"] == "primary", r.headers
        got = jloads(r)
        assert [(x["period"], x["project"], x["requests"], x["cost_usd"]) for x in got["rows"]] \
            == [(at, "migrating", 3, "0.375")], got
        text = c.get("/metrics").text
        assert metric(text, "vgcollector_replica_reads_fallback_total") == before + 1
        assert re.search(r'^vgcollector_replica_reads_schema_fallback_total\{sqlstate="42P01"\} 1$',
                         text, re.M), text
        # (logfmt escapes the quotes around the name)
        wait_until(lambda: re.search(r'42P01 \(undefined_table; ERROR: +relation '
                                     r'\\"vgc_rollup_hourly_live\\" does not exist\).*migration',
                                     c.output()), 5,
                   "the log naming the SQLSTATE, the missing relation and the migration")
        # Reads that name only what the standby has stay on it: whole days
        # come from the daily tables, not from the view.
        day = time.strftime("%Y-%m-%d", time.gmtime(t))
        after = time.strftime("%Y-%m-%d", time.gmtime(t + 86400))
        r = c.get(f"/v1/rollups?granularity=day&from={day}&to={after}", key=read)
        assert r.status_code == 200 and r.headers["X-Vgc-Read-Source"] == "replica", \
            (r.status_code, r.text, r.headers)

        # Where the primary lacks the view as well, the read is tried there once
        # and answers the usual 500, with our words only.
        sconn.cursor().execute("SELECT pg_wal_replay_resume()")
        db.query("ALTER VIEW vgc_rollup_hourly_live RENAME TO vgc_rollup_hourly_live_away")
        wait_replayed(db, standby, "the standby replays the view going away again")
        r = c.get("/v1/rollups?" + hour, key=read)
        assert r.status_code == 500, (r.status_code, r.text)
        assert r.headers["X-Vgc-Read-Source"] == "primary", r.headers
        assert "vgc_rollup_hourly_live" not in r.text and "does not exist" not in r.text, r.text
        assert jloads(r)["request_id"] == r.headers["X-Request-Id"], r.text
        assert metric(c.get("/metrics").text,
                      "vgcollector_replica_reads_fallback_total") == before + 2
    finally:
        if sconn:
            sconn.cursor().execute("SELECT pg_wal_replay_resume()")
            sconn.close()
        if db.scalar("SELECT to_regclass('vgc_rollup_hourly_live') IS NULL"):
            db.query("ALTER VIEW vgc_rollup_hourly_live_away RENAME TO vgc_rollup_hourly_live")
        c.stop()


def standby_stopped(standby):
    return not os.path.exists(os.path.join(standby.data, "postmaster.pid"))


def test_read_asking_for_own_writes_goes_to_primary(rdb):
    """X-Vgc-Consistency: primary reads the caller's latest write even while
    the standby is paused behind it (and within read_max_lag_s)."""
    db, standby = rdb
    c = Collector(None, args=["--db", db.conninfo, "--read-db", standby.conninfo(db.name),
                              "--rate-limit-rps", "0"])
    sconn = None
    try:
        ingest, read = db.create_key("ingest"), db.create_key("read")
        wait_replica_state(c, "ok")
        sconn = psycopg2.connect(standby.conninfo(db.name))
        sconn.autocommit = True
        sconn.cursor().execute("SELECT pg_wal_replay_pause()")
        assert c.post("/v1/ingest", json=[make_row(0, cost_usd=0.5, project="mine")],
                      key=ingest).status_code == 200
        r = c.get("/v1/costs", key=read, headers={"X-Vgc-Consistency": "primary"})
        assert r.status_code == 200 and r.headers["X-Vgc-Read-Source"] == "primary"
        assert jloads(r)["by_project"]["mine"] == {"cost": Decimal("0.5"), "requests": 1}
        r = c.get("/v1/costs", key=read)  # within read_max_lag_s: the stale standby
        assert r.status_code == 200 and r.headers["X-Vgc-Read-Source"] == "replica", \
            (r.status_code, r.text)
        assert "mine" not in jloads(r)["by_project"]
    finally:
        if sconn:
            sconn.cursor().execute("SELECT pg_wal_replay_resume()")
            sconn.close()
        c.stop()


def test_unreachable_read_db_keeps_collector_ready_and_reads_on_primary(rdb):
    db, _ = rdb
    gone = tempfile.mkdtemp(prefix="vgc-no-standby-")
    c = Collector(None, args=["--db", db.conninfo, "--read-db", f"host={gone} dbname=x"])
    try:
        read = db.create_key("read")
        st = wait_replica_state(c, "down")
        assert c.get("/readyz").status_code == 200 and st["status"] == "ready"
        assert st["replica"]["lag_s"] is None
        text = c.get("/metrics").text
        assert metric(text, "vgcollector_replica_up") == 0
        r = c.get("/v1/rollups", key=read)
        assert r.status_code == 200 and r.headers["X-Vgc-Read-Source"] == "primary"
    finally:
        c.stop()


# ---- deploy/ ------------------------------------------------------------------


def test_haproxy_example_is_valid_and_checks_readyz():
    path = os.path.join(ROOT, "deploy", "haproxy.cfg")
    r = subprocess.run([HAPROXY, "-c", "-f", path],
                                     capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = open(path).read()
    assert re.search(r"^\s*option httpchk GET /readyz$", cfg, re.M)
    assert re.search(r"^\s*http-check expect status 200$", cfg, re.M)


def test_template_unit_runs_one_collector_per_instance_and_verifies():
    with open(os.path.join(ROOT, "deploy", "vgcollector@.service")) as f:
        unit = f.read()
    assert re.search(r"^ExecStart=@PREFIX@/bin/vgcollector serve --config "
                     r"/etc/vgcollector/%i\.conf$", unit, re.M)
    assert re.search(r"^Type=notify$", unit, re.M)
    prefix = tempfile.mkdtemp(prefix="vgc-prefix-")
    os.makedirs(os.path.join(prefix, "bin"))
    shutil.copy(VGC, os.path.join(prefix, "bin", "vgcollector"))
    for name in ("vgcollector@.service", "vgcollector@2.service"):
        path = os.path.join(prefix, name)
        with open(path, "w") as f:
            f.write(unit.replace("@PREFIX@", prefix))
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "vgcollector@" not in r.stderr, r.stderr  # no warnings about our unit


# ---- schema/0005_scale.sql ------------------------------------------------------


def test_0005_puts_tenant_first_in_rollup_key_in_place_with_rows(db, collector):
    """A database at 0002 holding rows upgrades in place: the rollup key leads
    with tenant_id, rows and sums are kept, and ingest still dedups and
    upserts into the same groups."""
    key = db.create_key("ingest")
    ts = (int(time.time()) // 3600 - 1) * 3600 + 1800  # one hour for every row
    rows = [make_row(i, tenant_id=f"t{i % 2}", timestamp=ts) for i in range(6)]
    assert collector.post("/v1/ingest", json=rows, key=key).json()["accepted"] == 6
    fold_rollup(db)
    # Back to the layout before 0005, as an existing database has it.
    db.query("DROP INDEX cost_rollup_hourly_key; DROP INDEX cost_rollup_hourly_hour;"
             " CREATE UNIQUE INDEX cost_rollup_hourly_key ON cost_rollup_hourly"
             " (hour, project, agent_id, tenant_id, modality, provider, model_id)"
             " NULLS NOT DISTINCT;"
             " CREATE INDEX cost_rollup_hourly_tenant ON cost_rollup_hourly (tenant_id, hour);"
             " DELETE FROM schema_migrations WHERE version = '0005_scale'")
    before = db.query("SELECT tenant_id, requests, cost_usd FROM cost_rollup_hourly ORDER BY 1")
    r = run_vgc("migrate", "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    key_def = db.scalar("SELECT indexdef FROM pg_indexes WHERE indexname = 'cost_rollup_hourly_key'")
    assert "(tenant_id, hour, project, agent_id, modality, provider, model_id)" in key_def
    assert db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname ="
                     " 'cost_rollup_hourly_tenant'") == 0
    assert db.query("SELECT tenant_id, requests, cost_usd FROM cost_rollup_hourly"
                    " ORDER BY 1") == before
    more = rows[:3] + [make_row(9, tenant_id="t1", timestamp=ts)]
    answer = collector.post("/v1/ingest", json=more, key=key).json()
    assert (answer["accepted"], answer["duplicates"]) == (1, 3)
    fold_rollup(db)
    assert db.scalar("SELECT count(*) FROM cost_rollup_hourly") == 2


def test_sigterm_drains_a_collector_out_of_the_example_haproxy_with_no_failed_batch(rdb):
    """deploy/haproxy.cfg as shipped, over 2 collectors: one is sent SIGTERM
    while batches stream through haproxy, and every batch is answered 200,
    each row stored once."""
    db, _ = rdb
    key = db.create_key("ingest")
    cols = [Collector(None, args=["--db", db.conninfo, "--rate-limit-rps", "0"])
            for _ in range(2)]
    proxy = Haproxy([c.port for c in cols], example=os.path.join(ROOT, "deploy", "haproxy.cfg"))
    try:
        wait_until(lambda: httpx.get(proxy.url + "/readyz", timeout=2).status_code == 200, 15,
                   "haproxy forwarding /readyz")
        statuses, halt = [], threading.Event()

        def stream():
            with httpx.Client(timeout=30) as client:
                b = 0
                while not halt.is_set():
                    rows = [make_row(i, id=f"drain-{b}-{i}") for i in range(10)]
                    r = client.post(proxy.url + "/v1/ingest", json=rows,
                                    headers={"Authorization": f"Bearer {key}"})
                    statuses.append((r.status_code, r.text[:120]))
                    b += 1

        t = threading.Thread(target=stream)
        t.start()
        try:
            wait_until(lambda: len(statuses) >= 20, 30, "batches flowing through haproxy")
            cols[0].signal(signal.SIGTERM)
            cols[0].proc.wait(timeout=30)
            n = len(statuses)
            wait_until(lambda: len(statuses) >= n + 20, 30, "batches after the drain")
        finally:
            halt.set()
            t.join(timeout=60)
        bad = [s for s in statuses if s[0] != 200]
        assert not bad, f"{len(bad)} of {len(statuses)} batches failed: {bad[:3]}"
        assert db.scalar("SELECT count(DISTINCT id) FROM cost_rows") == \
            db.scalar("SELECT count(*) FROM cost_rows") == 10 * len(statuses)
    finally:
        proxy.destroy()
        for c in cols:
            if c.proc.poll() is None:
                c.stop()
