"""OTLP/HTTP trace ingest (POST /v1/traces) over the real binary: the real
OpenTelemetry JS SDK's exporters (JSON and protobuf) store one cost row per
GenAI span exactly once, and hand-made bodies cover partial success, the
error statuses, a scoped key, legacy attribute names, ignored spans, unpriced
spans and gzip."""

import gzip
import json
import os
import shutil
import struct
import subprocess
import time
from decimal import Decimal

import pytest

from conftest import ROOT, Collector, Db, PgCluster, metrics_map

OTEL_DIR = os.path.join(ROOT, "tests", "otel")
PROTO = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


# ---- a minimal protobuf writer/reader for hand-made bodies ------------------

def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, wire, payload):
    return _varint(num << 3 | wire) + payload


def _bytes(num, b):
    return _field(num, 2, _varint(len(b)) + b)


def _any_value(v):
    if "stringValue" in v:
        return _bytes(1, v["stringValue"].encode())
    if "boolValue" in v:
        return _field(2, 0, _varint(int(v["boolValue"])))
    if "intValue" in v:
        return _field(3, 0, _varint(int(v["intValue"])))
    return _field(4, 1, struct.pack("<d", v["doubleValue"]))


def _attrs(num, attrs):
    return b"".join(_bytes(num, _bytes(1, a["key"].encode()) + _bytes(2, _any_value(a["value"])))
                    for a in attrs)


def _span(s):
    out = _bytes(1, bytes.fromhex(s["traceId"])) + _bytes(2, bytes.fromhex(s["spanId"]))
    out += _bytes(5, s.get("name", "").encode())
    out += _field(7, 1, struct.pack("<Q", int(s["startTimeUnixNano"])))
    out += _field(8, 1, struct.pack("<Q", int(s["endTimeUnixNano"])))
    out += _attrs(9, s.get("attributes", []))
    if "status" in s:
        st = s["status"]
        out += _bytes(15, _bytes(2, st.get("message", "").encode()) +
                      _field(3, 0, _varint(st.get("code", 0))))
    return out


def to_proto(req):
    """An OTLP JSON ExportTraceServiceRequest (as a dict) in binary protobuf."""
    out = b""
    for rs in req["resourceSpans"]:
        body = _bytes(1, _attrs(1, rs.get("resource", {}).get("attributes", [])))
        for ss in rs["scopeSpans"]:
            scope = _bytes(1, _bytes(1, ss.get("scope", {}).get("name", "").encode()))
            body += _bytes(2, scope + b"".join(_bytes(2, _span(s)) for s in ss["spans"]))
        out += _bytes(1, body)
    return out


def read_proto(b):
    """Top-level fields of a protobuf message: {number: [value, ...]}, values
    as ints (varint) or bytes (length-delimited)."""
    out, i = {}, 0
    while i < len(b):
        key, shift = 0, 0
        while True:
            c = b[i]
            i += 1
            key |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                break
        num, wire = key >> 3, key & 7
        val, shift = 0, 0
        while True:
            c = b[i]
            i += 1
            val |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                break
        if wire == 2:
            val, i = b[i:i + val], i + val
        out.setdefault(num, []).append(val)
    return out


# ---- hand-made spans ----------------------------------------------------------

_seq = [0]


def attr(k, v):
    if isinstance(v, bool):
        return {"key": k, "value": {"boolValue": v}}
    if isinstance(v, int):
        return {"key": k, "value": {"intValue": str(v)}}
    if isinstance(v, float):
        return {"key": k, "value": {"doubleValue": v}}
    return {"key": k, "value": {"stringValue": v}}


def span(attrs=None, start_ms=None, dur_ms=250, status=None, name="chat gpt-4o"):
    _seq[0] += 1
    start_ns = int((start_ms if start_ms is not None else time.time() * 1000 - 60000) * 1e6)
    s = {"traceId": f"{os.getpid():08x}{_seq[0]:024x}", "spanId": f"{_seq[0]:016x}",
         "name": name, "kind": 3, "startTimeUnixNano": str(start_ns),
         "endTimeUnixNano": str(start_ns + int(dur_ms * 1e6)),
         "attributes": [attr(k, v) for k, v in (attrs or {}).items()]}
    if status:
        s["status"] = status
    return s


def llm(**extra):
    a = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
         "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
         "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 85,
         "gen_ai.usage.cost.amount": 0.0043, "gen_ai.usage.cost.currency": "USD"}
    a.update(extra)
    return {k: v for k, v in a.items() if v is not None}


def request(spans, resource=None, scope="test.scope"):
    return {"resourceSpans": [{
        "resource": {"attributes": [attr(k, v) for k, v in (resource or {}).items()]},
        "scopeSpans": [{"scope": {"name": scope, "version": "1"}, "spans": spans}]}]}


def row_id(s):
    return f"{s['traceId']}-{s['spanId']}"


def rows(db):
    return {r[0]: r for r in db.query(
        "SELECT id, modality, provider, model_id, input_units::text, output_units::text,"
        " cached_input_units::text, cost_usd::text, pricing_source, total_latency_ms, status,"
        " error_message, session_id, agent_id, project, tenant_id, metadata,"
        " extract(epoch FROM ts)::numeric(20,6)::text FROM cost_rows")}


def post_json(c, key, req, **kw):
    return c.post("/v1/traces", json.dumps(req).encode(), key=key, headers=JSON, **kw)


def post_proto(c, key, req):
    return c.post("/v1/traces", to_proto(req), key=key, headers=PROTO)


# ---- the real OpenTelemetry JS SDK ---------------------------------------------

def run_sdk(plan):
    assert shutil.which("node"), "node is missing: run deploy/install-deps.sh"
    assert os.path.isdir(os.path.join(OTEL_DIR, "node_modules", "@opentelemetry")), \
        "tests/otel/node_modules is missing: run deploy/install-deps.sh"
    r = subprocess.run(["node", os.path.join(OTEL_DIR, "export.js"), json.dumps(plan)],
                       cwd=OTEL_DIR, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("encoding,compress", [("json", False), ("proto", False),
                                                ("proto", True)])
def test_real_otel_sdk_export_stores_one_row_per_genai_span_once(db, collectors, encoding,
                                                                 compress):
    """The OpenTelemetry JS SDK's OTLP/HTTP exporter (JSON, protobuf, and
    protobuf gzipped) stores one row per GenAI span with the costs, units,
    tenants, statuses and latencies its attributes say; agent, tool and
    non-GenAI spans store nothing; the exporter's second export of the same
    spans stores nothing new."""
    c1 = collectors(db)
    key = db.create_key()
    t0 = (int(time.time()) - 120) * 1000
    plan = {
        "url": c1.url + "/v1/traces", "key": key, "encoding": encoding, "gzip": compress,
        "exports": 2, "scope": "openai-agents",
        "resource": {"service.name": "voice-bot", "vg.tenant": "acme", "vg.project": "voice"},
        "spans": [
            {"name": "chat gpt-4o", "start": t0, "end": t0 + 1234.5, "attributes": {
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 85,
                "gen_ai.usage.cache_read.input_tokens": 200,
                "gen_ai.usage.cost.amount": 0.000123, "gen_ai.usage.cost.currency": "USD",
                "gen_ai.conversation.id": "call-7", "gen_ai.agent.name": "receptionist"}},
            {"name": "chat claude", "start": t0 + 2000, "end": t0 + 2100,
             "error": "rate limited", "attributes": {
                 "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                 "gen_ai.request.model": "claude-3-5-haiku", "vg.tenant": "globex",
                 "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 0,
                 "gen_ai.usage.cost.amount": 0.1 + 0.2, "gen_ai.usage.cost.currency": "USD"}},
            {"name": "stt", "start": t0 + 3000, "end": t0 + 3400, "attributes": {
                "gen_ai.operation.name": "transcribe", "gen_ai.provider.name": "deepgram",
                "gen_ai.request.model": "nova-3", "vg.modality": "stt",
                "vg.input_units": 12.5, "gen_ai.usage.cost.amount": 0.0021,
                "gen_ai.usage.cost.currency": "USD"}},
            {"name": "chat unpriced", "start": t0 + 4000, "end": t0 + 4010, "attributes": {
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "mistral",
                "gen_ai.request.model": "mistral-small", "gen_ai.usage.input_tokens": 7,
                "gen_ai.usage.output_tokens": 3}},
            {"name": "invoke_agent receptionist", "start": t0, "end": t0 + 5000, "attributes": {
                "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 1210,
                "gen_ai.usage.cost.amount": 9.0, "gen_ai.usage.cost.currency": "USD"}},
            {"name": "execute_tool lookup", "start": t0, "end": t0 + 10, "attributes": {
                "gen_ai.operation.name": "execute_tool"}},
            {"name": "GET /health", "start": t0, "end": t0 + 5, "attributes": {
                "http.request.method": "GET"}},
        ]}
    out = run_sdk(plan)
    assert [r["code"] for r in out["results"]] == [0, 0], out
    ids = {s["name"]: f"{s['traceId']}-{s['spanId']}" for s in out["ids"]}
    got = rows(db)
    assert len(got) == 4, got

    r = got[ids["chat gpt-4o"]]
    assert r[1:9] == ("llm", "openai", "openai/gpt-4o-2024-08-06", "1200", "85", "200",
                      "0.000123", "otel")
    assert r[9] == pytest.approx(1234.5) and r[10] == "success"
    assert r[12:16] == ("call-7", "receptionist", "voice", "acme")
    assert r[16]["otel"]["service.name"] == "voice-bot"
    assert r[16]["otel"]["scope"] == "openai-agents"
    assert r[16]["otel"]["trace_id"] + "-" + r[16]["otel"]["span_id"] == ids["chat gpt-4o"]
    assert Decimal(r[17]) == Decimal(t0) / 1000

    r = got[ids["chat claude"]]
    # 0.1 + 0.2 is the double 0.30000000000000004: stored as its shortest text.
    assert r[7] == "0.30000000000000004" and r[10] == "error" and r[11] == "rate limited"
    assert r[15] == "globex" and r[13] == "voice-bot" and r[9] == pytest.approx(100)

    r = got[ids["stt"]]
    assert r[1:9] == ("stt", "deepgram", "deepgram/nova-3", "12.5", "0", "0", "0.0021", "otel")

    r = got[ids["chat unpriced"]]
    assert r[7:9] == ("0", "unpriced")

    # The rollup sees the rows like any others.
    assert db.scalar("SELECT sum(cost_usd)::text FROM vgc_rollup_hourly_live") == \
        str(Decimal("0.000123") + Decimal("0.30000000000000004") + Decimal("0.0021"))
    assert db.scalar("SELECT sum(requests) FROM vgc_rollup_hourly_live") == 4

    m = metrics_map(c1.get("/metrics").text)
    assert m['vgcollector_rows_total{outcome="duplicate"}'] == 4
    # No price book is loaded, so the book priced none of the four rows.
    assert m["vgcollector_unpriced_rows_total"] == 4


def test_reexport_through_another_collector_stores_nothing_new(db, collectors):
    """A span exported to one collector and re-exported (an exporter retry, an
    OpenTelemetry Collector's resend) through another is a duplicate: the id
    claim is the one /v1/ingest uses."""
    c1, c2 = collectors(db), collectors(db)
    key = db.create_key()
    req = request([span(llm()), span(llm(**{"gen_ai.usage.cost.amount": 0.25}))])
    assert post_proto(c1, key, req).status_code == 200
    r = post_json(c2, key, req)
    assert r.status_code == 200 and r.json() == {}
    assert db.scalar("SELECT count(*) FROM cost_rows") == 2
    assert db.scalar("SELECT sum(cost_usd)::text FROM cost_rows") == "0.2543"
    assert metrics_map(c2.get("/metrics").text)['vgcollector_rows_total{outcome="duplicate"}'] == 2


# ---- hand-made bodies -----------------------------------------------------------

@pytest.mark.parametrize("encoding", ["json", "proto"])
def test_partial_success_keeps_the_bad_span_in_ingest_rejects(db, collector, encoding):
    """One invalid GenAI span among good ones: 200 with partialSuccess
    {rejectedSpans: 1, errorMessage naming why}; the good spans are stored and
    the bad one is kept in ingest_rejects with its text."""
    key = db.create_key()
    bad = span(llm())
    bad["endTimeUnixNano"] = str(int(bad["startTimeUnixNano"]) - 1)
    neg = span(llm(**{"gen_ai.usage.input_tokens": -5}))
    req = request([span(llm()), span({"http.route": "/x"}), bad, span(llm()), neg])
    if encoding == "json":
        r = post_json(collector, key, req)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        ps = r.json()["partialSuccess"]
        assert ps["rejectedSpans"] == "2"
        msg = ps["errorMessage"]
    else:
        r = post_proto(collector, key, req)
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
        ps = read_proto(read_proto(r.content)[1][0])
        assert ps[1] == [2]
        msg = ps[2][0].decode()
    assert "span 2: endTimeUnixNano is before startTimeUnixNano" in msg, msg
    assert "span 4: input_units" in msg, msg
    assert db.scalar("SELECT count(*) FROM cost_rows") == 2
    rej = db.query("SELECT row_index, reason, raw FROM ingest_rejects ORDER BY row_index")
    assert [x[0] for x in rej] == [2, 4]
    assert bad["spanId"] in rej[0][2] and json.loads(rej[0][2])["traceId"] == bad["traceId"]


@pytest.mark.parametrize("encoding", ["json", "proto"])
def test_undecodable_body_is_400_with_a_google_rpc_status(db, collector, encoding):
    """A body that is not an ExportTraceServiceRequest: 400 whose body is a
    google.rpc.Status (code 3, INVALID_ARGUMENT) in the request's encoding."""
    key = db.create_key()
    if encoding == "json":
        r = collector.post("/v1/traces", b'{"resourceSpans": [', key=key, headers=JSON)
        assert r.status_code == 400 and r.headers["content-type"] == "application/json"
        assert r.json()["code"] == 3 and "OTLP JSON" in r.json()["message"]
        r = collector.post("/v1/traces", b'{"resourceSpans": 7}', key=key, headers=JSON)
        assert r.status_code == 400 and r.json()["message"].startswith("resourceSpans:")
    else:
        r = collector.post("/v1/traces", b"\x0a\xff\xff\xff\xff\x0f", key=key, headers=PROTO)
        assert r.status_code == 400 and r.headers["content-type"] == "application/x-protobuf"
        st = read_proto(r.content)
        assert st[1] == [3] and b"binary protobuf" in st[2][0]
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0


def test_401_403_and_415(db, collector):
    """No key: 401. A read-only key: 403. A content type other than
    application/x-protobuf or application/json: 415."""
    body = json.dumps(request([span(llm())])).encode()
    assert collector.post("/v1/traces", body, headers=JSON).status_code == 401
    assert collector.post("/v1/traces", body, key="vgk_nope", headers=JSON).status_code == 401
    assert collector.post("/v1/traces", body, key=db.create_key(role="read"),
                          headers=JSON).status_code == 403
    r = collector.post("/v1/traces", body, key=db.create_key(),
                       headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "text/plain" in r.json()["message"]
    # Parameters after the media type are fine.
    r = collector.post("/v1/traces", body, key=db.create_key(),
                       headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200
    assert db.scalar("SELECT count(*) FROM cost_rows") == 1


def test_scoped_key_rejects_a_span_naming_another_tenant(db, collector):
    """A key scoped to tenant acme: a span naming acme or no tenant is stored
    as acme; a span (or its resource) naming globex is rejected, not
    re-labelled."""
    key = db.create_key(tenant="acme", project="voice")
    ok1, ok2 = span(llm(**{"vg.tenant": "acme"})), span(llm())
    bad = span(llm(**{"vg.tenant": "globex"}))
    r = post_json(collector, key, request([ok1, bad, ok2]))
    assert r.status_code == 200, r.text
    msg = r.json()["partialSuccess"]["errorMessage"]
    assert 'vg.tenant "globex": this key may only write tenant "acme"' in msg
    got = rows(db)
    assert set(got) == {row_id(ok1), row_id(ok2)}
    assert {x[15] for x in got.values()} == {"acme"} and {x[14] for x in got.values()} == {"voice"}
    # The resource naming another tenant rejects every span under it.
    r = post_json(collector, key, request([span(llm())], resource={"vg.tenant": "globex"}))
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert db.scalar("SELECT count(*) FROM ingest_rejects") == 2


def test_legacy_attribute_names_still_map(db, collector):
    """Older instrumentations' names: gen_ai.system for the provider,
    prompt/completion tokens for the units, the request model when no
    response model; agent from the resource's service.name."""
    key = db.create_key()
    s = span({"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
              "gen_ai.request.model": "gpt-3.5-turbo", "gen_ai.usage.prompt_tokens": 31,
              "gen_ai.usage.completion_tokens": 9, "gen_ai.usage.cost.amount": "0.0001",
              "gen_ai.usage.cost.currency": "USD"})
    assert post_proto(collector, key, request([s], resource={"service.name": "legacy-bot"})
                      ).status_code == 200
    r = rows(db)[row_id(s)]
    assert r[2:9] == ("openai", "openai/gpt-3.5-turbo", "31", "9", "0", "0.0001", "otel")
    assert r[13:16] == ("legacy-bot", "default", None)


def test_non_genai_agent_and_tool_spans_are_ignored(db, collector):
    """Spans without gen_ai.operation.name, and agent, workflow and tool
    spans (which would double-count their children), are neither stored nor
    rejected: the answer is a full success."""
    key = db.create_key()
    spans = [span({"http.request.method": "POST"})] + [
        span(llm(**{"gen_ai.operation.name": op}))
        for op in ("invoke_agent", "create_agent", "invoke_workflow", "execute_tool")]
    for post in (post_json, post_proto):
        r = post(collector, key, request(spans))
        assert r.status_code == 200 and r.content in (b"{}", b""), r.content
    assert db.scalar("SELECT count(*) FROM cost_rows") == 0
    assert db.scalar("SELECT count(*) FROM ingest_rejects") == 0


def test_unpriced_span_is_stored_unpriced_and_counted(db, collector):
    """A span with no USD cost (none at all, or in another currency) is stored
    with cost_usd 0 and pricing_source 'unpriced', never as a priced $0, and
    counted once by vgcollector_unpriced_rows_total (a resend adds nothing)."""
    key = db.create_key()
    none = span(llm(**{"gen_ai.usage.cost.amount": None, "gen_ai.usage.cost.currency": None}))
    eur = span(llm(**{"gen_ai.usage.cost.currency": "EUR"}))
    priced_zero = span(llm(**{"gen_ai.usage.cost.amount": 0}))
    req = request([none, eur, priced_zero])
    for _ in range(2):
        assert post_json(collector, key, req).status_code == 200
    got = rows(db)
    assert got[row_id(none)][7:9] == ("0", "unpriced")
    assert got[row_id(eur)][7:9] == ("0", "unpriced")
    assert got[row_id(priced_zero)][7:9] == ("0", "otel")
    # The counter counts rows the price book did not price: with no book
    # loaded, all three (the span's own $0 is the sender's word, not a price).
    assert metrics_map(collector.get("/metrics").text)["vgcollector_unpriced_rows_total"] == 3


def test_span_without_a_cost_takes_the_price_books_cost(db, collector):
    """With the model in the price book, a span that carries no USD cost is
    stored at the book's cost (pricing_source 'book'), exactly: 1200 input
    tokens at 0.0000025 and 85 output tokens at 0.00001 are 0.00385. A span
    that carries its own cost keeps it, and neither counts as unpriced."""
    admin = db.create_key(role="admin")
    feed = {"provider": "openai", "currency": "USD", "updated": "2026-11-01",
            "models": [{"id": "gpt-4o-2024-08-06", "modality": "llm", "rates": [
                {"meter": "text_input", "amount": "0.0000025", "unit": "token",
                 "effective_from": "2026-01-01"},
                {"meter": "text_output", "amount": "0.00001", "unit": "token",
                 "effective_from": "2026-01-01"}]}]}
    r = collector.post("/v1/billing/price-book", json.dumps(feed).encode(), key=admin,
                       headers=JSON)
    assert r.status_code in (200, 201), r.text
    key = db.create_key()
    none = span(llm(**{"gen_ai.usage.cost.amount": None, "gen_ai.usage.cost.currency": None}))
    own = span(llm())
    assert post_json(collector, key, request([none, own])).status_code == 200
    got = rows(db)
    assert Decimal(got[row_id(none)][7]) == Decimal("0.00385")
    assert got[row_id(none)][8] == "book"
    assert got[row_id(own)][7:9] == ("0.0043", "otel")
    assert db.scalar("SELECT count(*) FROM cost_rows WHERE book_cost_usd = 0.00385") == 2
    assert metrics_map(collector.get("/metrics").text)["vgcollector_unpriced_rows_total"] == 0


@pytest.mark.parametrize("encoding", ["json", "proto"])
def test_gzip_bodies_are_inflated(db, collector, encoding):
    """Content-Encoding: gzip in either encoding; a broken gzip stream is 400."""
    key = db.create_key()
    req = request([span(llm()), span(llm())])
    raw = json.dumps(req).encode() if encoding == "json" else to_proto(req)
    h = dict(JSON if encoding == "json" else PROTO, **{"Content-Encoding": "gzip"})
    r = collector.post("/v1/traces", gzip.compress(raw), key=key, headers=h)
    assert r.status_code == 200, r.content
    assert db.scalar("SELECT count(*) FROM cost_rows") == 2
    r = collector.post("/v1/traces", b"\x1f\x8b\x08garbage", key=key, headers=h)
    assert r.status_code == 400


def test_more_genai_spans_than_max_batch_rows_is_413(db, collectors):
    """More GenAI spans than max_batch_rows: 413 with a google.rpc.Status
    (RESOURCE_EXHAUSTED) naming the limit; ignored spans do not count."""
    c = collectors(db, config_text="max_batch_rows = 2\n")
    key = db.create_key()
    ok = request([span(llm()), span(llm()), span({"http.route": "/"})])
    assert post_json(c, key, ok).status_code == 200
    r = post_proto(c, key, request([span(llm()) for _ in range(3)]))
    assert r.status_code == 413 and r.headers["content-type"] == "application/x-protobuf"
    st = read_proto(r.content)
    assert st[1] == [8] and b"max_batch_rows (2)" in st[2][0]
    assert db.scalar("SELECT count(*) FROM cost_rows") == 2


def test_503_with_retry_after_when_postgres_is_unreachable():
    """PostgreSQL out of reach: 503 with Retry-After and a google.rpc.Status
    (UNAVAILABLE), which exporters retry; nothing is acknowledged."""
    cluster = PgCluster().start()
    try:
        d = Db(cluster, cluster.createdb()).migrate()
        key = d.create_key("ingest")
        c = Collector(d)
        assert post_json(c, key, request([span(llm())])).status_code == 200
        d.close()
        cluster.stop()
        r = c.post("/v1/traces", json.dumps(request([span(llm())])).encode(), key=key,
                   headers=JSON, timeout=60)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["code"] == 14 and "request id" in r.json()["message"]
        assert c.stop() == 0
    finally:
        cluster.stop()


@pytest.mark.parametrize("encoding", ["json", "proto"])
def test_request_over_max_decoded_bytes_is_413_before_it_is_decoded(db, collectors, encoding):
    """A small body that would unpack to far more memory (hundreds of
    thousands of empty attributes: 2 bytes each on the wire, a message each
    once decoded) is refused with 413 naming max_decoded_bytes, in either
    encoding; an ordinary request under the same limit is stored."""
    c = collectors(db, config_text="max_decoded_bytes = 1048576\n")
    key = db.create_key()
    assert post_proto(c, key, request([span(llm())])).status_code == 200
    s = span(llm())
    if encoding == "json":
        s["attributes"] += [{}] * 200000
        r = post_json(c, key, request([s]))
        msg = r.json()["message"]
    else:
        body = to_proto(request([s]))
        # resource_spans(1) > scope_spans(2) > spans(2) > attributes(9): empty KeyValues.
        empties = b"\x4a\x00" * 300000
        span_msg = _span(s) + empties
        scope = _bytes(2, _bytes(2, span_msg))
        body = _bytes(1, scope)
        r = c.post("/v1/traces", body, key=key, headers=PROTO)
        msg = read_proto(r.content)[2][0].decode()
    assert r.status_code == 413, r.content[:200]
    assert "max_decoded_bytes (1048576)" in msg
    assert db.scalar("SELECT count(*) FROM cost_rows") == 1
