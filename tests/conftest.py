"""Shared fixtures for the integration suite: a throwaway PostgreSQL cluster
(initdb into a temp dir, unix socket only, pg_ctl -w, as pgbouncer's tests do),
a fresh migrated database per test, and real collector processes."""

import json
import os
import pwd
import re
import shutil
import signal
import signal as _signal
import socket
import subprocess
import tempfile
import time
import uuid

import httpx
import psycopg2
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("VGC_BUILD", "build"))
VGC = os.path.join(BUILD, "vgcollector")
PG_BIN = os.environ.get("VGC_PG_BIN", "/usr/lib/postgresql/15/bin")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
# Per-test limit (setup, call and teardown together): a hang fails that one test
# instead of the CI run. Generous, because the ASan build is slow.
TEST_TIMEOUT_S = int(os.environ.get("VGC_TEST_TIMEOUT", "600"))


def wait_until(cond, timeout, what, interval=0.05):
    """Calls cond() until it returns something true and returns that; fails
    naming what was awaited once timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {got!r})")
        time.sleep(interval)


def sanitizer_env():
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:exitcode=66"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def as_postgres(cmd):
    """Runs cmd as the postgres user when we are root (initdb refuses root)."""
    if os.getuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def assert_names(msg, name):
    """msg is an error that starts by naming what it is about, as the
    collector's do: `name: ...`, `name "value": ...` or `name 12.5: ...`."""
    assert re.match(re.escape(name) + r'( "[^"]*"| [^ :"]+)?: ', msg), \
        f"error does not start with {name}: {msg!r}"
    return msg


class PgCluster:
    """A private PostgreSQL 15 cluster on a unix socket in a temp dir."""

    def __init__(self, fsync=False):
        self.dir = tempfile.mkdtemp(prefix="vgc-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir
        self.fsync = fsync
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o755)
        self.user = "postgres" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name

    def start(self):
        subprocess.run(as_postgres([f"{PG_BIN}/initdb", "-D", self.data, "-A", "trust",
                                    "-U", self.user, "--no-sync", "-E", "UTF8",
                                    "--locale=C"]),
                       check=True, stdout=subprocess.DEVNULL)
        opts = (f"-k {self.sock} -c listen_addresses='' -c max_connections=300 "
                f"-c fsync={'on' if self.fsync else 'off'} "
                f"-c synchronous_commit={'on' if self.fsync else 'off'} "
                f"-c shared_buffers=256MB -c max_wal_size=4GB")
        subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-w", "-D", self.data, "-o", opts,
                                    "-l", os.path.join(self.dir, "pg.log"), "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        return self

    def stop(self):
        subprocess.run(as_postgres([f"{PG_BIN}/pg_ctl", "-w", "-D", self.data, "-m", "immediate",
                                    "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, dbname="postgres"):
        return f"host={self.sock} dbname={dbname} user={self.user}"

    def connect(self, dbname="postgres"):
        conn = psycopg2.connect(self.conninfo(dbname))
        conn.autocommit = True
        return conn

    def createdb(self):
        name = "t_" + uuid.uuid4().hex[:12]
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name}")
        finally:
            conn.close()
        return name


class Db:
    """One migrated database: conninfo, SQL helpers and key creation via the CLI."""

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.conninfo = cluster.conninfo(name)
        self._conn = None
        self.collectors = []  # running collectors on this database (for key propagation)

    def migrate(self):
        r = run_vgc("migrate", "--db", self.conninfo)
        assert r.returncode == 0, r.stderr
        return self

    @property
    def conn(self):
        if self._conn is None or self._conn.closed:
            self._conn = self.cluster.connect(self.name)
        return self._conn

    def query(self, sql, *args):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None

    def scalar(self, sql, *args):
        return self.query(sql, *args)[0][0]

    def first(self, sql, *args):
        """The first column of the first row, or None when there is no row
        yet (a wait_until condition on a row still to come)."""
        rows = self.query(sql, *args)
        return rows[0][0] if rows else None

    def create_key(self, role="ingest", project=None, tenant=None, name=None):
        args = ["keys", "create", "--role", role, "--db", self.conninfo]
        if project:
            args += ["--project", project]
        if tenant:
            args += ["--tenant", tenant]
        if name:
            args += ["--name", name]
        r = run_vgc(*args)
        assert r.returncode == 0, r.stderr
        key = r.stdout.splitlines()[0].strip()
        for c in self.collectors:
            if c.proc.poll() is None:
                c.wait_key(key)
        return key

    def close(self):
        if self._conn is not None:
            self._conn.close()


def run_vgc(*args, env=None, timeout=60, input=None):
    e = sanitizer_env()
    if env:
        e.update(env)
    return subprocess.run([VGC, *args], capture_output=True, text=True, env=e,
                          timeout=timeout, input=input)


# Ports handed to tests come from below the kernel's ephemeral range
# (ip_local_port_range starts at 32768), so no outgoing connection can be
# holding one by the time a test binds it, and none is handed out twice in
# one run: binding to port 0 once per call could return the same port again
# as soon as the probe socket closed.
# tests/run.py runs the two builds' suites side by side and gives each its own
# half through VGC_PORT_RANGE ("LO-HI", HI excluded), so they never race for a port.
FREE_PORT_RANGE = range(*(int(p) for p in os.environ.get("VGC_PORT_RANGE", "20000-32768").split("-")))
_ports_handed_out = set()
_next_port = [FREE_PORT_RANGE.start + (os.getpid() * 97) % len(FREE_PORT_RANGE)]


def free_port():
    for _ in range(len(FREE_PORT_RANGE)):
        port = _next_port[0]
        _next_port[0] = port + 1 if port + 1 < FREE_PORT_RANGE.stop else FREE_PORT_RANGE.start
        if port in _ports_handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_handed_out.add(port)
        return port
    raise RuntimeError(f"no free port left in {FREE_PORT_RANGE}")


def metrics_map(text):
    """Prometheus text -> {"name{labels}": value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def make_certs(d):
    """A test CA in d, and certificates it signed: good (localhost, 127.0.0.1)
    and wrong (wrong.example). Returns their paths by file name."""
    def run(*a):
        subprocess.run(a, check=True, capture_output=True, cwd=d)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=vgsink test CA", "-keyout", "ca.key", "-out", "ca.pem")
    for name, san in (("good", "DNS:localhost,IP:127.0.0.1"), ("wrong", "DNS:wrong.example")):
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={san}\n")
        run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    return {n: os.path.join(d, n) for n in ("ca.pem", "good.pem", "good.key", "wrong.pem",
                                               "wrong.key")}


class Collector:
    """A running `vgcollector serve` process."""

    def __init__(self, db, args=(), env=None, port=None, config_text=None, wait=True,
                 scheme="http"):
        self.db = db
        self.port = port or free_port()
        self.scheme = scheme
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="vgc-col-")
        self.log_path = os.path.join(self.dir, "collector.log")
        cmd = [VGC, "serve", "--listen", f"127.0.0.1:{self.port}"]
        if db is not None:
            cmd += ["--db", db.conninfo]
        if config_text is not None:
            self.config_path = os.path.join(self.dir, "vgcollector.conf")
            with open(self.config_path, "w") as f:
                f.write(config_text)
            cmd += ["--config", self.config_path]
        cmd += list(args)
        e = sanitizer_env()
        if env:
            e.update(env)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=e)
        if db is not None:
            db.collectors.append(self)
        if wait:
            self.wait_ready()

    def wait_ready(self, path="/healthz", timeout=20):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited {self.proc.returncode}:\n{self.output()}")
            try:
                return httpx.get(self.url + path, timeout=1, verify=False).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, timeout, f"{self.url}{path} answering 200")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.output()}") from None

    def wait_key(self, key, timeout=5):
        """Waits until this collector's key cache knows key (LISTEN/NOTIFY reload)."""
        wait_until(lambda: self.get("/v1/whoami", key=key, timeout=5).status_code != 401,
                   timeout, f"key {key[:12]} known to {self.url}", interval=0.01)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=_signal.SIGTERM, timeout=30):
        """Stops the process and returns its exit code; fails on sanitizer reports."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        out = self.output()
        for mark in SANITIZER_MARKS:
            assert mark not in out, f"sanitizer report in collector log:\n{out[-6000:]}"
        return self.proc.returncode

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def post(self, path, body=None, key=None, headers=None, json=None, timeout=30):
        h = dict(headers or {})
        if key:
            h["Authorization"] = f"Bearer {key}"
        return httpx.post(self.url + path, content=body, json=json, headers=h, timeout=timeout,
                          verify=False)

    def get(self, path, key=None, params=None, headers=None, timeout=30):
        h = dict(headers or {})
        if key:
            h["Authorization"] = f"Bearer {key}"
        return httpx.get(self.url + path, params=params, headers=h, timeout=timeout, verify=False)


@pytest.fixture(scope="session")
def pg():
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


def ledger_horizon(db):
    """The instant before which retention has dropped raw rows (rollups for
    those hours are kept as history), or None when nothing was dropped."""
    if db.scalar("SELECT to_regclass('vgc_retention') IS NOT NULL"):
        return db.scalar("SELECT dropped_before FROM vgc_retention")
    return None


def live_hours(db):
    """The hours a reader sees: cost_rollup_hourly plus the deltas ingest
    appended and the summariser has not folded yet (a schema before the
    deltas has the table alone)."""
    if db.scalar("SELECT to_regclass('vgc_rollup_hourly_live') IS NOT NULL"):
        return "vgc_rollup_hourly_live"
    return "cost_rollup_hourly"


def fold_rollup(db):
    """Folds every waiting rollup delta into cost_rollup_hourly now, with the
    real `vgcollector rollup-fold`; returns its report line."""
    r = run_vgc("rollup-fold", "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    return r.stdout


def assert_ledger_consistent(db):
    """The ledger invariant: every rollup hour at or after the retention
    horizon, as a reader sees it (folded hours plus waiting deltas), equals
    the sums over cost_rows for that hour and group, to the last digit, and
    no cost_rows row lacks its id in cost_row_ids."""
    horizon = ledger_horizon(db)
    since = "'-infinity'::timestamptz" if horizon is None else "%s"
    args = () if horizon is None else (horizon,)
    keys = ("hour",) + tuple(ROLLUP_SHAPE["keys"])
    # A test of an older migration holds only the measures of its schema.
    measures = live_measures(db)
    from_rows = ", ".join(f"{m['from_rows']} AS {m['name']}" for m in ROLLUP_SHAPE["measures"]
                          if m["name"] in measures)
    bad = sums_differ(
        db, keys,
        f"SELECT date_trunc('hour', ts) AS hour, {', '.join(ROLLUP_SHAPE['keys'])},"
        f" {from_rows} FROM cost_rows GROUP BY {', '.join(map(str, range(1, len(keys) + 1)))}",
        f"SELECT {', '.join(keys)}, {', '.join(f'sum({m}) AS {m}' for m in measures)}"
        f" FROM {live_hours(db)} WHERE hour >= {since}"
        f" GROUP BY {', '.join(map(str, range(1, len(keys) + 1)))}", args, measures)
    assert not bad, f"rollup differs from the sums over cost_rows (hour, project, agent, " \
        f"tenant, modality, provider, model, row requests, rollup requests, row cost, " \
        f"rollup cost): {bad}"
    orphans = db.scalar("SELECT count(*) FROM cost_rows c WHERE NOT EXISTS"
                        " (SELECT 1 FROM cost_row_ids i WHERE i.id = c.id)")
    assert orphans == 0, f"{orphans} stored rows have no id in cost_row_ids: a resend would count twice"
    sums = ", ".join(f"sum({c}) AS {c}" for c in measures)
    if db.scalar("SELECT to_regclass('cost_rollup_daily') IS NOT NULL"):
        # Every day not listed dirty: its daily rows are its hours' sums.
        keys = ("project", "agent_id", "tenant_id", "modality", "provider", "model_id")
        clean = " WHERE day NOT IN (SELECT day FROM vgc_rollup_dirty_days)"
        bad = sums_differ(
            db, ("day",) + keys,
            "SELECT * FROM (SELECT date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
            f" AS day, {', '.join(keys)}, {sums} FROM cost_rollup_hourly"
            f" GROUP BY 1, {', '.join(keys)}) h{clean}",
            f"SELECT * FROM cost_rollup_daily{clean}", (), measures)
        assert not bad, f"daily rollup of a clean day differs from its hours (day, project, " \
            f"agent, tenant, modality, provider, model, hourly requests, daily requests, " \
            f"hourly cost, daily cost): {bad}"
    if db.scalar("SELECT to_regclass('cost_rollup_tenant_daily') IS NOT NULL"):
        # Every day, listed or not: the narrow summary is the daily rows' sums.
        bad = sums_differ(
            db, ("day", "tenant_id", "project"),
            f"SELECT day, tenant_id, project, {sums} FROM cost_rollup_daily"
            " GROUP BY 1, 2, 3",
            "SELECT * FROM cost_rollup_tenant_daily", (), measures)
        assert not bad, f"cost_rollup_tenant_daily differs from the sums of cost_rollup_daily " \
            f"(day, tenant, project, daily requests, narrow requests, daily cost, narrow cost): {bad}"
        # Every summarised day not listed: its narrow hours are its hours' sums.
        clean = ("date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' NOT IN"
                 " (SELECT day FROM vgc_rollup_dirty_days)")
        bad = sums_differ(
            db, ("hour", "tenant_id", "project"),
            f"SELECT hour, tenant_id, project, {sums} FROM cost_rollup_hourly"
            f" WHERE {clean} AND date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
            " IN (SELECT day FROM cost_rollup_daily) GROUP BY 1, 2, 3",
            f"SELECT * FROM cost_rollup_tenant_hourly WHERE {clean}", (), measures)
        assert not bad, f"cost_rollup_tenant_hourly differs from the hours of a clean day " \
            f"(hour, tenant, project, hourly requests, narrow requests, hourly cost, narrow cost): {bad}"


def load_rollup_shape():
    """The rollup tables' keys and measures (collector/rollup_shape.c, printed
    by build/rollup-shape): the tests' one list of them too."""
    out = subprocess.run([os.path.join(BUILD, "rollup-shape")], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


ROLLUP_SHAPE = load_rollup_shape()
# The measures the rollup tables store, and every measure the read API answers.
ROLLUP_MEASURES = tuple(m["name"] for m in ROLLUP_SHAPE["measures"] if m["from_rows"])
API_MEASURES = [m["name"] for m in ROLLUP_SHAPE["measures"]]
API_MONEY = {m["name"] for m in ROLLUP_SHAPE["measures"] if m["kind"] == "money"}


def rollup_row_aggregates():
    """Every API measure as an aggregate over cost_rows, in the API's order
    (a derived one as the difference of its two stored measures)."""
    by_name = {m["name"]: m for m in ROLLUP_SHAPE["measures"]}
    out = []
    for m in ROLLUP_SHAPE["measures"]:
        if m["from_rows"]:
            out.append(f"coalesce({m['from_rows']}, 0)")
        else:
            a, b = (by_name[n]["from_rows"] for n in m["minus"])
            out.append(f"coalesce({a}, 0) - coalesce({b}, 0)")
    return out


# Rollup keys that are never NULL: joined with = so the check can hash.
ROLLUP_NOT_NULL_KEYS = {"day", "hour", "project", "modality"}


def live_measures(db):
    """The stored measures cost_rollup_hourly has in this database's schema."""
    have = {r[0] for r in db.query(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'cost_rollup_hourly'")}
    return tuple(m for m in ROLLUP_MEASURES if m in have)


def sums_differ(db, keys, want, have, args=(), measures=ROLLUP_MEASURES):
    """Up to 5 groups (by keys) where two relations of rollup measures, given
    as SQL, disagree: a group in one only, or any measure unequal. Each is the
    keys, then want's and have's requests and cost_usd."""
    on = " AND ".join(f"w.{k} = h.{k}" if k in ROLLUP_NOT_NULL_KEYS
                      else f"w.{k} IS NOT DISTINCT FROM h.{k}" for k in keys)
    return db.query(
        f"SELECT {', '.join(f'coalesce(w.{k}, h.{k})' for k in keys)},"
        " w.requests, h.requests, w.cost_usd, h.cost_usd"
        f" FROM ({want}) w FULL JOIN ({have}) h ON {on}"
        f" WHERE ({', '.join('w.' + c for c in measures)}) IS DISTINCT FROM"
        f" ({', '.join('h.' + c for c in measures)}) LIMIT 5", *args)


def assert_sink_stats_add_up(st):
    """libvgsink's accounting identity: every recorded row is in exactly one of
    sent (accepted or duplicate), dropped, rejected, queued (in memory, in flight
    included) or spooled_rows (in spool files not yet answered)."""
    parts = {k: st[k] for k in ("sent", "dropped", "rejected", "queued", "spooled_rows")}
    assert st["recorded"] == sum(parts.values()), f"recorded {st['recorded']} != {parts}"


@pytest.fixture
def db(pg, request):
    d = Db(pg, pg.createdb()).migrate()
    yield d
    # Every test, fault tests above all, leaves a consistent ledger behind.
    if request.node.get_closest_marker("hand_made_rows") is None:
        assert_ledger_consistent(d)
    d.close()


@pytest.fixture
def collectors():
    """Factory: collectors(db, ...) starts a collector; all are stopped after the test."""
    started = []

    def start(db, *args, **kw):
        c = Collector(db, args=args, **kw)
        started.append(c)
        return c

    yield start
    for c in started:
        if c.proc.poll() is None:
            c.stop()
        elif not c.log.closed:
            c.log.close()


@pytest.fixture
def collector(db, collectors):
    return collectors(db)


def make_row(i=0, **over):
    """One cost row exactly as VoiceGateway's Python sink sends it (asdict)."""
    row = {
        "id": over.pop("id", f"row-{uuid.uuid4().hex}-{i}"),
        "timestamp": time.time(),
        "modality": "llm",
        "model_id": "openai/gpt-4o-mini",
        "provider": "openai",
        "project": "default",
        "input_units": 1200,
        "output_units": 350,
        "cached_input_units": 0,
        "cost_usd": 0.00039,
        "rated_price_usd": 0.0004,
        "pricing_source": "catalog",
        "rate_rule": "per_token",
        "ttfb_ms": 420.5,
        "total_latency_ms": 1830.25,
        "status": "success",
        "fallback_from": None,
        "error_message": None,
        "metadata": {"tenant": "acme"},
        "session_id": "sess-1",
        "agent_id": "agent-1",
        "revision": "r1",
        "turn_index": i,
        "tenant_id": None,
    }
    row.update(over)
    return row


class TimeLimitExceeded(BaseException):
    """Raised in the main thread by SIGALRM; a BaseException so that no
    `except Exception` in a test swallows it."""


def _on_alarm(signum, frame):
    raise TimeLimitExceeded(f"test exceeded its {TEST_TIMEOUT_S} s limit (VGC_TEST_TIMEOUT)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    # One budget for the whole test, fixtures included; a blocked wait in the
    # main thread (proc.wait, join, recv) is interrupted by the signal.
    if TEST_TIMEOUT_S > 0:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT_S)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    if TEST_TIMEOUT_S > 0:
        signal.setitimer(signal.ITIMER_REAL, 0)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "hand_made_rows: the test writes cost_rows by hand in SQL, bypassing ingest,"
        " so the ledger invariant is not checked at teardown")
