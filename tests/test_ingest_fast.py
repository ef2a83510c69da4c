"""Fast ingest without session state: the store keeps none, so it works
through pgbouncer in pool_mode = transaction (what scaling out needs), and
exactly-once still holds there. The ledger invariant runs after each test."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import uuid

import pytest

from conftest import as_postgres, free_port, make_row, wait_until

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


class Bouncer:
    """pgbouncer 1.18 in front of the test cluster, transaction pooling, with
    fewer server connections than the collector has workers, so consecutive
    transactions of one worker land on different backends."""

    def __init__(self, db, pool_size=2):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="vgc-bouncer-")
        os.chmod(self.dir, 0o777)
        ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(ini, "w") as f:
            f.write(f"[databases]\n{db.name} = host={db.cluster.sock} dbname={db.name}"
                    f" user={db.cluster.user}\n"
                    f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
                    f"unix_socket_dir =\nauth_type = any\npool_mode = transaction\n"
                    f"default_pool_size = {pool_size}\nmax_client_conn = 100\n"
                    f"server_reset_query =\nlogfile = {self.dir}/pgbouncer.log\n"
                    f"pidfile = {self.dir}/pgbouncer.pid\n")
        self.proc = subprocess.Popen(as_postgres([PGBOUNCER, ini]), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.conninfo = f"host=127.0.0.1 port={self.port} dbname={db.name} user={db.cluster.user}"
        wait_until(lambda: os.path.exists(f"{self.dir}/pgbouncer.pid"), 10, "pgbouncer started")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def bouncer(db):
    assert os.path.exists(PGBOUNCER), "pgbouncer is not installed: run deploy/install-deps.sh"
    b = Bouncer(db)
    yield b
    b.stop()


def ingest(c, key, rows):
    return c.post("/v1/ingest", body=json.dumps(rows).encode(), key=key,
                  headers={"Content-Type": "application/json"}, timeout=60)


def test_ingest_through_pgbouncer_transaction_pooling_stores_each_row_once(db, bouncer,
                                                                          collectors):
    key = db.create_key("ingest")
    # Four workers over two server connections: a worker's next transaction
    # often runs on the backend another worker used last.
    c = collectors(None, "--db", bouncer.conninfo, "--pool-size", "4")
    c.db = db
    db.collectors.append(c)
    batches = [[make_row(i, id=str(uuid.uuid4())) for i in range(50)] for _ in range(24)]
    results, lock = [], threading.Lock()

    def send(mine):
        for rows in mine:
            for _ in range(2):  # each batch twice: the second is all duplicates
                r = ingest(c, key, rows)
                with lock:
                    results.append((r.status_code, r.text))

    threads = [threading.Thread(target=send, args=(batches[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    bad = [r for r in results if r[0] != 200]
    assert not bad, bad[:3]
    bodies = [json.loads(t) for _, t in results]
    assert sum(b["accepted"] for b in bodies) == 24 * 50
    assert sum(b["duplicates"] for b in bodies) == 24 * 50
    assert db.scalar("SELECT count(*) FROM cost_rows") == 24 * 50
    assert db.scalar("SELECT sum(requests) FROM vgc_rollup_hourly_live") == 24 * 50


# ---- migration 0003 on a database holding rows -------------------------------

SCHEMA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schema")


def migrate_to_0002(db):
    """The schema as a 0.2 collector left it: 0001 and 0002 applied, as
    `vgcollector migrate` records them."""
    db.query("CREATE TABLE schema_migrations (version text PRIMARY KEY,"
             " applied_at timestamptz NOT NULL DEFAULT now())")
    for name in ("0001_init", "0002_ledger_faults"):
        with open(os.path.join(SCHEMA, name + ".sql")) as f, db.conn.cursor() as cur:
            cur.execute(f.read())
        db.query("INSERT INTO schema_migrations (version) VALUES (%s)", name)


def store_as_0002_did(db, rows):
    """Stores rows as the 0002 collector's ingest transaction did: the claim,
    the row, and the hourly rollup from exactly those rows."""
    for r in rows:
        db.query("SELECT vgc_ensure_partition(to_timestamp(%s))", r["timestamp"])
        db.query("INSERT INTO cost_row_ids (id, ts) VALUES (%s, to_timestamp(%s))",
                 r["id"], r["timestamp"])
        db.query("INSERT INTO cost_rows (id, ts, modality, model_id, provider, project,"
                 " input_units, output_units, cost_usd, rated_price_usd, status, agent_id,"
                 " tenant_id, key_id) VALUES (%s, to_timestamp(%s), %s, %s, %s, %s, %s, %s,"
                 " %s::numeric, %s::numeric, %s, %s, %s, 1)",
                 r["id"], r["timestamp"], r["modality"], r["model_id"], r["provider"],
                 r["project"], r["input_units"], r["output_units"], str(r["cost_usd"]),
                 str(r["rated_price_usd"]), r["status"], r["agent_id"], r["tenant_id"])
    db.query("INSERT INTO cost_rollup_hourly (hour, project, agent_id, tenant_id, modality,"
             " provider, model_id, requests, errors, fallbacks, cost_usd, rated_price_usd,"
             " input_units, output_units, cached_input_units)"
             " SELECT date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', project,"
             " agent_id, tenant_id, modality, provider, model_id, count(*),"
             " count(*) FILTER (WHERE status = 'error'),"
             " count(*) FILTER (WHERE status = 'fallback'), sum(cost_usd),"
             " sum(rated_price_usd), sum(input_units), sum(output_units),"
             " sum(cached_input_units) FROM cost_rows GROUP BY 1, 2, 3, 4, 5, 6, 7")


SNAPSHOT_TABLES = ("cost_rows", "cost_row_ids", "cost_rollup_hourly")


def table_columns(db):
    """Each snapshot table's columns now (later migrations add columns)."""
    return {t: [r[0] for r in db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema ="
        " current_schema() AND table_name = %s ORDER BY ordinal_position", t)]
        for t in SNAPSHOT_TABLES}


def snapshot(db, columns):
    """Every row, id claim and rollup group, as text of the given columns, in a
    fixed order."""
    out = []
    for t in SNAPSHOT_TABLES:
        cols = ", ".join(columns[t])
        out.append(db.query(f"SELECT ROW({cols})::text AS r FROM {t} ORDER BY r"))
    return tuple(out)


def test_migration_0003_keeps_every_row_claim_and_rollup_and_old_ids_stay_duplicates(
        pg, collectors):
    import time

    from conftest import Db, assert_ledger_consistent, run_vgc

    db = Db(pg, pg.createdb())
    migrate_to_0002(db)
    now = time.time()
    ids = [str(uuid.uuid4()) for _ in range(30)] + ["Zed", "alpha", "Alpha", "é-row", "b"]
    rows = [make_row(i, id=rid, timestamp=now - (i % 7) * 86400 - i, cost_usd=0.001 * (i + 1),
                     tenant_id=f"t{i % 3}" if i % 4 else None,
                     status="error" if i % 5 == 0 else "success")
            for i, rid in enumerate(ids)]
    store_as_0002_did(db, rows)
    assert_ledger_consistent(db)
    columns = table_columns(db)
    before = snapshot(db, columns)

    r = run_vgc("migrate", "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    assert db.scalar("SELECT count(*) FROM schema_migrations WHERE version ="
                     " '0003_ingest_fast'") == 1
    assert snapshot(db, columns) == before
    for table in ("cost_row_ids", "cost_rows"):
        assert db.scalar("SELECT collation_name FROM information_schema.columns"
                         " WHERE table_name = %s AND column_name = 'id'", table) == "C"
    assert db.scalar("SELECT reloptions FROM pg_class WHERE relname ="
                     " 'cost_rollup_hourly'") == ["fillfactor=50"]

    # Ingest after the upgrade: every old id is a duplicate, new ids are stored.
    key = db.create_key("ingest")
    c = collectors(db)
    fresh = [make_row(100 + i, id=str(uuid.uuid4())) for i in range(5)]
    body = ingest(c, key, rows + fresh).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (5, len(rows), 0), body
    assert db.scalar("SELECT count(*) FROM cost_rows") == len(rows) + 5
    assert_ledger_consistent(db)
    db.close()
