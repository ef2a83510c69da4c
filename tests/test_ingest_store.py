"""The ingest store under faults, over the real binaries: retention must not let
a resent row count twice, one row the database cannot store is rejected on
its own, a passing database condition is 503 + Retry-After, one
rounding rule for a row's time, and concurrent first writers of a month
never fail. The ledger invariant runs after each test (conftest)."""

import calendar
import json
import random
import threading
import time
from decimal import Decimal


from conftest import make_row, run_vgc, free_port



def four_byte_chars(n, seed):
    """n different-looking 4-byte UTF-8 characters (CJK Extension B), random
    so that PostgreSQL cannot compress the index entry below its limit."""
    rnd = random.Random(seed)
    return "".join(chr(rnd.randrange(0x20000, 0x2A6E0)) for _ in range(n))


def month_start(months_from_now):
    """Epoch seconds of 00:00 UTC on the first day of a month relative to now."""
    t = time.gmtime()
    m = t.tm_year * 12 + (t.tm_mon - 1) + months_from_now
    return calendar.timegm((m // 12, m % 12 + 1, 1, 0, 0, 0))


def partition_of(ts):
    t = time.gmtime(ts)
    return f"cost_rows_{t.tm_year:04d}{t.tm_mon:02d}"


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def ingest(c, key, rows):
    return c.post("/v1/ingest", body=json.dumps(rows).encode(), key=key,
                  headers={"Content-Type": "application/json"})


# ---- 1: retention and resent rows ------------------------------------------

def test_resent_row_of_a_month_retention_dropped_is_refused_and_its_rollup_kept(db, collector):
    key, read = db.create_key("ingest"), db.create_key("read")
    lo, hi = month_start(-3), month_start(-2)  # wholly older than 2 months
    row = make_row(0, id="march-like-1", timestamp=lo + 14 * 86400 + 3600, cost_usd=5,
                   rated_price_usd=5)
    assert ingest(collector, key, [row]).json()["accepted"] == 1
    assert ingest(collector, key, [row]).json()["duplicates"] == 1

    # The config rule needs max_row_age_days <= 2 * 28 for this run.
    r = run_vgc("retention", "--db", db.conninfo, "--retention-months", "2",
                env={"VGC_MAX_ROW_AGE_DAYS": "56"})
    assert r.returncode == 0, r.stderr
    assert f"dropped {partition_of(lo)}" in r.stdout, r.stdout

    fresh = make_row(1, id="fresh-1", cost_usd=1)
    r = ingest(collector, key, [row, fresh])
    assert r.status_code == 200, r.text
    body = r.json()
    day = time.strftime("%Y-%m-%d", time.gmtime(hi))
    assert body["accepted"] == 1 and body["rejected"] == 1 and body["duplicates"] == 0, body
    assert body["errors"] == [{"index": 0, "error": "row older than the retained window: months"
                               f" before {day} were dropped by retention"}], body
    assert db.scalar("SELECT count(*) FROM ingest_rejects WHERE reason LIKE 'row older than"
                     " the retained window%%' AND raw LIKE '%%march-like-1%%'") == 1
    assert db.scalar("SELECT count(*) FROM cost_rows WHERE id = 'fresh-1'") == 1
    assert db.scalar("SELECT dropped_before FROM vgc_retention").timestamp() == hi

    # The dropped month's rollup is kept as history, still one row costing 5.
    body = collector.get("/v1/rollups", key=read,
                         params={"from": iso(lo), "to": iso(hi), "granularity": "total"}).json()
    assert body["totals"]["requests"] == 1, body
    assert Decimal(body["totals"]["cost_usd"]) == 5, body


def test_config_refuses_retention_shorter_than_max_row_age(db):
    r = run_vgc("retention", "--dry-run", "--db", db.conninfo, "--retention-months", "2")
    assert r.returncode == 2
    assert "retention_months = 2" in r.stderr and "max_row_age_days = 400" in r.stderr, r.stderr
    r = run_vgc("serve", "--db", db.conninfo, "--listen", f"127.0.0.1:{free_port()}",
                "--retention-months", "2", timeout=30)
    assert r.returncode != 0
    assert "retention_months = 2" in r.stderr and "max_row_age_days = 400" in r.stderr, r.stderr
    r = run_vgc("retention", "--dry-run", "--db", db.conninfo, "--retention-months", "2",
                "--max-row-age-days", "56")
    assert r.returncode == 0, r.stderr


def test_config_refuses_byte_limits_the_rollup_index_cannot_hold(db):
    r = run_vgc("serve", "--db", db.conninfo, "--listen", f"127.0.0.1:{free_port()}",
                "--max-model-id-bytes", "1000", timeout=30)
    assert r.returncode != 0
    assert "max_model_id_bytes (1000)" in r.stderr and "2704" in r.stderr, r.stderr


# ---- 2: a row the database cannot store -------------------------------------

def test_row_too_big_for_the_rollup_index_is_rejected_alone_and_99_are_stored(db, collector):
    key = db.create_key("ingest")
    rows = [make_row(i) for i in range(99)]
    big = make_row(99, agent_id=four_byte_chars(256, 1), provider=four_byte_chars(256, 2),
                   model_id=four_byte_chars(256, 3), project="p" * 128)
    rows.insert(40, big)
    r = ingest(collector, key, rows)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (99, 1), body
    [err] = body["errors"]
    assert err["index"] == 40
    assert err["error"].startswith(("model_id: 1024 bytes", "provider: 1024 bytes",
                                    "agent_id: 1024 bytes")), err
    assert db.scalar("SELECT count(*) FROM cost_rows") == 99
    assert db.scalar("SELECT count(*) FROM ingest_rejects WHERE row_index = 40") == 1
    # The largest key the default limits allow fits the index, incompressible.
    widest = make_row(0, agent_id=four_byte_chars(160, 4), provider=four_byte_chars(160, 5),
                      model_id=four_byte_chars(160, 6), project=four_byte_chars(128, 7),
                      tenant_id="t" * 128, modality="stt")
    body = ingest(collector, key, [widest]).json()
    assert body["accepted"] == 1, body


def test_row_the_database_refuses_is_isolated_and_the_others_stored_once(db, collector):
    """No row that passes our validation is refused by the schema as shipped
    (that is the point of validating first), so this test adds a real CHECK
    constraint the database enforces: the same SQLSTATE class 23 path a
    schema rule we did not foresee would take."""
    key = db.create_key("ingest")
    db.query("ALTER TABLE cost_rows ADD CONSTRAINT test_cost_cap CHECK (cost_usd < 1000)")
    try:
        rows = [make_row(i, cost_usd=1) for i in range(10)]
        rows[3]["cost_usd"] = 5000
        rows[7]["cost_usd"] = 7000
        r = ingest(collector, key, rows)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["accepted"], body["rejected"], body["duplicates"]) == (8, 2, 0), body
        assert [e["index"] for e in body["errors"]] == [3, 7]
        for e in body["errors"]:
            assert "refused by the database (SQLSTATE 23514)" in e["error"], e
        assert "test_cost_cap" not in r.text
        assert db.scalar("SELECT count(*) FROM cost_rows") == 8
        assert db.scalar("SELECT sum(requests) FROM vgc_rollup_hourly_live") == 8
        assert db.scalar("SELECT count(*) FROM ingest_rejects WHERE reason LIKE"
                         " '%%SQLSTATE 23514%%'") == 2
        # The good rows were counted once: a resend is all duplicates.
        body = ingest(collector, key, rows).json()
        assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 8, 2), body
    finally:
        db.query("ALTER TABLE cost_rows DROP CONSTRAINT IF EXISTS test_cost_cap")


# ---- 3: a passing database condition -----------------------------------------

def terminate_collector_backends(db):
    db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
             " WHERE datname = current_database() AND pid <> pg_backend_pid()"
             " AND application_name = 'vgcollector'")


def test_read_only_database_gets_503_with_retry_after_then_the_batch_is_stored(db, collectors):
    c = collectors(db, "--pool-size", "2")
    key = db.create_key("ingest")
    assert ingest(c, key, [make_row(0)]).status_code == 200  # workers connected
    rows = [make_row(i) for i in range(10)]
    try:
        db.query(f"ALTER DATABASE {db.name} SET default_transaction_read_only = on")
        terminate_collector_backends(db)  # workers reconnect, read-only from then on
        for _ in range(6):
            r = ingest(c, key, rows)
            assert r.status_code == 503, (r.status_code, r.text)
            assert r.headers.get("retry-after") == "1"
            body = r.json()
            assert "request id" in body["error"] and body["request_id"], body
            for word in ("read-only", "transaction", "SQLSTATE", "server", "socket", "cost_"):
                assert word not in r.text, r.text
        r = c.post("/v1/ingest/turns", body=b'[{"turn": 1}]', key=key)
        assert r.status_code == 503 and r.headers.get("retry-after") == "1", r.text
        assert "read-only" not in r.text and "request id" in r.text, r.text
    finally:
        db.query(f"ALTER DATABASE {db.name} RESET default_transaction_read_only")
    assert db.scalar("SELECT count(*) FROM cost_rows") == 1
    terminate_collector_backends(db)
    # Each worker notices its connection was closed on its next job (503),
    # then reconnects: pool size + 1 attempts are enough.
    statuses = []
    for _ in range(3):
        r = ingest(c, key, rows)
        statuses.append(r.status_code)
        if r.status_code == 200:
            break
        assert r.status_code == 503, r.text
    assert statuses[-1] == 200, statuses
    assert r.json()["accepted"] == 10
    assert db.scalar("SELECT count(*) FROM cost_rows") == 11


# ---- 7: one rounding rule -----------------------------------------------------

def test_timestamp_a_rounding_step_before_a_month_boundary_is_stored_at_the_boundary(
        db, collector):
    key = db.create_key("ingest")
    boundary = month_start(-1)  # past, inside max_row_age_days; its month has no partition
    name = partition_of(boundary)
    assert not db.scalar("SELECT to_regclass(%s) IS NOT NULL", name)
    ts = boundary - 0.0000002
    assert ts < boundary
    r = ingest(collector, key, [make_row(0, id="edge", timestamp=ts)])
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    got, part = db.query("SELECT extract(epoch FROM ts), tableoid::regclass::text"
                         " FROM cost_rows WHERE id = 'edge'")[0]
    assert got == boundary and part == name, (got, part)


# ---- 8: concurrent first writers of a month -----------------------------------

def test_concurrent_batches_creating_new_months_never_fail(db, collectors):
    rounds, clients, months_per_batch = 50, 4, 4
    c = collectors(db, "--max-row-age-days", "7000", "--pool-size", "4")
    key = db.create_key("ingest")
    statuses, errors = [], []
    lock = threading.Lock()

    def batch(rnd, client):
        rows = []
        for k in range(months_per_batch):
            t = month_start(-2 - rnd * months_per_batch - k) + 86400 * (1 + client)
            rows += [make_row(j, id=f"r{rnd}-c{client}-m{k}-{j}", timestamp=t + j)
                     for j in range(3)]
        return rows

    for rnd in range(rounds):
        barrier = threading.Barrier(clients)

        def send(client, rnd=rnd, barrier=barrier):
            rows = batch(rnd, client)
            barrier.wait(timeout=30)
            r = ingest(c, key, rows)
            with lock:
                statuses.append(r.status_code)
                if r.status_code != 200:
                    errors.append(r.text)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive()
    assert len(statuses) == rounds * clients
    assert statuses.count(200) == len(statuses), (len(errors), errors[:3])
    assert db.scalar("SELECT count(*) FROM cost_rows") == rounds * clients * months_per_batch * 3
