"""The roster against a hostile client and a large fleet, over the real
binaries: a worker's identity holds its project scope, heartbeats are parsed
with ingest's strict and bounded rules under a small body cap, the listing's
query parameters are checked like the read API's, each tenant has a worker
quota, and GET /v1/agents pages with a cursor so that no request builds more
than one page."""

import base64
import json
import os
import threading
import time

import httpx

from conftest import assert_names, run_vgc

SAN = "san" in os.environ.get("VGC_BUILD", "")


def beat(c, key, agent_id, **fields):
    body = {"agent_id": agent_id, "status": "idle", "active_sessions": 0}
    body.update(fields)
    return c.post("/v1/agents/heartbeat", json=body, key=key)


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def fill_roster(db, n, tenant=None, prefix="sim"):
    """n workers written straight into the table, as a big fleet leaves it."""
    db.query(
        "INSERT INTO agents (tenant_id, agent_id, agent_name, project, status, active_sessions,"
        " version, region, host, last_seen, sink_recorded, sink_sent, sink_dropped,"
        " sink_rejected, sink_queued, sink_spooled_rows, sink_spool_bytes)"
        " SELECT %s, %s || '-' || lpad(g::text, 7, '0'), 'fleet', 'p' || mod(g, 7), 'busy', 3,"
        " '1.4.2', 'iad', 'host-' || g, now(), 1000, 990, 0, 0, 10, 0, 0"
        " FROM generate_series(1, %s) g", tenant, prefix, n)


def page_all(c, key, limit, **params):
    """Every page of GET /v1/agents: (agents in order, pages fetched)."""
    got, pages, cursor = [], 0, None
    while True:
        p = dict(params, limit=limit)
        if cursor:
            p["cursor"] = cursor
        r = c.get("/v1/agents", key=key, params=p)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["agents"]) <= limit
        got += body["agents"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return got, pages


# ---- scope ----------------------------------------------------------------------------------

def test_project_scoped_key_cannot_take_over_another_projects_worker(db, collector):
    """A key scoped to project pX beating the agent_id of a worker of project
    pY moved that worker to pX and wiped its host and sink counters. Now the
    identity is (tenant, project, agent_id): the pX beat makes its own worker
    and the pY worker keeps everything."""
    py = db.create_key("ingest", project="pY")
    px = db.create_key("ingest", project="pX")
    counters = {"recorded": 50, "sent": 50, "dropped": 0, "rejected": 0, "queued": 0,
                "spooled_rows": 0, "spool_bytes": 0}
    assert beat(collector, py, "w-global", host="h-y", sink=counters).status_code == 200
    r = beat(collector, px, "w-global", host="h-x", project="pY")
    assert r.status_code == 200, r.text
    rows = db.query("SELECT project, host, sink_recorded FROM agents WHERE agent_id = 'w-global'"
                    " ORDER BY project")
    assert rows == [("pX", "h-x", None), ("pY", "h-y", 50)]
    read_x = db.create_key("read", project="pX")
    read_y = db.create_key("read", project="pY")
    mine = collector.get("/v1/agents", key=read_x).json()["agents"]
    assert [(a["agent_id"], a["project"], a["host"]) for a in mine] == [("w-global", "pX", "h-x")]
    theirs = collector.get("/v1/agents", key=read_y).json()["agents"]
    assert [(a["project"], a["host"], a["sink"]["recorded"]) for a in theirs] == \
        [("pY", "h-y", 50)]
    # The pY worker beats on as before, and stays one row.
    assert beat(collector, py, "w-global", host="h-y2").status_code == 200
    assert db.scalar("SELECT count(*) FROM agents") == 2
    assert db.scalar("SELECT host FROM agents WHERE project = 'pY'") == "h-y2"


# ---- the heartbeat body ---------------------------------------------------------------------

def test_heartbeat_nul_raw_nul_and_trailing_bytes_get_400_naming_the_field(db, collector):
    """{"agent_id":"nul\\u0000A"} and "...\\u0000B" (and a raw NUL) were
    stored as one worker "nul"; {"agent_id":"trail"} junk was accepted."""
    key = db.create_key("ingest")
    cases = [
        (b'{"agent_id":"nul\\u0000A"}', "agent_id"),
        (b'{"agent_id":"nul\\u0000B"}', "agent_id"),
        (b'{"agent_id":"nul\x00C"}', "agent_id"),
        (b'{"agent_id":"w","host":"h\\u0000x"}', "host"),
        (b'{"agent_id":"trail"} junk', "body"),
        (b'{"agent_id":"trail"}{"agent_id":"again"}', "body"),
        (b'{"agent_id":"x", }', "body"),
    ]
    for raw, name in cases:
        r = collector.post("/v1/agents/heartbeat", body=raw, key=key,
                           headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (raw, r.text)
        assert_names(r.json()["error"], name)
    assert db.scalar("SELECT count(*) FROM agents") == 0
    # Escapes that are not NUL are fine.
    r = collector.post("/v1/agents/heartbeat", body=b'{"agent_id":"caf\\u00e9"}', key=key)
    assert r.status_code == 200, r.text
    assert db.query("SELECT agent_id FROM agents") == [("caf\u00e9",)]


def test_four_8_mib_heartbeats_at_once_are_refused_with_peak_rss_under_200_mib(db, collectors):
    """One 8 MiB heartbeat {"agent_id":"a","x":[0,0,...]} took the collector
    to 348 MB RSS and four at once to 1.42 GB: cJSON built the whole tree. Now
    a body over max_heartbeat_bytes is refused with 413 before anything parses
    it, and one under it with more values than max_element_values is refused
    by the allocation-free pre-scan."""
    c = collectors(db)
    key = db.create_key("ingest")
    body = b'{"agent_id":"a","x":[' + b",".join([b"0"] * (4 * 1024 * 1024 - 16)) + b"]}"
    assert 8 * 1024 * 1024 - 64 < len(body) <= 8 * 1024 * 1024
    assert beat(c, key, "warm").status_code == 200
    pid = c.proc.pid
    answers = [None] * 4

    def send(i):
        answers[i] = c.post("/v1/agents/heartbeat", body=body, key=key, timeout=120,
                            headers={"Content-Type": "application/json"})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert all(a is not None for a in answers), "a heartbeat did not finish in 180 s"
    for a in answers:
        assert a.status_code == 413, a.text[:300]
        assert_names(a.json()["error"], "body")
        assert "max_heartbeat_bytes" in a.json()["error"]
    peak_mib = status_kib(pid, "VmHWM") / 1024
    print(f"peak RSS {peak_mib:.0f} MiB")
    assert peak_mib < (600 if SAN else 200), f"peak RSS {peak_mib:.0f} MiB"
    # Under the byte cap, over the value bound: the scan refuses it unparsed.
    many = b'{"agent_id":"a","x":[' + b",".join([b"0"] * 20000) + b"]}"
    assert len(many) < 64 * 1024
    r = c.post("/v1/agents/heartbeat", body=many, key=key)
    assert r.status_code == 413 and "max_element_values" in r.json()["error"], r.text
    assert db.query("SELECT agent_id FROM agents") == [("warm",)]


# ---- the listing's parameters ---------------------------------------------------------------

def test_agents_query_parameters_get_400_naming_each(db, collector):
    """?tenant=%FF and ?agent_name=%C3 answered 500; ?project=%00x silently
    meant "no project"; ?status=%FF answered invalid UTF-8 JSON."""
    admin = db.create_key("admin")
    assert beat(collector, db.create_key("ingest"), "w-1").status_code == 200
    cases = [
        ("tenant=%FF", "tenant"),
        ("agent_name=%C3", "agent_name"),
        ("project=%00x", "project"),
        ("status=%FF", "status"),
        ("status=asleep", "status"),
        ("delivery=lost", "delivery"),
        ("tenant=a%01b", "tenant"),
        ("limit=0", "limit"),
        ("limit=5001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=%21%21", "cursor"),
        ("cursor=" + base64.urlsafe_b64encode(b"no-separators").decode().rstrip("="), "cursor"),
        ("limit=5&limit=6", "limit"),
    ]
    for qs, name in cases:
        r = httpx.get(f"{collector.url}/v1/agents?{qs}",
                      headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        assert r.status_code == 400, (qs, r.status_code, r.text)
        r.content.decode("utf-8")  # strict: the answer is valid UTF-8
        assert_names(r.json()["error"], name)
    r = httpx.get(f"{collector.url}/v1/agents?colour=red",
                  headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert r.status_code == 400 and "colour" in r.json()["error"], r.text


# ---- the quota ------------------------------------------------------------------------------

def test_agents_max_per_tenant_refuses_new_workers_with_429_naming_the_quota(db, collectors):
    """4 threads beating new agent_ids made 1,370 workers in 15 s from one
    tenant key. Now a tenant has at most agents_max_per_tenant workers, even
    when new ones beat concurrently; known workers go on beating, and other
    tenants are not affected."""
    c = collectors(db, config_text="agents_max_per_tenant = 25\n")
    acme = db.create_key("ingest", tenant="acme")
    globex = db.create_key("ingest", tenant="globex")
    codes = []

    def flood(t):
        with httpx.Client(timeout=30) as cl:
            for i in range(20):
                r = cl.post(c.url + "/v1/agents/heartbeat", json={"agent_id": f"w-{t}-{i}"},
                            headers={"Authorization": f"Bearer {acme}"})
                codes.append((r.status_code, r.text))

    threads = [threading.Thread(target=flood, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted({s for s, _ in codes}) == [200, 429], codes
    assert sum(1 for s, _ in codes if s == 200) == 25
    refused = [t for s, t in codes if s == 429]
    assert_names(json.loads(refused[0])["error"], "agents_max_per_tenant")
    assert '"acme"' in json.loads(refused[0])["error"]
    assert db.scalar("SELECT count(*) FROM agents WHERE tenant_id = 'acme'") == 25
    assert db.scalar("SELECT workers FROM agents_tenant_counts WHERE tenant_id = 'acme'") == 25
    # A known worker beats on; another tenant has its own quota.
    known = db.scalar("SELECT agent_id FROM agents WHERE tenant_id = 'acme' LIMIT 1")
    assert beat(c, acme, known, status="busy").status_code == 200
    assert beat(c, globex, "w-g").status_code == 200
    # Forgetting workers makes room again.
    db.query("UPDATE agents SET last_seen = now() - interval '30 days'"
             " WHERE tenant_id = 'acme' AND agent_id <> %s", known)
    r = run_vgc("retention", "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    assert beat(c, acme, "w-new").status_code == 200
    assert db.scalar("SELECT workers FROM agents_tenant_counts WHERE tenant_id = 'acme'") == 2


# ---- paging ---------------------------------------------------------------------------------

def test_paging_returns_every_worker_exactly_once_while_workers_beat(db, collector):
    """Paging with a cursor: with beats landing meanwhile (known workers and
    new ones), every worker that existed before the first page is listed
    exactly once across the pages, in one stable order."""
    fill_roster(db, 1500, tenant=None, prefix="a")
    fill_roster(db, 700, tenant="acme", prefix="b")
    before = {(t, a, p) for t, a, p in db.query("SELECT tenant_id, agent_id, project FROM agents")}
    admin, ingest = db.create_key("admin"), db.create_key("ingest")
    stop = threading.Event()
    beats = []

    def beating():
        with httpx.Client(timeout=30) as cl:
            i = 0
            while not stop.is_set():
                i += 1
                for body in ({"agent_id": f"a-{i * 37 % 1500 + 1:07d}", "project": f"p{i % 7}",
                              "status": "idle"},
                             {"agent_id": f"new-{i}", "project": "p0"}):
                    r = cl.post(collector.url + "/v1/agents/heartbeat", json=body,
                                headers={"Authorization": f"Bearer {ingest}"})
                    beats.append(r.status_code)
                    # At most ~100 beats/s: one key past rate_limit_rps (200/s
                    # after a burst of 400) would get 429, and a slow build
                    # pages long enough for that to happen.
                    time.sleep(0.01)

    t = threading.Thread(target=beating)
    t.start()
    try:
        got, pages = page_all(collector, admin, 97)
    finally:
        stop.set()
        t.join(60)
    assert beats and set(beats) == {200}, set(beats)
    keys = [(a["tenant_id"], a["agent_id"], a["project"]) for a in got]
    assert len(keys) == len(set(keys)), "a worker was listed twice"
    assert before <= set(keys), f"{len(before - set(keys))} workers were never listed"
    assert pages >= len(before) // 97
    # Tenant none first, then by agent_id: the order the cursor follows.
    assert [k[0] for k in keys[:3]] == [None] * 3 and keys[-1][0] == "acme"
    assert [k[1] for k in keys if k[0] == "acme"] == sorted(k[1] for k in keys if k[0] == "acme")


def test_page_filters_status_delivery_tenant_and_project(db, collector):
    """status and delivery take one value or a comma-separated list; tenant
    and project narrow within the key's scope; the page shape keeps the old
    fields and adds next_cursor."""
    ik = db.create_key("ingest")
    drops = {"recorded": 10, "sent": 5, "dropped": 5, "rejected": 0, "queued": 0,
             "spooled_rows": 0, "spool_bytes": 0}
    assert beat(collector, ik, "w-ok", project="alpha").status_code == 200
    assert beat(collector, ik, "w-drop", project="alpha", sink=drops).status_code == 200
    assert beat(collector, ik, "w-gone", project="beta").status_code == 200
    assert beat(collector, db.create_key("ingest", tenant="acme"), "w-acme").status_code == 200
    db.query("UPDATE agents SET last_seen = now() - interval '1 hour' WHERE agent_id = 'w-gone'")
    rk = db.create_key("read")

    def ids(**params):
        r = collector.get("/v1/agents", key=rk, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"ttl_s", "agents", "next_cursor"}
        return [a["agent_id"] for a in body["agents"]]

    assert ids() == ["w-drop", "w-gone", "w-ok", "w-acme"]
    assert ids(status="offline") == ["w-gone"]
    assert ids(status="idle,busy") == ["w-drop", "w-ok", "w-acme"]
    assert ids(delivery="dropping") == ["w-drop"]
    assert ids(delivery="unknown", status="idle") == ["w-ok", "w-acme"]
    assert ids(tenant="acme") == ["w-acme"]
    assert ids(tenant="", project="alpha") == ["w-drop", "w-ok"]
    assert ids(limit=2) == ["w-drop", "w-gone"]
    first = collector.get("/v1/agents", key=rk, params={"limit": 3}).json()
    rest = collector.get("/v1/agents", key=rk,
                        params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [a["agent_id"] for a in rest["agents"]] == ["w-acme"] and rest["next_cursor"] is None
    # The key's scope still holds with a cursor and filters.
    acme_read = db.create_key("read", tenant="acme")
    r = collector.get("/v1/agents", key=acme_read,
                      params={"cursor": first["next_cursor"], "status": "idle"})
    assert [a["agent_id"] for a in r.json()["agents"]] == ["w-acme"]


def test_get_of_a_200k_roster_builds_one_page_and_collector_memory_stays_flat(db, collector):
    """A 500k-worker roster made one GET /v1/agents return 254 MB in 4.75 s
    and add about 490 MB to the collector. Now a plain GET answers one page
    (500 by default, 5,000 at most) with a cursor, and the collector's peak
    RSS grows by a few MiB at most."""
    fill_roster(db, 200_000)
    db.query("ANALYZE agents")
    rk = db.create_key("read")
    pid = collector.proc.pid
    assert collector.get("/v1/agents", key=rk, params={"limit": 1}).status_code == 200
    hwm_before = status_kib(pid, "VmHWM")
    t0 = time.monotonic()
    r = collector.get("/v1/agents", key=rk)
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["agents"]) == 500 and body["next_cursor"]
    big = collector.get("/v1/agents", key=rk, params={"limit": 5000,
                                                      "cursor": body["next_cursor"]})
    assert big.status_code == 200 and len(big.json()["agents"]) == 5000
    assert big.json()["agents"][0]["agent_id"] == "sim-0000501"
    grew_mib = (status_kib(pid, "VmHWM") - hwm_before) / 1024
    print(f"GET of 500: {len(r.content)} bytes in {took:.3f} s; 5000: {len(big.content)} bytes;"
          f" peak RSS grew {grew_mib:.1f} MiB")
    assert len(r.content) < 1_000_000
    assert grew_mib < (64 if SAN else 24), f"peak RSS grew {grew_mib:.1f} MiB"
    # A late page is as quick as the first: the cursor seeks through the index.
    late = db.query("SELECT agent_id FROM agents ORDER BY agent_id OFFSET 199000 LIMIT 1")[0][0]
    cur = base64.urlsafe_b64encode(b"\x00" + late.encode() + b"\x00+p0").decode().rstrip("=")
    t0 = time.monotonic()
    r = collector.get("/v1/agents", key=rk, params={"cursor": cur})
    assert r.status_code == 200 and len(r.json()["agents"]) == 500, r.text
    assert time.monotonic() - t0 < 5


# ---- the CLI --------------------------------------------------------------------------------

def test_vgcollector_agents_pages_through_the_whole_roster(db):
    """The CLI reads the roster a page at a time: every worker once, in page
    order; --limit prints one page and the cursor, --cursor goes on."""
    fill_roster(db, 1234)
    r = run_vgc("agents", "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    ids = [ln.split()[0] for ln in lines[1:1235]]
    assert ids == [f"sim-{i:07d}" for i in range(1, 1235)]
    assert "1234 workers" in r.stdout and lines[0].split()[0] == "AGENT"
    j = run_vgc("agents", "--db", db.conninfo, "--json")
    assert j.returncode == 0, j.stderr
    body = json.loads(j.stdout)
    assert len(body["agents"]) == 1234 and body["next_cursor"] is None
    one = run_vgc("agents", "--db", db.conninfo, "--limit", "1000", "--json")
    page = json.loads(one.stdout)
    assert len(page["agents"]) == 1000 and page["next_cursor"]
    more = run_vgc("agents", "--db", db.conninfo, "--cursor", page["next_cursor"], "--json")
    assert [a["agent_id"] for a in json.loads(more.stdout)["agents"]] == \
        [f"sim-{i:07d}" for i in range(1001, 1235)]
    t = run_vgc("agents", "--db", db.conninfo, "--limit", "3")
    assert "more: --cursor " in t.stdout and "3 workers" in t.stdout
    bad = run_vgc("agents", "--db", db.conninfo, "--delivery", "lost")
    assert bad.returncode == 2 and "--delivery" in bad.stderr
