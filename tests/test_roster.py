"""The fleet roster. POST /v1/agents/heartbeat (VoiceGateway's
contract), GET /v1/agents, `vgcollector agents`, the /metrics gauges, the
retention pass forgetting long-offline workers, and libvgsink's own
heartbeat with its delivery counters, all over the real binaries and a real
PostgreSQL."""

import json
import re
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone

import httpx

from conftest import assert_names, assert_sink_stats_add_up, free_port, run_vgc, wait_until
from test_ops import metrics_map
from test_sink import tool
from test_sink_failures import Sim

# VoiceGateway's canonical beat, byte for byte as its workers send it.
CANONICAL = (b'{"agent_id":"worker-host-1","agent_name":"myvoiceagents","status":"idle",'
             b'"active_sessions":0,"version":"0.13.0","project":"mahimai-realty",'
             b'"tenant_id":null,"region":"iad","host":"worker-host-1",'
             b'"started_at":1783200000.0,"ts":1783200015.0}')
FAST_RETRY = ("--retry-initial-ms", 20, "--retry-max-ms", 100)


def beat(c, key, agent_id="w-1", **fields):
    body = {"agent_id": agent_id, "status": "idle", "active_sessions": 0, "ts": time.time()}
    body.update(fields)
    return c.post("/v1/agents/heartbeat", json=body, key=key)


def roster(c, key, **params):
    r = c.get("/v1/agents", key=key, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def agent(c, key, agent_id, **params):
    """The roster entry of agent_id, or None."""
    hits = [a for a in roster(c, key, **params)["agents"] if a["agent_id"] == agent_id]
    assert len(hits) <= 1, hits
    return hits[0] if hits else None


def rfc3339(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def assert_beat_adds_up(a):
    s = a["sink"]
    assert s is not None, a
    assert_sink_stats_add_up(s)


# ---- the contract -------------------------------------------------------------------------

def test_roster_json_members_their_order_and_escaping_are_the_contract(db, collector):
    """Each worker's JSON is rendered by the collector from columns (it was
    built by PostgreSQL's json_build_object): the same members in the same
    order, the sink object's too, integers as numbers, absent values as null,
    and text with quotes, backslashes and non-ASCII characters read back
    exactly as stored (control characters are refused at the heartbeat)."""
    ingest_key, read_key = db.create_key("ingest"), db.create_key("read")
    name = 'say "hi" \\ back/slash caf\u00e9 \u6f22'
    sink = {"recorded": 10, "sent": 7, "dropped": 1, "rejected": 0, "queued": 2,
            "spooled_rows": 0, "spool_bytes": 0, "last_error": 'HTTP 503: "busy" \\o/'}
    assert beat(collector, ingest_key, "w-json", agent_name=name, version="1.2.3",
                sink=sink).status_code == 200
    assert beat(collector, ingest_key, "w-bare").status_code == 200
    raw = collector.get("/v1/agents", key=read_key).text
    got = {a["agent_id"]: a for a in json.loads(raw)["agents"]}
    members = ["agent_id", "agent_name", "tenant_id", "project", "status", "active_sessions",
               "version", "region", "host", "started_at", "last_seen", "last_seen_age_s",
               "sink", "delivery"]
    assert list(got["w-json"]) == members and list(got["w-bare"]) == members
    assert list(got["w-json"]["sink"]) == list(sink)
    assert got["w-json"]["sink"] == sink
    assert got["w-json"]["agent_name"] == name
    assert db.scalar("SELECT agent_name FROM agents WHERE agent_id = 'w-json'") == name
    bare = got["w-bare"]
    assert (bare["agent_name"], bare["region"], bare["started_at"], bare["sink"]) == \
        (None, None, None, None)
    assert bare["active_sessions"] == 0 and isinstance(bare["last_seen_age_s"], int)


def test_voicegateway_canonical_beat_answers_200_and_is_listed(db, collector):
    ingest_key, read_key = db.create_key("ingest"), db.create_key("read")
    r = collector.post("/v1/agents/heartbeat", body=CANONICAL, key=ingest_key,
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "ttl_s": 45}
    got = roster(collector, read_key)
    assert got["ttl_s"] == 45 and len(got["agents"]) == 1
    a = got["agents"][0]
    assert {k: a[k] for k in ("agent_id", "agent_name", "tenant_id", "project", "status",
                              "active_sessions", "version", "region", "host", "sink",
                              "delivery")} == {
        "agent_id": "worker-host-1", "agent_name": "myvoiceagents", "tenant_id": None,
        "project": "mahimai-realty", "status": "idle", "active_sessions": 0,
        "version": "0.13.0", "region": "iad", "host": "worker-host-1", "sink": None,
        "delivery": "unknown"}
    assert rfc3339(a["started_at"]) == datetime.fromtimestamp(1783200000, timezone.utc)
    assert 0 <= a["last_seen_age_s"] <= 5
    # Heartbeats touch only the roster.
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0


def test_last_seen_is_server_time_even_when_ts_is_a_year_off(db, collector):
    key, read = db.create_key("ingest"), db.create_key("read")
    year = 365 * 86400
    for agent_id, ts in (("past", time.time() - year), ("future", time.time() + year)):
        before = datetime.now(timezone.utc)
        assert beat(collector, key, agent_id, ts=ts).status_code == 200
        after = datetime.now(timezone.utc)
        a = agent(collector, read, agent_id)
        # Millisecond text: allow the rounding either side.
        assert before.timestamp() - 0.002 <= rfc3339(a["last_seen"]).timestamp() \
            <= after.timestamp() + 0.002, (before, a["last_seen"], after)
        assert a["status"] == "idle" and a["last_seen_age_s"] <= 5
        # The client's ts is kept, and decided nothing.
        stored = db.scalar("SELECT extract(epoch FROM client_ts) FROM agents WHERE agent_id = %s",
                           agent_id)
        assert abs(float(stored) - ts) < 0.001


def test_worker_turns_offline_after_agent_ttl_s(db, collectors):
    c = collectors(db, "--agent-ttl-s", "2")
    key, read = db.create_key("ingest"), db.create_key("read")
    r = beat(c, key, "w-ttl", status="busy", active_sessions=3)
    assert r.status_code == 200 and r.json()["ttl_s"] == 2
    a = agent(c, read, "w-ttl")
    assert (a["status"], a["active_sessions"]) == ("busy", 3), a
    gone = wait_until(lambda: (x := agent(c, read, "w-ttl"))["status"] == "offline" and x, 15,
                      "the worker reported offline")
    assert gone["active_sessions"] == 0 and gone["last_seen_age_s"] >= 2, gone
    assert [x["agent_id"] for x in roster(c, read, status="offline")["agents"]] == ["w-ttl"]
    assert roster(c, read, status="busy")["agents"] == []
    # A new beat brings it back.
    assert beat(c, key, "w-ttl", status="busy", active_sessions=1).status_code == 200
    assert agent(c, read, "w-ttl")["status"] == "busy"


def test_status_sleeping_gets_400_naming_the_field(db, collector):
    key = db.create_key("ingest")
    r = beat(collector, key, "w-bad", status="sleeping")
    assert r.status_code == 400, r.text
    assert_names(r.json()["error"], "status")
    assert '"sleeping"' in r.json()["error"]
    assert db.scalar("SELECT count(*) FROM agents") == 0


def test_bad_fields_get_400_naming_each(db, collector):
    key = db.create_key("ingest")
    cases = [
        ({"agent_id": None}, "agent_id"),
        ({"agent_id": ""}, "agent_id"),
        ({"agent_id": "x" * 129}, "agent_id"),
        ({"status": "offline"}, "status"),
        ({"active_sessions": -1}, "active_sessions"),
        ({"active_sessions": 1.5}, "active_sessions"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"ts": -5}, "ts"),
        ({"region": 7}, "region"),
        ({"sink": {"recorded": 1, "dropped": "many"}}, "sink.dropped"),
        ({"sink": [1]}, "sink"),
    ]
    for over, name in cases:
        body = {"agent_id": "w-bad", "status": "idle"}
        body.update(over)
        r = collector.post("/v1/agents/heartbeat", json=body, key=key)
        assert r.status_code == 400, (over, r.text)
        assert_names(r.json()["error"], name)
    for raw, name in ((b"{not json", "body"), (b"[1,2]", "body")):
        r = collector.post("/v1/agents/heartbeat", body=raw, key=key)
        assert r.status_code == 400 and r.json()["error"].startswith(name + ":"), r.text
    # Unknown fields are ignored.
    assert beat(collector, key, "w-ok", gpu="a100", extra={"x": 1}).status_code == 200
    assert db.scalar("SELECT count(*) FROM agents") == 1


def test_20_concurrent_first_beats_make_one_row(db, collector):
    key = db.create_key("ingest")
    start = threading.Barrier(20)
    codes = []

    def one():
        with httpx.Client(timeout=30) as cl:
            start.wait(timeout=30)
            r = cl.post(collector.url + "/v1/agents/heartbeat",
                        json={"agent_id": "same-worker", "status": "busy",
                              "active_sessions": 2},
                        headers={"Authorization": f"Bearer {key}"})
            codes.append(r.status_code)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert codes == [200] * 20, codes
    assert db.query("SELECT tenant_id, agent_id FROM agents") == [(None, "same-worker")]


# ---- tenant and project scope ---------------------------------------------------------------

def test_tenant_scoped_key_beat_is_stored_under_the_key_tenant(db, collector):
    acme = db.create_key("ingest", tenant="acme")
    proj = db.create_key("ingest", project="p-key")
    assert beat(collector, acme, "w-t", tenant_id="globex", project="p-body").status_code == 200
    assert beat(collector, proj, "w-p", tenant_id="globex", project="p-body").status_code == 200
    assert db.query("SELECT tenant_id, project FROM agents ORDER BY agent_id") == [
        (None, "p-key"), ("acme", "p-body")]
    # Identity is (tenant, project, agent_id): the same agent_id under another tenant is
    # another worker.
    unscoped = db.create_key("ingest")
    assert beat(collector, unscoped, "w-t").status_code == 200
    assert db.scalar("SELECT count(*) FROM agents WHERE agent_id = 'w-t'") == 2


def test_tenant_scoped_read_key_sees_only_its_tenant(db, collector):
    for tenant in ("acme", "globex", None):
        k = db.create_key("ingest", tenant=tenant)
        assert beat(collector, k, f"w-{tenant or 'none'}").status_code == 200
    acme_read = db.create_key("read", tenant="acme")
    got = roster(collector, acme_read)["agents"]
    assert [(a["agent_id"], a["tenant_id"]) for a in got] == [("w-acme", "acme")]
    r = collector.get("/v1/agents", key=acme_read, params={"tenant": "globex"})
    assert r.status_code == 403 and "acme" in r.json()["error"], r.text
    admin = db.create_key("admin")
    assert len(roster(collector, admin)["agents"]) == 3
    assert [a["agent_id"] for a in roster(collector, admin, tenant="")["agents"]] == ["w-none"]
    # Ingest keys beat; they do not read.
    assert collector.get("/v1/agents", key=db.create_key("ingest")).status_code == 403
    r = collector.get("/v1/agents", key=admin, params={"status": "asleep"})
    assert r.status_code == 400 and r.json()["error"].startswith('status "asleep"'), r.text


def test_project_scoped_read_key_sees_only_its_project(db, collector):
    k = db.create_key("ingest")
    assert beat(collector, k, "w-a", project="alpha").status_code == 200
    assert beat(collector, k, "w-b", project="beta").status_code == 200
    read = db.create_key("read", project="alpha")
    assert [a["agent_id"] for a in roster(collector, read)["agents"]] == ["w-a"]
    assert collector.get("/v1/agents", key=read, params={"project": "beta"}).status_code == 403


# ---- delivery states ------------------------------------------------------------------------

def sink(recorded=0, sent=0, dropped=0, rejected=0, queued=0, spooled_rows=0):
    return {"recorded": recorded, "sent": sent, "dropped": dropped, "rejected": rejected,
            "queued": queued, "spooled_rows": spooled_rows, "spool_bytes": 0,
            "last_error": None}


def test_delivery_states_follow_the_counters_between_beats(db, collector):
    key, read = db.create_key("ingest"), db.create_key("read")
    started = time.time() - 60

    def state(**counters):
        assert beat(collector, key, "w-d", started_at=started,
                    sink=sink(**counters)).status_code == 200
        return agent(collector, read, "w-d")["delivery"]

    assert state(recorded=10, sent=10) == "ok"
    assert state(recorded=20, sent=15, spooled_rows=5) == "backlog"
    # Rows queued at two beats running with nothing sent between: backlog.
    assert state(recorded=25, sent=20, queued=5) == "ok"
    assert state(recorded=30, sent=20, queued=10) == "backlog"
    assert state(recorded=40, sent=40) == "ok"
    assert state(recorded=45, sent=40, rejected=5) == "rejecting"
    assert state(recorded=50, sent=45, rejected=5) == "rejecting"  # within the hour
    assert state(recorded=60, sent=50, dropped=5, rejected=5) == "dropping"
    # An hour later, with the counters flat, the worker is healthy again.
    db.query("UPDATE agents SET dropped_grew_at = dropped_grew_at - interval '2 hours',"
             " rejected_grew_at = rejected_grew_at - interval '2 hours'")
    assert state(recorded=60, sent=50, dropped=5, rejected=5) == "ok"
    # A new process (another started_at) counts from zero: its drops are new.
    assert beat(collector, key, "w-d", started_at=started + 30,
                sink=sink(recorded=3, dropped=3)).status_code == 200
    assert agent(collector, read, "w-d")["delivery"] == "dropping"
    # A beat without counters: unknown.
    assert beat(collector, key, "w-d").status_code == 200
    assert agent(collector, read, "w-d")["delivery"] == "unknown"


# ---- libvgsink's heartbeat -----------------------------------------------------------------

def test_libvgsink_worker_streaming_shows_delivery_ok_with_counters_that_add_up(db, collectors):
    c = collectors(db, "--rate-limit-rps", "0")
    key, read = db.create_key("ingest"), db.create_key("read")
    sim = Sim("--url", c.url, "--key", key, "--threads", 2, "--rows", 1500, "--rate", 500,
              "--agent-id", "sim-worker-1", "--heartbeat-interval-ms", 200,
              "--flush-interval-ms", 100, "--linger-ms", 1500)
    try:
        # While it streams: busy with its 2 threads, every beat adding up.
        live = wait_until(lambda: (a := agent(c, read, "sim-worker-1")) and a["sink"]
                          and a["sink"]["recorded"] > 0 and a["status"] == "busy" and a, 60,
                          "a beat while the worker streams")
        assert live["active_sessions"] == 2, live
        assert_beat_adds_up(live)
        st, err = sim.finish()
    finally:
        sim.kill()
    assert st["sent"] == st["recorded"] == 3000, (st, err)
    final = wait_until(lambda: (a := agent(c, read, "sim-worker-1"))["sink"]["sent"] == 3000
                       and a, 30, "a beat with the final counters")
    assert_beat_adds_up(final)
    assert final["delivery"] == "ok", final
    assert final["status"] == "idle" and final["active_sessions"] == 0, final
    assert final["sink"]["dropped"] == final["sink"]["rejected"] == 0
    assert final["host"], final
    assert db.scalar("SELECT count(*) FROM cost_rows") == 3000


def test_libvgsink_worker_refused_by_413_storm_shows_rejecting(db, collectors):
    c = collectors(db, "--max-body-bytes", "1024", "--rate-limit-rps", "0")
    key, read = db.create_key("ingest"), db.create_key("read")
    # Every row is ~3000 random characters: even alone it gzips past 1024 bytes.
    r = tool("vgsink-sim", "--url", c.url, "--key", key, "--threads", 1, "--rows", 10,
             "--batch-rows", 5, "--pad-bytes", 3000, "--agent-id", "sim-413",
             "--heartbeat-interval-ms", 200, "--linger-ms", 1500, *FAST_RETRY)
    st = json.loads(r.stdout.strip().splitlines()[-1])
    assert st["rejected"] == 10, (st, r.stderr)
    a = wait_until(lambda: (x := agent(c, read, "sim-413")) and x["sink"]
                   and x["sink"]["rejected"] == 10 and x, 30, "a beat with the rejections")
    assert a["delivery"] == "rejecting", a
    assert_beat_adds_up(a)
    assert "413" in (a["sink"]["last_error"] or ""), a


def test_libvgsink_worker_with_full_spool_shows_dropping(db, collectors):
    port = free_port()
    key, read = db.create_key("ingest"), db.create_key("read")
    spool = tempfile.mkdtemp(prefix="vgsink-roster-spool-")
    # The collector is away, the spool holds 4 KiB and memory 20 rows: most
    # of the 300 rows are lost, and the worker says so once it can.
    sim = Sim("--url", f"http://127.0.0.1:{port}", "--key", key, "--threads", 1,
              "--rows", 300, "--batch-rows", 10, "--queue-max-rows", 20,
              "--spool", spool, "--spool-max-bytes", 4096, "--pad-bytes", 200,
              "--stats-every-ms", 20, "--agent-id", "sim-drop",
              "--heartbeat-interval-ms", 200, "--linger-ms", 1500,
              "--close-timeout-ms", 120000, *FAST_RETRY)
    try:
        sim.wait_sample(lambda s: s["recorded"] == 300 and s["dropped"] > 0)
        c = collectors(db, "--rate-limit-rps", "0", port=port)
        a = wait_until(lambda: (x := agent(c, read, "sim-drop")) and x["sink"] and x, 60,
                       "a beat once the collector is back")
        st, err = sim.finish()
    finally:
        sim.kill()
    assert st["dropped"] > 0, st
    assert a["delivery"] == "dropping", a
    assert a["sink"]["dropped"] > 0
    assert_beat_adds_up(a)
    final = wait_until(lambda: (x := agent(c, read, "sim-drop"))["sink"]["dropped"]
                       == st["dropped"] and x, 30, "the final counters")
    assert final["delivery"] == "dropping" and final["sink"]["sent"] == st["sent"], final


def test_libvgsink_worker_with_revoked_key_turns_offline_its_beats_refused(db, collectors):
    # A revoked key's beats get 401 like its rows: the collector cannot
    # attribute them, so the worker goes quiet and turns offline; it never
    # stays "ok" and alive.
    c = collectors(db, "--agent-ttl-s", "2", "--rate-limit-rps", "0")
    key, read = db.create_key("ingest"), db.create_key("read")
    sim = Sim("--url", c.url, "--key", key, "--threads", 1, "--rows", 4000, "--rate", 200,
              "--agent-id", "sim-revoked", "--heartbeat-interval-ms", 200,
              "--flush-interval-ms", 100, "--close-timeout-ms", 2000)
    try:
        wait_until(lambda: (a := agent(c, read, "sim-revoked")) and a["status"] == "busy", 60,
                   "the worker beating")
        r = run_vgc("keys", "revoke", key[:12], "--db", db.conninfo)
        assert r.returncode == 0, r.stderr
        a = wait_until(lambda: (x := agent(c, read, "sim-revoked"))["status"] == "offline"
                       and x, 30, "the worker offline once its key is revoked")
        st, _ = sim.finish()
    finally:
        sim.kill()
    assert a["active_sessions"] == 0
    assert st["rejected"] > 0, st
    assert_sink_stats_add_up(st)
    metrics = c.get("/metrics").text
    assert re.search(r'route="/v1/agents/heartbeat",status="401"\} [1-9]', metrics)


# ---- the CLI, /metrics and retention -----------------------------------------------------

def test_vgcollector_agents_prints_the_aligned_table_and_json(db, collector):
    key = db.create_key("ingest")
    assert beat(collector, key, "w-live", agent_name="fleet", status="busy",
                active_sessions=4, version="1.2", region="iad", host="h1",
                sink=sink(recorded=9, sent=9)).status_code == 200
    assert beat(collector, key, "w-gone", agent_name="fleet").status_code == 200
    assert beat(collector, key, "w-losing", sink=sink(recorded=9, sent=4, dropped=5)) \
        .status_code == 200
    db.query("UPDATE agents SET last_seen = last_seen - interval '10 minutes'"
             " WHERE agent_id = 'w-gone'")
    r = run_vgc("agents", "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    head, rows = lines[0], lines[1:4]
    assert head.split() == ["AGENT", "NAME", "TENANT", "PROJECT", "STATUS", "SESSIONS",
                            "VERSION", "REGION", "HOST", "LAST", "SEEN", "DELIVERY",
                            "RECORDED", "SENT", "DROPPED", "REJECTED", "BACKLOG"]
    by_id = {ln.split()[0].lstrip("!x") or ln.split()[1]: ln for ln in rows}
    for ln in rows:
        # Aligned: each value sits under its header.
        assert ln.index("idle" if "idle" in ln else "busy" if "busy" in ln else "offline") \
            == head.index("STATUS"), (head, ln)
        assert ln[head.index("DELIVERY"):].split()[0] in ("ok", "dropping", "unknown")
    assert re.match(r"^x\s+w-gone\s", by_id["w-gone"]) and "offline" in by_id["w-gone"]
    assert re.match(r"^!\s+w-losing\s", by_id["w-losing"]) and "dropping" in by_id["w-losing"]
    assert re.match(r"^\s+w-live\s+fleet\s+\(none\)\s", by_id["w-live"]), by_id["w-live"]
    assert "3 workers" in r.stdout
    # --json is the API's answer.
    j = run_vgc("agents", "--db", db.conninfo, "--json")
    assert j.returncode == 0, j.stderr
    api = roster(collector, db.create_key("read"))
    strip = lambda d: [{k: v for k, v in a.items() if k != "last_seen_age_s"}
                       for a in d["agents"]]
    assert strip(json.loads(j.stdout)) == strip(api)
    only = run_vgc("agents", "--db", db.conninfo, "--status", "offline", "--json")
    assert [a["agent_id"] for a in json.loads(only.stdout)["agents"]] == ["w-gone"]
    bad = run_vgc("agents", "--db", db.conninfo, "--status", "asleep")
    assert bad.returncode == 2 and "--status" in bad.stderr
    assert run_vgc("agents", "--help").returncode == 0


def test_metrics_roster_gauges_pass_promtool(db, collector):
    key = db.create_key("ingest")
    assert beat(collector, key, "w-idle").status_code == 200
    assert beat(collector, key, "w-busy", status="busy", active_sessions=2,
                sink=sink(recorded=20, sent=8, dropped=5, queued=3, spooled_rows=4)) \
        .status_code == 200
    assert beat(collector, key, "w-old", sink=sink(recorded=2, dropped=2)).status_code == 200
    db.query("UPDATE agents SET last_seen = now() - interval '1 hour' WHERE agent_id = 'w-old'")
    want = {'vgcollector_agents{status="idle"}': 1, 'vgcollector_agents{status="busy"}': 1,
            'vgcollector_agents{status="offline"}': 1,
            "vgcollector_agent_sink_dropped_rows": 7, "vgcollector_agent_sink_backlog_rows": 7}

    def gauges():
        text = collector.get("/metrics").text
        m = metrics_map(text)
        return text if all(m.get(k) == v for k, v in want.items()) else None

    text = wait_until(gauges, 20, "the roster gauges in /metrics", interval=0.5)
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_retention_forgets_workers_offline_longer_than_agent_forget_after_s(db, collector):
    key = db.create_key("ingest")
    for agent_id in ("w-recent", "w-ancient"):
        assert beat(collector, key, agent_id).status_code == 200
    db.query("UPDATE agents SET last_seen = now() - interval '8 days'"
             " WHERE agent_id = 'w-ancient'")
    dry = run_vgc("retention", "--db", db.conninfo, "--dry-run")
    assert dry.returncode == 0 and "would forget 1 roster workers" in dry.stdout, dry.stdout
    assert db.scalar("SELECT count(*) FROM agents") == 2
    r = run_vgc("retention", "--db", db.conninfo)
    assert r.returncode == 0 and "forgot 1 roster workers" in r.stdout, r.stdout + r.stderr
    assert db.query("SELECT agent_id FROM agents") == [("w-recent",)]
    # A shorter agent_forget_after_s forgets sooner.
    db.query("UPDATE agents SET last_seen = now() - interval '1 hour'")
    r = run_vgc("retention", "--db", db.conninfo, "--agent-forget-after-s", "600")
    assert r.returncode == 0 and "forgot 1" in r.stdout, r.stdout
    assert db.scalar("SELECT count(*) FROM agents") == 0
