"""Core ingest over the real binary: every ingest status code, exactly
once (resends, and one batch through two collectors at once), the gzip bomb,
VoiceGateway Python-sink compatibility, turns, and the CLI contract."""

import gzip
import http.client
import json
import os
import random
import threading
import time
import zlib
from decimal import Decimal

import httpx
import pytest

from conftest import (ROOT, PgCluster, Collector, Db, assert_names, fold_rollup, make_row, metrics_map,
                      run_vgc, wait_until)


def rows_json(n, **over):
    return [make_row(i, **over) for i in range(n)]


def gz(obj):
    return gzip.compress(json.dumps(obj).encode())


def assert_error_body(r):
    assert r.headers["content-type"].startswith("application/json"), r.text
    body = r.json()
    # Internal failures (5xx) also carry the request id the log line has.
    assert set(body) - {"request_id"} == {"error"} and body["error"], body
    return body["error"]


# ---- status codes ----------------------------------------------------------

def test_ingest_200_answer_shape_and_rows_committed(db, collector):
    key = db.create_key("ingest")
    rows = rows_json(3)
    r = collector.post("/v1/ingest", json=rows, key=key)
    assert r.status_code == 200
    assert r.json() == {"accepted": 3, "duplicates": 0, "rejected": 0, "errors": []}
    assert r.headers.get("x-request-id")
    assert db.scalar("SELECT count(*) FROM cost_rows") == 3


def test_ingest_empty_array_is_200_with_zeros(db, collector):
    key = db.create_key("ingest")
    r = collector.post("/v1/ingest", body=b"[]", key=key)
    assert r.status_code == 200
    assert r.json() == {"accepted": 0, "duplicates": 0, "rejected": 0, "errors": []}


@pytest.mark.parametrize("body,encoding,start,expect", [
    (b'{"id": "x"}', None, "body must be", "JSON array"),
    (b'[{"id": "x", "timestamp": 1', None, "body is not valid JSON: ", "truncated"),
    (b"[1, 2,, 3]", None, "body is not valid JSON: ", "byte"),
    (b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip", "gzip: ", "byte"),
    (gzip.compress(b'[{"id":"a"}]')[:-10], "gzip", "gzip: ", "truncated"),
])
def test_ingest_400_names_what_is_wrong(db, collector, body, encoding, start, expect):
    key = db.create_key("ingest")
    headers = {"Content-Encoding": encoding} if encoding else {}
    r = collector.post("/v1/ingest", body=body, key=key, headers=headers)
    assert r.status_code == 400
    msg = assert_error_body(r)
    assert msg.startswith(start) and expect in msg, msg


def test_ingest_401_missing_unknown_and_revoked(db, collector):
    r = collector.post("/v1/ingest", json=[])
    assert r.status_code == 401 and "missing" in assert_error_body(r)
    r = collector.post("/v1/ingest", json=[], key="vgk_not_a_real_key")
    assert r.status_code == 401 and "unknown or revoked" in assert_error_body(r)
    key = db.create_key("ingest")
    assert collector.post("/v1/ingest", json=[], key=key).status_code == 200
    prefix = key[:12]
    rv = run_vgc("keys", "revoke", prefix, "--db", db.conninfo)
    assert rv.returncode == 0, rv.stderr
    wait_until(lambda: collector.post("/v1/ingest", json=[], key=key).status_code == 401,
               1.0, "revoked key refused", interval=0.02)
    r = collector.post("/v1/ingest", json=[], key=key)
    assert r.status_code == 401 and "unknown or revoked" in assert_error_body(r)


def test_ingest_403_for_read_key(db, collector):
    key = db.create_key("read")
    r = collector.post("/v1/ingest", json=rows_json(1), key=key)
    assert r.status_code == 403 and "role read" in assert_error_body(r)
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0


def test_ingest_admin_key_may_ingest(db, collector):
    key = db.create_key("admin")
    assert collector.post("/v1/ingest", json=rows_json(1), key=key).status_code == 200


def test_ingest_413_compressed_body_over_cap(db, collectors):
    c = collectors(db, "--max-body-bytes", "2048")
    key = db.create_key("ingest")
    body = json.dumps(rows_json(20)).encode()
    assert len(body) > 2048
    r = c.post("/v1/ingest", body=body, key=key)
    assert r.status_code == 413
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0


def test_ingest_413_inflated_over_cap(db, collectors):
    c = collectors(db, "--max-inflated-bytes", "4096")
    key = db.create_key("ingest")
    body = gz(rows_json(40))
    assert len(body) < 4096
    r = c.post("/v1/ingest", body=body, key=key, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413 and "max_inflated_bytes" in assert_error_body(r)


def test_ingest_413_too_many_rows(db, collectors):
    c = collectors(db, "--max-batch-rows", "5")
    key = db.create_key("ingest")
    r = c.post("/v1/ingest", json=rows_json(6), key=key)
    assert r.status_code == 413 and "max_batch_rows" in assert_error_body(r)
    assert c.post("/v1/ingest", json=rows_json(5), key=key).status_code == 200


def test_ingest_415_unknown_content_encoding(db, collector):
    key = db.create_key("ingest")
    r = collector.post("/v1/ingest", body=b"[]", key=key, headers={"Content-Encoding": "br"})
    assert r.status_code == 415 and "br" in assert_error_body(r)


def test_ingest_429_with_retry_after(db, collectors):
    key = db.create_key("ingest")  # before start: no propagation poll spends a token
    c = collectors(db, "--rate-limit-rps", "0.5", "--rate-limit-burst", "2")
    codes = [c.post("/v1/ingest", json=[], key=key) for _ in range(4)]
    limited = [r for r in codes if r.status_code == 429]
    assert [r.status_code for r in codes[:2]] == [200, 200]
    assert limited, [r.status_code for r in codes]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert "rate limit" in assert_error_body(limited[0])
    other = db.create_key("ingest")
    assert c.post("/v1/ingest", json=[], key=other).status_code == 200


def test_ingest_503_when_postgres_unreachable_and_nothing_acked():
    cluster = PgCluster().start()
    try:
        d = Db(cluster, cluster.createdb()).migrate()
        key = d.create_key("ingest")
        c = Collector(d)
        assert c.post("/v1/ingest", json=rows_json(1), key=key).status_code == 200
        d.close()
        cluster.stop()
        r = c.post("/v1/ingest", json=rows_json(2), key=key, timeout=60)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert_error_body(r)
        assert c.stop() == 0
    finally:
        cluster.stop()


# ---- rows and rejects ------------------------------------------------------

def test_rejected_rows_are_dead_lettered_with_reason(db, collector):
    key = db.create_key("ingest")
    now = time.time()
    rows = [
        make_row(0),
        make_row(1, tenant_id="acme corp"),
        make_row(2, modality="video"),
        make_row(3, cost_usd=-1),
        make_row(4, timestamp=now - 401 * 86400),
        make_row(5, timestamp=now + 7200),
        make_row(6, id="x" * 129),
        make_row(7, turn_index=1.5),
    ]
    r = collector.post("/v1/ingest", json=rows, key=key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["rejected"] == 7
    errs = {e["index"]: e["error"] for e in body["errors"]}
    assert assert_names(errs[1], "tenant_id").startswith('tenant_id "acme corp": ')
    assert_names(errs[2], "modality")
    assert_names(errs[3], "cost_usd")
    assert "max_row_age_days" in assert_names(errs[4], "timestamp")
    assert "max_clock_skew_s" in assert_names(errs[5], "timestamp")
    assert_names(errs[6], "id")
    assert_names(errs[7], "turn_index")
    stored = db.query("SELECT row_index, reason, raw FROM ingest_rejects ORDER BY row_index")
    assert [s[0] for s in stored] == [1, 2, 3, 4, 5, 6, 7]
    assert json.loads(stored[0][2])["tenant_id"] == "acme corp"


def test_row_defaults_nulls_unknown_fields_and_metadata_tenant(db, collector):
    key = db.create_key("ingest")
    row = make_row(0, project=None, tenant_id=None, ttfb_ms=None, total_latency_ms=None,
                   status=None, turn_index=None, agent_id=None, extra_field={"x": 1},
                   metadata={"tenant": "from-meta", "k": [1, 2]})
    r = collector.post("/v1/ingest", json=[row], key=key)
    assert r.json()["accepted"] == 1, r.text
    (project, tenant, status, ttfb, meta), = db.query(
        "SELECT project, tenant_id, status, ttfb_ms, metadata FROM cost_rows")
    assert (project, tenant, status, ttfb) == ("default", "from-meta", "success", None)
    assert meta == {"tenant": "from-meta", "k": [1, 2]}


def test_money_is_stored_exactly(db, collector):
    key = db.create_key("ingest")
    rows = [make_row(0, cost_usd=0.00039, rated_price_usd=0.1),
            make_row(1, cost_usd=0.2, rated_price_usd=0.3)]
    collector.post("/v1/ingest", json=rows, key=key)
    assert db.scalar("SELECT sum(cost_usd) FROM cost_rows") == Decimal("0.20039")
    # The rated price is the rate card's (no rule: the cost x the default
    # markup 1), never the 0.1 + 0.3 the workers sent.
    assert db.scalar("SELECT sum(rated_price_usd) FROM cost_rows") == Decimal("0.20039")
    assert db.scalar("SELECT sum(cost_usd) FROM vgc_rollup_hourly_live") == Decimal("0.20039")


def test_late_row_gets_a_partition_on_demand(db, collector):
    key = db.create_key("ingest")
    old = time.time() - 200 * 86400
    r = collector.post("/v1/ingest", json=[make_row(0, timestamp=old)], key=key)
    assert r.json()["accepted"] == 1
    part = time.strftime("cost_rows_%Y%m", time.gmtime(old))
    assert db.scalar("SELECT count(*) FROM " + part) == 1


def test_project_and_tenant_scoped_keys(db, collector):
    pkey = db.create_key("ingest", project="voice")
    r = collector.post("/v1/ingest", json=[make_row(0, project=None),
                                            make_row(1, project="other")], key=pkey).json()
    assert r["accepted"] == 1 and r["rejected"] == 1
    assert 'may only write project "voice"' in r["errors"][0]["error"]
    tkey = db.create_key("ingest", tenant="acme")
    r = collector.post("/v1/ingest", json=[make_row(2, metadata={}),
                                            make_row(3, tenant_id="globex")], key=tkey).json()
    assert r["accepted"] == 1 and r["rejected"] == 1
    assert db.query("SELECT project, tenant_id FROM cost_rows ORDER BY turn_index") == \
        [("voice", "acme"), ("default", "acme")]


# ---- exactly once ----------------------------------------------------------

def rollup_matches_rows(db):
    """What a reader sees (the folded hours plus the waiting deltas) equals
    the rows; and after a fold, the hourly table alone does."""
    hours_match_rows(db, "vgc_rollup_hourly_live")
    fold_rollup(db)
    assert db.scalar("SELECT count(*) FROM vgc_rollup_deltas") == 0
    hours_match_rows(db, "cost_rollup_hourly")


def hours_match_rows(db, hours):
    agg = db.query("SELECT sum(requests), sum(errors), sum(fallbacks), sum(cost_usd),"
                   " sum(rated_price_usd), sum(input_units), sum(output_units),"
                   f" sum(cached_input_units) FROM {hours}")[0]
    raw = db.query("SELECT count(*), count(*) FILTER (WHERE status = 'error'),"
                   " count(*) FILTER (WHERE status = 'fallback'), sum(cost_usd),"
                   " sum(rated_price_usd), sum(input_units), sum(output_units),"
                   " sum(cached_input_units) FROM cost_rows")[0]
    assert tuple(agg) == tuple(raw), (agg, raw)
    groups = db.query(
        "SELECT count(*) FROM (SELECT date_trunc('hour', ts), project, agent_id, tenant_id,"
        " modality, provider, model_id, count(*) c, sum(cost_usd) s FROM cost_rows"
        " GROUP BY 1,2,3,4,5,6,7) r FULL JOIN (SELECT hour, project, agent_id, tenant_id,"
        " modality, provider, model_id, sum(requests) AS requests, sum(cost_usd) AS cost_usd"
        f" FROM {hours} GROUP BY 1,2,3,4,5,6,7) h ON"
        " h.hour = r.date_trunc AND h.project = r.project AND h.modality = r.modality AND"
        " h.agent_id IS NOT DISTINCT FROM r.agent_id AND h.tenant_id IS NOT DISTINCT FROM r.tenant_id"
        " AND h.provider IS NOT DISTINCT FROM r.provider AND h.model_id IS NOT DISTINCT FROM r.model_id"
        " WHERE h.requests IS DISTINCT FROM r.c OR h.cost_usd IS DISTINCT FROM r.s")
    assert groups[0][0] == 0, "a rollup group differs from the sums over cost_rows"


def varied_rows(n, prefix):
    out = []
    for i in range(n):
        out.append(make_row(i, id=f"{prefix}-{i}",
                            status=["success", "error", "fallback"][i % 3],
                            modality=["stt", "llm", "tts"][i % 3],
                            agent_id=None if i % 5 == 0 else f"agent-{i % 4}",
                            tenant_id=None, metadata={} if i % 7 == 0 else {"tenant": f"t{i % 3}"},
                            cost_usd=round(0.0001 * (i % 17 + 1), 6),
                            timestamp=time.time() - (i % 50) * 3600))
    return out


def test_same_batch_sent_twice_counts_once(db, collector):
    key = db.create_key("ingest")
    rows = varied_rows(300, "twice")
    first = collector.post("/v1/ingest", body=gz(rows), key=key,
                           headers={"Content-Encoding": "gzip"}).json()
    second = collector.post("/v1/ingest", json=rows, key=key).json()
    assert first["accepted"] == 300 and first["duplicates"] == 0
    assert second["accepted"] == 0 and second["duplicates"] == 300
    assert db.scalar("SELECT count(*) FROM cost_rows") == 300
    rollup_matches_rows(db)


def test_same_id_twice_in_one_batch_counts_once(db, collector):
    key = db.create_key("ingest")
    r = collector.post("/v1/ingest", json=[make_row(0, id="dup"), make_row(1, id="dup")],
                       key=key).json()
    assert r["accepted"] == 1 and r["duplicates"] == 1
    assert db.scalar("SELECT sum(requests) FROM vgc_rollup_hourly_live") == 1


def test_same_row_with_another_timestamp_is_still_a_duplicate(db, collector):
    key = db.create_key("ingest")
    collector.post("/v1/ingest", json=[make_row(0, id="moved")], key=key)
    r = collector.post("/v1/ingest", json=[make_row(0, id="moved",
                                                    timestamp=time.time() - 40 * 86400)],
                       key=key).json()
    assert r["duplicates"] == 1 and r["accepted"] == 0


def test_batch_of_new_and_stored_ids_stores_only_the_new_ones(db, collector):
    # A batch of new ids takes the plain claim; one holding stored ids fails
    # it and is stored by the ON CONFLICT claim instead, new rows only.
    key = db.create_key("ingest")
    first = varied_rows(100, "mixA")
    mixed = first[::2] + varied_rows(60, "mixB")
    random.Random(7).shuffle(mixed)
    r1 = collector.post("/v1/ingest", json=first, key=key).json()
    r2 = collector.post("/v1/ingest", json=mixed, key=key).json()
    r3 = collector.post("/v1/ingest", json=varied_rows(40, "mixC"), key=key).json()
    assert (r1["accepted"], r1["duplicates"]) == (100, 0)
    assert (r2["accepted"], r2["duplicates"]) == (60, 50)
    assert (r3["accepted"], r3["duplicates"]) == (40, 0)
    assert db.scalar("SELECT count(*) FROM cost_rows") == 200
    assert db.scalar("SELECT count(*) FROM cost_row_ids") == 200
    assert db.scalar("SELECT count(*) FROM cost_rows WHERE id LIKE 'mixB-%%'") == 60
    m = metrics_map(collector.get("/metrics").text)
    assert m['vgcollector_ingest_claims_total{path="fresh"}'] == 2, m
    assert m['vgcollector_ingest_claims_total{path="resend"}'] == 1, m
    rollup_matches_rows(db)


def test_same_batches_through_two_collectors_at_once(db, collectors):
    a, b = collectors(db), collectors(db)
    key = db.create_key("ingest")
    batches = [varied_rows(200, f"conc{j}") for j in range(12)]
    results = {"a": [], "b": []}

    def push(c, name):
        with httpx.Client(timeout=60) as client:
            for batch in batches:
                r = client.post(c.url + "/v1/ingest", content=gz(batch),
                                headers={"Authorization": f"Bearer {key}",
                                         "Content-Encoding": "gzip"})
                assert r.status_code == 200, r.text
                results[name].append(r.json())

    threads = [threading.Thread(target=push, args=(a, "a")),
               threading.Thread(target=push, args=(b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = sum(r["accepted"] for r in results["a"] + results["b"])
    dups = sum(r["duplicates"] for r in results["a"] + results["b"])
    assert accepted == 2400 and dups == 2400
    assert db.scalar("SELECT count(*) FROM cost_rows") == 2400
    assert db.scalar("SELECT count(*) FROM cost_row_ids") == 2400
    rollup_matches_rows(db)


# ---- gzip bomb -------------------------------------------------------------

def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_gzip_bomb_is_413_and_rss_stays_under_100_mib(db, collector):
    key = db.create_key("ingest")
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    parts = [comp.compress(chunk) for _ in range(1024)]  # 1 GiB of zeros
    body = b"".join(parts) + comp.flush()
    assert len(body) < 8 << 20
    r = collector.post("/v1/ingest", body=body, key=key, headers={"Content-Encoding": "gzip"},
                       timeout=120)
    assert r.status_code == 413 and "max_inflated_bytes" in assert_error_body(r)
    if "san" not in os.environ.get("VGC_BUILD", ""):  # ASan's shadow memory inflates RSS
        assert peak_rss_kib(collector.proc.pid) < 100 * 1024
    assert collector.post("/v1/ingest", json=rows_json(1), key=key).status_code == 200


# ---- compatibility ---------------------------------------------------------

def test_python_remote_collector_sink_unchanged(db, collector):
    """VoiceGateway's RemoteCollectorSink: httpx post(json=[asdict(record)]) with a bearer key."""
    key = db.create_key("ingest")
    records = [make_row(i, metadata={"tenant": "acme", "call": "c1"}) for i in range(4)]
    with httpx.Client(timeout=10) as client:
        r = client.post(f"{collector.url}/v1/ingest", json=records,
                        headers={"Authorization": f"Bearer {key}"})
        r.raise_for_status()
        t = client.post(f"{collector.url}/v1/ingest/turns",
                        json=[{"session_id": "s1", "turn_index": 0, "text": "hi"}],
                        headers={"Authorization": f"Bearer {key}"})
        t.raise_for_status()
    assert r.json()["accepted"] == 4
    assert db.scalar("SELECT count(*) FROM cost_rows WHERE tenant_id = 'acme'") == 4
    assert db.query("SELECT payload->>'text' FROM ingest_turns") == [("hi",)]


def test_turns_never_fail_on_odd_elements(db, collector):
    key = db.create_key("ingest", project="p1", tenant="acme")
    r = collector.post("/v1/ingest/turns", json=[{"a": 1}, 7, "x", {"b": "\u00e9"}], key=key)
    assert r.status_code == 200
    assert r.json()["accepted"] == 2 and r.json()["rejected"] == 2
    assert db.query("SELECT project, tenant_id FROM ingest_turns") == [("p1", "acme")] * 2


def test_turns_with_a_nul_escape_are_refused_not_truncated(db, collector):
    # cJSON stops a string at the NUL, and jsonb cannot hold one: storing
    # {"text": "x"} for "x\u0000y" would be silent loss. An escaped backslash
    # before u0000 is ordinary text and is kept.
    key = db.create_key("ingest")
    body = b'[{"text":"x\\u0000y"},{"text":"ok"},{"text":"C:\\\\u0000"}]'
    r = collector.post("/v1/ingest/turns", body=body, key=key,
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["accepted"] == 2 and out["rejected"] == 1
    assert out["errors"][0]["index"] == 0 and "\\u0000" in out["errors"][0]["error"]
    assert sorted(t for (t,) in db.query("SELECT payload->>'text' FROM ingest_turns")) == \
        ["C:\\u0000", "ok"]


# ---- CLI -------------------------------------------------------------------

def test_cli_help_for_every_command():
    for args in (["--help"], ["serve", "--help"], ["migrate", "--help"], ["keys", "--help"]):
        r = run_vgc(*args)
        assert r.returncode == 0 and "usage" in r.stdout.lower(), args
    r = run_vgc("frobnicate")
    assert r.returncode != 0 and "unknown command" in r.stderr


def test_cli_keys_create_list_revoke(db):
    r = run_vgc("keys", "create", "--role", "read", "--tenant", "acme", "--name", "finance",
                "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    key = r.stdout.splitlines()[0]
    assert key.startswith("vgk_") and len(key) >= 4 + 22 and " " not in key
    listing = run_vgc("keys", "list", "--db", db.conninfo).stdout
    assert key[:12] in listing and key not in listing and "finance" in listing
    stored = db.query("SELECT encode(digest, 'hex'), prefix FROM api_keys")[0]
    assert key not in stored
    key_id = db.scalar("SELECT id FROM api_keys")
    assert run_vgc("keys", "revoke", str(key_id), "--db", db.conninfo).returncode == 0
    again = run_vgc("keys", "revoke", key, "--db", db.conninfo)
    assert again.returncode != 0 and "no live key" in again.stderr
    bad = run_vgc("keys", "create", "--role", "root", "--db", db.conninfo)
    assert bad.returncode != 0 and "ingest, read or admin" in bad.stderr
    bad = run_vgc("keys", "create", "--role", "ingest", "--tenant", "acme corp", "--db", db.conninfo)
    assert bad.returncode != 0 and "acme corp" in bad.stderr


def test_cli_db_flag_beats_environment(db):
    r = run_vgc("keys", "list", "--db", db.conninfo, env={"VGC_DB": "host=/nonexistent dbname=x"})
    assert r.returncode == 0, r.stderr
    r = run_vgc("keys", "list", env={"VGC_DB": db.conninfo})
    assert r.returncode == 0, r.stderr


def test_migrate_is_idempotent_and_safe_concurrently(pg):
    name = pg.createdb()
    conninfo = pg.conninfo(name)
    import subprocess
    from conftest import VGC, sanitizer_env
    procs = [subprocess.Popen([VGC, "migrate", "--db", conninfo], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=sanitizer_env()) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    d = Db(pg, name)
    migrations = len([f for f in os.listdir(os.path.join(ROOT, "schema")) if f.endswith(".sql")])
    assert d.scalar("SELECT count(*) FROM schema_migrations") == migrations  # each once
    assert run_vgc("migrate", "--db", conninfo).returncode == 0
    d.close()


def test_serve_refuses_older_schema_naming_the_migration(db):
    last = db.scalar("SELECT max(version) FROM schema_migrations")
    db.query("DELETE FROM schema_migrations WHERE version = %s", last)
    r = run_vgc("serve", "--listen", "127.0.0.1:1", "--db", db.conninfo, timeout=30)
    assert r.returncode != 0
    assert last in r.stderr and "vgcollector migrate" in r.stderr


@pytest.mark.parametrize("pool_size", ["1", "2"])
def test_keepalive_batches_queued_behind_a_small_pool_all_answered(db, collectors, pool_size):
    """Regression: with more kept-alive connections than pool workers, the
    second request on each connection was never read (a bufferevent filter
    stranded it). Every batch on every connection must be answered."""
    c = collectors(db, "--pool-size", pool_size, "--rate-limit-rps", "0")
    key = db.create_key("ingest")
    conns, per_conn, rows = 4, 5, 200
    failures = []

    def worker(w):
        conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=20)
        try:
            for b in range(per_conn):
                batch = [make_row((w * per_conn + b) * rows + i) for i in range(rows)]
                body = gzip.compress(json.dumps(batch).encode())

                def answered():
                    conn.request("POST", "/v1/ingest", body=body,
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Encoding": "gzip"})
                    resp = conn.getresponse()
                    resp.read()
                    return resp if resp.status != 503 else None

                # A full queue may answer 503; retried, but not for ever.
                resp = wait_until(answered, 60, f"batch {b} on connection {w} answered other than 503",
                                  interval=0.01)
                if resp.status != 200:
                    failures.append(resp.status)
        except Exception as e:  # a hang shows up as a timeout here
            failures.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert db.scalar("SELECT count(*) FROM cost_rows") == conns * per_conn * rows
