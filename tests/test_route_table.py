"""The route table: each endpoint declares its roles and body policy, and the
dispatcher enforces them before the handler runs. Small-body endpoints are
capped by their route's key (a heartbeat by max_heartbeat_bytes, a budget by
max_small_body_bytes), so a large body is refused with 413 before it is
parsed."""

import httpx


def padded_beat(size):
    """A heartbeat of about size bytes: {"agent_id":"a","x":[0,0,...]}."""
    head, tail = '{"agent_id":"a","x":[', "]}"
    n = max(0, (size - len(head) - len(tail)) // 2)
    return (head + ",".join(["0"] * n) + tail).encode()


def test_heartbeat_past_its_route_cap_gets_413_naming_the_key(db, collectors):
    """Before the cap, one 8 MiB heartbeat {"agent_id":"a","x":[0,0,...]} was
    parsed whole on the pool: 348 MB RSS for one, 1.42 GB for 4 at once. Now
    its route's cap (max_heartbeat_bytes, 64 KiB) refuses a 100 KB one
    unread."""
    c = collectors(db)
    key = db.create_key("ingest")
    r = c.post("/v1/agents/heartbeat", body=padded_beat(100_000), key=key,
               headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"].startswith("body: 9999"), r.text
    assert "max_heartbeat_bytes (65536)" in r.json()["error"], r.text
    assert db.scalar("SELECT count(*) FROM agents") == 0
    # A beat under the cap is still taken.
    r = c.post("/v1/agents/heartbeat", json={"agent_id": "small"}, key=key)
    assert r.status_code == 200, r.text


def test_route_cap_is_a_config_key_and_holds_for_chunked_bodies(db, collectors):
    """The cap comes from the route's key, max_heartbeat_bytes: a 3 KB beat
    passes 64 KiB but not 2K, whether its length is declared (refused before it is read) or it
    arrives chunked (refused once read, before it is parsed). A key without
    the route's role gets 403."""
    c = collectors(db, "--max-heartbeat-bytes", "2K")
    key, read = db.create_key("ingest"), db.create_key("read")
    big = padded_beat(3000)
    r = c.post("/v1/agents/heartbeat", body=big, key=key)
    assert r.status_code == 413 and "max_heartbeat_bytes (2048)" in r.json()["error"], r.text
    r = httpx.post(c.url + "/v1/agents/heartbeat", content=iter([big[:1500], big[1500:]]),
                   headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 413 and "max_heartbeat_bytes (2048)" in r.json()["error"], r.text
    r = c.post("/v1/agents/heartbeat", json={"agent_id": "small"}, key=read)
    assert r.status_code == 403 and "role read" in r.json()["error"], r.text
    assert db.scalar("SELECT count(*) FROM agents") == 0


def test_budget_put_past_max_small_body_bytes_gets_413_before_parsing(db, collectors):
    """Before the cap, an 8 MiB PUT /v1/budgets was parsed on the event loop:
    /healthz took 0.41-0.45 s per PUT (0.3 ms baseline). Now anything past
    max_small_body_bytes is refused with 413 naming it, and a normal budget
    is still stored."""
    c = collectors(db)
    admin = db.create_key("admin")
    pad = "x" * 100_000
    r = httpx.put(f"{c.url}/v1/budgets/big", content=('{"period":"day","limit_usd":"1",'
                                                      f'"webhook_secret":"{pad}"}}').encode(),
                  headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert r.status_code == 413, r.text
    assert "max_small_body_bytes (65536)" in r.json()["error"], r.text
    assert db.scalar("SELECT count(*) FROM budgets") == 0
    r = httpx.put(f"{c.url}/v1/budgets/ok", json={"period": "day", "limit_usd": "1"},
                  headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert r.status_code == 200, r.text


def test_open_routes_need_no_key_and_keyed_routes_check_the_role(db, collectors):
    """Roles are declared per route: health, readiness, metrics and the
    dashboard answer without a key; whoami takes any role; budgets' PUT only
    admin; a missing key gets 401 with WWW-Authenticate."""
    c = collectors(db)
    ingest = db.create_key("ingest")
    for path in ("/healthz", "/readyz", "/metrics", "/"):
        assert c.get(path).status_code == 200, path
    assert c.get("/v1/whoami", key=ingest).json()["role"] == "ingest"
    r = c.get("/v1/whoami")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", r.text
    r = httpx.put(f"{c.url}/v1/budgets/x", json={"period": "day", "limit_usd": "1"},
                  headers={"Authorization": f"Bearer {ingest}"}, timeout=30)
    assert r.status_code == 403 and "role ingest" in r.json()["error"], r.text
    r = c.get("/v1/rollups", key=ingest)
    assert r.status_code == 403, r.text
