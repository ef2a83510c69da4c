"""Issue 13, the ingest half: the store keeps no session state, so it works
through pgbouncer in pool_mode = transaction (issue 14's constraint), and
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
    if not os.path.exists(PGBOUNCER):
        pytest.skip("pgbouncer is not installed (deploy/install-deps.sh)")
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
    assert db.scalar("SELECT sum(requests) FROM cost_rollup_hourly") == 24 * 50
