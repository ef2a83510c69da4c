"""The price book: voice-prices feeds imported as revisions (CLI and HTTP),
and the book cost of each row set by the collector on ingest from the rates in
effect at the row's timestamp, exact to the last digit (Decimal here, numeric
in PostgreSQL). Before, the collector stored whatever cost a worker sent: a
model missing from the worker's price table was silently $0."""

import calendar
import json
import os
from decimal import Decimal

import httpx

from conftest import make_row, metrics_map, run_vgc

DEEPGRAM = {
    "provider": "deepgram", "currency": "USD", "updated": "2026-11-20",
    "models": [{"id": "nova-3", "modality": "stt", "rates": [
        {"meter": "audio_input", "amount": "0.0043", "unit": "minute",
         "effective_from": "2026-11-01"},
        # A later per-second rate: $0.006 a minute from 3 December.
        {"meter": "audio_input", "amount": "0.0001", "unit": "second",
         "effective_from": "2026-12-03"},
        {"meter": "request", "amount": "0.00002", "unit": "request"},
        # Kept, never the headline rate.
        {"meter": "audio_input", "amount": "0.0001", "unit": "minute", "plan": "growth"},
    ]}],
}
OPENAI = {
    "provider": "openai", "currency": "USD",
    "models": [{"id": "gpt-4o-mini", "modality": "llm", "rates": [
        {"meter": "text_input", "amount": "0.00000015", "unit": "token"},
        {"meter": "cached_text_input", "amount": "0.000000075", "unit": "token"},
        {"meter": "text_output", "amount": "0.0000006", "unit": "token"},
    ]}],
}
CARTESIA = {
    "provider": "cartesia", "currency": "USD",
    "models": [{"id": "sonic", "modality": "tts", "rates": [
        {"meter": "text_input", "amount": "0.0000000000005", "unit": "character"},
    ]}],
}


def ts(y, m, d, h=12):
    return calendar.timegm((y, m, d, h, 0, 0))


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def post_feed(c, admin, feed, **params):
    return httpx.post(f"{c.url}/v1/billing/price-book", content=json.dumps(feed),
                      params=params, headers={**auth(admin), "Content-Type": "application/json"},
                      timeout=30)


def write_feed(tmp_path, name, feed):
    p = tmp_path / name
    p.write_text(json.dumps(feed))
    return str(p)


def ingest(c, key, rows):
    r = c.post("/v1/ingest", json=rows, key=key)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(rows), r.text


def book(db, row_id):
    return db.query("SELECT book_cost_usd, book_revision FROM cost_rows WHERE id = %s",
                    row_id)[0]


def test_rates_apply_by_the_rows_timestamp_exactly(db, collector, tmp_path):
    """A per-second rate with a later effective_from prices the rows after its
    date, the older per-minute rate the rows before it; the request rate
    (effective from the import's date) is added once per row."""
    r = run_vgc("prices", "import", write_feed(tmp_path, "dg.json", DEEPGRAM),
                write_feed(tmp_path, "oa.json", OPENAI), write_feed(tmp_path, "ca.json", CARTESIA),
                "--effective-from", "2026-10-01", "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    revision = r.stdout.splitlines()[0]
    assert len(revision) == 64 and all(ch in "0123456789abcdef" for ch in revision)
    key = db.create_key("ingest")
    rows = [
        make_row(0, id="before", modality="stt", provider="deepgram", model_id="deepgram/nova-3",
                 input_units=2.5, output_units=0, timestamp=ts(2026, 12, 1)),
        make_row(1, id="after", modality="stt", provider="deepgram", model_id="nova-3",
                 input_units=1.37, output_units=0, timestamp=ts(2026, 12, 5)),
        make_row(2, id="llm", modality="llm", provider="openai", model_id="openai/gpt-4o-mini",
                 input_units=1200, cached_input_units=200, output_units=350,
                 timestamp=ts(2026, 12, 5)),
        # 5e-13: exactly half of the 12th digit, after an even digit: half-even
        # gives 0 where PostgreSQL's round() would give 1e-12.
        make_row(3, id="half-even", modality="tts", provider="cartesia", model_id="sonic",
                 input_units=1, output_units=0, timestamp=ts(2026, 12, 5)),
        make_row(4, id="half-odd", modality="tts", provider="cartesia", model_id="sonic",
                 input_units=3, output_units=0, timestamp=ts(2026, 12, 5)),
        make_row(5, id="book-before", modality="stt", provider="deepgram", model_id="nova-3",
                 input_units=1, output_units=0, timestamp=ts(2026, 10, 15)),
    ]
    ingest(collector, key, rows)
    assert book(db, "before") == (Decimal("2.5") * Decimal("0.0043") + Decimal("0.00002"),
                                  revision)
    assert book(db, "after") == (Decimal("1.37") * Decimal("0.0001") * 60 + Decimal("0.00002"),
                                 revision)
    assert book(db, "llm")[0] == (1000 * Decimal("0.00000015") + 200 * Decimal("0.000000075")
                                  + 350 * Decimal("0.0000006"))
    assert book(db, "half-even")[0] == Decimal("0")
    assert book(db, "half-odd")[0] == Decimal("0.000000000002")
    # Before any audio rate took effect: a quantity without its rate is unpriced.
    assert book(db, "book-before") == (None, None)


def test_identical_imports_give_one_revision(db, collector, tmp_path):
    """The same content imported again, by HTTP or the CLI, is the same
    revision and stores nothing new; another effective date is another one."""
    admin = db.create_key("admin")
    first = post_feed(collector, admin, DEEPGRAM, effective_from="2026-10-01")
    assert first.status_code == 201, first.text
    rev = first.json()["revision"]
    assert first.json()["created"] is True
    again = post_feed(collector, admin, DEEPGRAM, effective_from="2026-10-01")
    assert again.status_code == 200 and again.json() == {"revision": rev, "created": False}
    # Key order and white space do not change the canonical JSON.
    path = tmp_path / "dg.json"
    path.write_text(json.dumps(DEEPGRAM, indent=4, sort_keys=True))
    r = run_vgc("prices", "import", str(path), "--effective-from", "2026-10-01",
                "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == rev
    assert db.scalar("SELECT count(*) FROM price_book_revisions") == 1
    assert db.scalar("SELECT count(*) FROM price_book_rates") == 4
    other = post_feed(collector, admin, DEEPGRAM, effective_from="2026-10-02")
    assert other.status_code == 201 and other.json()["revision"] != rev


def test_bad_feeds_are_refused_naming_the_value(db, collector, tmp_path):
    """An unsupported meter/unit pair, another currency, a float amount or
    broken JSON is refused whole with a 400 naming it; nothing is stored."""
    admin = db.create_key("admin")
    bad_unit = json.loads(json.dumps(DEEPGRAM))
    bad_unit["models"][0]["rates"][0]["unit"] = "hour"
    r = post_feed(collector, admin, bad_unit)
    assert r.status_code == 400 and '"hour"' in r.json()["error"] and "audio_input" in r.text, r.text
    bad_meter = json.loads(json.dumps(OPENAI))
    bad_meter["models"][0]["rates"][0]["meter"] = "image_output"
    r = post_feed(collector, admin, bad_meter)
    assert r.status_code == 400 and '"image_output"' in r.json()["error"], r.text
    eur = dict(OPENAI, currency="EUR")
    r = post_feed(collector, admin, eur)
    assert r.status_code == 400 and '"EUR"' in r.json()["error"] and "USD" in r.text, r.text
    flt = json.loads(json.dumps(OPENAI))
    flt["models"][0]["rates"][0]["amount"] = 0.00000015
    r = post_feed(collector, admin, flt)
    assert r.status_code == 400 and "amount" in r.text, r.text
    r = httpx.post(f"{collector.url}/v1/billing/price-book", content=b'{"provider": "x",}',
                   headers=auth(admin), timeout=30)
    assert r.status_code == 400, r.text
    r = post_feed(collector, admin, OPENAI, effective_from="someday")
    assert r.status_code == 400 and "someday" in r.text, r.text
    read = db.create_key("read")
    assert post_feed(collector, read, OPENAI).status_code == 403
    r = run_vgc("prices", "import", write_feed(tmp_path, "bad.json", bad_unit), "--db",
                db.conninfo)
    assert r.returncode != 0 and '"hour"' in r.stderr
    assert db.scalar("SELECT count(*) FROM price_book_revisions") == 0


def test_unpriced_rows_are_null_local_models_cost_nothing_and_worker_values_are_ignored(
        db, collector):
    """A model with no rate is unpriced (NULL, never 0); local/* and ollama/*
    cost 0; a book_cost_usd or book_revision a worker sends is never stored."""
    admin = db.create_key("admin")
    rev = post_feed(collector, admin, OPENAI, effective_from="2026-10-01").json()["revision"]
    key = db.create_key("ingest")
    now = ts(2026, 12, 5)
    ingest(collector, key, [
        make_row(0, id="unknown", model_id="openai/gpt-unknown", timestamp=now,
                 book_cost_usd=999, book_revision="forged"),
        make_row(1, id="forged", timestamp=now, book_cost_usd=999, book_revision="forged"),
        make_row(2, id="ollama", provider="ollama", model_id="ollama/llama3", timestamp=now),
        make_row(3, id="local", provider="acme", model_id="local/whisper", modality="stt",
                 timestamp=now),
    ])
    assert book(db, "unknown") == (None, None)
    assert book(db, "forged") == (1200 * Decimal("0.00000015") + 350 * Decimal("0.0000006"), rev)
    assert book(db, "ollama")[0] == Decimal("0")
    assert book(db, "local")[0] == Decimal("0")
    m = metrics_map(collector.get("/metrics").text)
    assert m["vgcollector_unpriced_rows_total"] == 1


def test_unpriced_models_are_listed(db, collector):
    """GET /v1/billing/unpriced lists the (provider, model, modality) groups
    the book did not price in [from, to), with their rows, recorded cost and
    first and last timestamps, equal to SQL; a tenant key sees its own."""
    admin = db.create_key("admin")
    assert post_feed(collector, admin, OPENAI, effective_from="2026-10-01").status_code == 201
    key = db.create_key("ingest")
    rows = [make_row(i, model_id=["openai/gpt-4o-mini", "openai/gpt-5", "gpt-5"][i % 3],
                     modality="llm", cost_usd=0.25 * (i + 1), tenant_id=["a", "b"][i % 2],
                     timestamp=ts(2026, 12, 1 + i % 5, i % 24)) for i in range(30)]
    rows.append(make_row(99, modality="stt", provider="deepgram", model_id="nova-3",
                         cost_usd=0.1, timestamp=ts(2026, 12, 2)))
    ingest(collector, key, rows)
    read = db.create_key("read")
    params = {"from": "2026-11-30T00:00:00Z", "to": "2026-12-07T00:00:00Z"}
    r = collector.get("/v1/billing/unpriced", key=read, params=params)
    assert r.status_code == 200, r.text
    got = [(m["provider"], m["model_id"], m["modality"], m["rows"], Decimal(m["cost_usd"]),
            m["first_seen"], m["last_seen"]) for m in r.json()["models"]]
    want = [(p, mid, mod, n, Decimal(c), f, l) for p, mid, mod, n, c, f, l in db.query(
        "SELECT provider, model_id, modality, count(*), sum(cost_usd)::text,"
        " to_char(min(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
        " to_char(max(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        " FROM cost_rows WHERE book_cost_usd IS NULL GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3")]
    assert got == want and len(got) == 3
    assert "gpt-4o-mini" not in r.text
    assert isinstance(r.json()["models"][0]["cost_usd"], str)
    tenant = db.create_key("read", tenant="a")
    r = collector.get("/v1/billing/unpriced", key=tenant, params=params)
    assert r.status_code == 200 and sum(m["rows"] for m in r.json()["models"]) == db.scalar(
        "SELECT count(*) FROM cost_rows WHERE book_cost_usd IS NULL AND tenant_id = 'a'")
    r = collector.get("/v1/billing/unpriced", key=read, params={"from": "yesterday"})
    assert r.status_code == 400 and "from" in r.text
    assert collector.get("/v1/billing/unpriced", key=key).status_code == 403


def test_rollups_book_cost_equals_the_rows(db, collector):
    """/v1/rollups answers book_cost_usd (sum over priced rows), priced_rows
    and unpriced_rows, equal to SQL over cost_rows, in JSON and CSV."""
    admin = db.create_key("admin")
    assert post_feed(collector, admin, OPENAI, effective_from="2026-10-01").status_code == 201
    assert post_feed(collector, admin, DEEPGRAM, effective_from="2026-10-01").status_code == 201
    key = db.create_key("ingest")
    rows = []
    for i in range(60):
        rows.append(make_row(i, timestamp=ts(2026, 12, 1 + i % 6, i % 24),
                             model_id=["openai/gpt-4o-mini", "openai/gpt-x"][i % 2],
                             input_units=100 + i, output_units=7 * i, cached_input_units=i % 5,
                             tenant_id=["a", "b", None][i % 3]))
    rows.append(make_row(99, modality="stt", provider="deepgram", model_id="nova-3",
                         input_units=3.3, timestamp=ts(2026, 12, 4)))
    ingest(collector, key, rows)
    read = db.create_key("read")
    params = {"from": "2026-11-30T00:00:00Z", "to": "2026-12-07T00:00:00Z",
              "granularity": "total", "group_by": "tenant"}
    r = collector.get("/v1/rollups", key=read, params=params)
    assert r.status_code == 200, r.text
    body = json.loads(r.text, parse_float=Decimal)
    want = {t: (Decimal(c), p, u) for t, c, p, u in db.query(
        "SELECT tenant_id, coalesce(sum(book_cost_usd), 0)::text, count(book_cost_usd),"
        " count(*) - count(book_cost_usd) FROM cost_rows GROUP BY 1")}
    got = {row["tenant"]: (Decimal(row["book_cost_usd"]), row["priced_rows"],
                           row["unpriced_rows"]) for row in body["rows"]}
    assert got == want
    assert isinstance(body["totals"]["book_cost_usd"], str)
    assert Decimal(body["totals"]["book_cost_usd"]) == sum(v[0] for v in want.values())
    assert body["totals"]["unpriced_rows"] == 30
    csv = collector.get("/v1/rollups", key=read, params={**params, "format": "csv"}).text
    lines = csv.splitlines()
    assert lines[0] == "tenant,requests,errors,fallbacks,cost_usd,rated_price_usd,input_units," \
        "output_units,cached_input_units,book_cost_usd,priced_rows,unpriced_rows,rated_rows," \
        "unrated_rows"
    by_csv = {(line.split(",")[0] or None): (Decimal(line.split(",")[9]),
                                           int(line.split(",")[10]), int(line.split(",")[11]))
              for line in lines[1:]}
    assert by_csv == want
    r = run_vgc("rollup", "--from", params["from"], "--to", params["to"], "--by", "tenant",
                "--granularity", "total", "--csv", "--db", db.conninfo)
    assert r.returncode == 0, r.stderr
    assert r.stdout.replace("\r\n", "\n").splitlines() == lines
    r = run_vgc("rollup", "--from", params["from"], "--to", params["to"], "--by", "tenant",
                "--granularity", "total", "--db", db.conninfo)
    head = r.stdout.splitlines()[2].lower()
    assert r.returncode == 0 and "book_cost_usd" in head and "unpriced_rows" in head, r.stdout
