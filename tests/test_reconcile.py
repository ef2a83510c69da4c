"""Invoice reconciliation over the real binaries: `vgcollector reconcile` and POST /v1/reconcile
compare rows ingested through /v1/ingest with a provider usage file, flag
coverage, units and rate gaps exactly, and refuse bad files naming line and
column."""

import calendar
import csv
import gzip
import io
import json
import time
from urllib.parse import urlencode
from decimal import ROUND_HALF_UP, Decimal

import pytest

from conftest import make_row, run_vgc

DAY = 86400


def day_start(days_ago):
    t = time.gmtime(time.time() - days_ago * DAY)
    return calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))


def ymd(ts):
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


D1, D2 = day_start(3), day_start(2)
FROM, TO = ymd(D1), ymd(day_start(1))  # [D1, D2 + 1 day): two days

# (model_id, modality, input, output, cost, pricing_source, tenant, day)
ROWS = [
    ("openai/gpt-4o", "llm", 1200, 350, 0.0123, "catalog", "acme", D1),
    ("openai/gpt-4o", "llm", 800, 120, 0.000456, "catalog", "globex", D1),
    ("gpt-4o", "llm", 5000, 900, 1.23456789, "override", "acme", D2),
    ("openai/gpt-4o-mini", "llm", 3000, 700, 0.00039, "catalog", "acme", D1),
    ("openai/gpt-4o-mini", "llm", 2500, 400, 0.00071, "catalog", "globex", D2),
    ("openai/whisper-1", "stt", 1.5, 0, 0.009, "catalog", "acme", D2),
    ("anthropic/claude-3-5-sonnet", "llm", 900, 300, 0.0072, "catalog", "acme", D1),
    ("deepgram/nova-2", "stt", 2.25, 0, 0.0097, "catalog", "acme", D1),
]


@pytest.fixture
def loaded(db, collector):
    key = db.create_key("ingest")
    rows = []
    for i, (model, modality, inp, out, cost, src, tenant, day) in enumerate(ROWS):
        for k in range(2):  # two rows each, an hour apart
            rows.append(make_row(
                i, id=f"rec-{i}-{k}", timestamp=day + 3600 * (10 + k) + i,
                modality=modality, provider=model.split("/")[0] if "/" in model else "openai",
                model_id=model, input_units=inp, output_units=out, cost_usd=cost,
                pricing_source=src, tenant_id=tenant, project="voice" if k == 0 else "ops",
                metadata={}))
    r = collector.post("/v1/ingest", json=rows, key=key)
    assert r.status_code == 200 and r.json()["accepted"] == len(rows), r.text
    return collector


def ours(db, provider, per_day=False, tenant=None):
    """Our side straight from cost_rows: {(model, day): (units, cost)}, exact."""
    rows = db.query(
        "SELECT CASE WHEN model_id LIKE %s THEN substr(model_id, length(%s) + 2)"
        "  ELSE model_id END,"
        " CASE WHEN %s THEN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD') END,"
        " sum(CASE modality WHEN 'llm' THEN input_units + output_units"
        "     WHEN 'stt' THEN input_units * 60 ELSE input_units END),"
        " sum(input_units), sum(output_units), sum(cost_usd), count(*)"
        " FROM cost_rows WHERE provider = %s AND ts >= %s AND ts < %s"
        " AND (%s::text IS NULL OR tenant_id = %s) GROUP BY 1, 2",
        provider + "/%", provider, per_day, provider, FROM, TO, tenant, tenant)
    return {(m, d): dict(units=u, inp=i, out=o, cost=c, n=n) for m, d, u, i, o, c, n in rows}


def usage_csv(side, provider="openai", per_day=False, scale=None):
    """A usage file equal to side, with (model, day) -> (units x, cost x) changes."""
    scale = scale or {}
    llm = provider in ("openai", "anthropic", "groq")
    head = ["model"] + (["date"] if per_day else []) + ["cost_usd", "n_requests"]
    head += ["input_tokens", "output_tokens"] if llm else ["units"]
    out = [",".join(head)]
    for (model, day), v in sorted(side.items()):
        ux, cx = scale.get((model, day), (1, 1))
        cells = [model] + ([day] if per_day else []) + [str(v["cost"] * cx), str(v["n"])]
        if llm:
            # Whisper's seconds go in input_tokens: an LLM provider's units are
            # input_tokens + output_tokens, whatever the model.
            cells += [str((v["units"] - v["out"]) * ux), str(v["out"] * ux)]
        else:
            cells += [str(v["units"] * ux)]
        out.append(",".join(cells))
    return "\n".join(out) + "\n"


def reconcile(db, tmp_path, text, *args, fmt="json", name="usage.csv", provider="openai"):
    path = tmp_path / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    r = run_vgc("reconcile", "--provider", provider, "--usage-file", str(path), "--from", FROM,
                "--to", TO, "--format", fmt, "--db", db.conninfo, *args)
    return r, (jl(r.stdout) if fmt == "json" and r.stdout else None)


def jl(text):
    """JSON with its numbers exact, as the report writes them."""
    return json.loads(text, parse_float=Decimal)


def line(rep, model, date=None):
    got = [l for l in rep["lines"] if l["model"] == model and l.get("date") == date]
    assert len(got) == 1, rep["lines"]
    return got[0]


def test_exact_match_file_flags_nothing_and_exits_0(db, loaded, tmp_path):
    side = ours(db, "openai")
    r, rep = reconcile(db, tmp_path, usage_csv(side))
    assert r.returncode == 0, r.stderr
    assert rep["flagged"] == 0 and len(rep["lines"]) == 3
    for l in rep["lines"]:
        assert l["flagged"] is False and l["cause"] is None and l["note"] is None
        v = side[(l["model"], None)]
        assert Decimal(l["our_cost_usd"]) == Decimal(l["provider_cost_usd"]) == v["cost"]
        assert Decimal(str(l["our_units"])) == v["units"]
        assert Decimal(l["cost_diff_usd"]) == 0 and Decimal(str(l["units_diff"])) == 0
    # Whisper's audio minutes are seconds on the invoice: 2 rows x 1.5 min = 180 s.
    assert Decimal(str(line(rep, "whisper-1")["our_units"])) == 180
    assert line(rep, "gpt-4o")["pricing_sources"] == ["catalog", "override"]


def test_model_priced_10x_is_flagged_rate_with_implied_rates(db, loaded, tmp_path):
    side = ours(db, "openai")
    r, rep = reconcile(db, tmp_path, usage_csv(side, scale={("gpt-4o", None): (1, 10)}))
    assert r.returncode == 1, r.stderr
    assert rep["flagged"] == 1
    l = line(rep, "gpt-4o")
    v = side[("gpt-4o", None)]
    assert l["cause"] == "rate" and l["flagged"] is True
    q = Decimal("1e-15")
    assert Decimal(l["our_rate_usd"]) == (v["cost"] / v["units"]).quantize(q, ROUND_HALF_UP)
    assert Decimal(l["provider_rate_usd"]) == \
        (v["cost"] * 10 / v["units"]).quantize(q, ROUND_HALF_UP)
    assert Decimal(str(l["rate_ratio"])) == 10 and Decimal(str(l["cost_diff_pct"])) == 900
    assert l["our_rate_usd"] in l["note"] and l["provider_rate_usd"] in l["note"]
    assert "ratio of 10" in l["note"]
    text, _ = reconcile(db, tmp_path, usage_csv(side, scale={("gpt-4o", None): (1, 10)}),
                        fmt="text")
    assert text.returncode == 1
    assert f"rate: gpt-4o: units agree but cost differs by 900%. Our rate is {l['our_rate_usd']}" \
        in text.stdout


def test_units_7_percent_higher_is_flagged_units(db, loaded, tmp_path):
    side = ours(db, "openai")
    r, rep = reconcile(db, tmp_path,
                       usage_csv(side, scale={("gpt-4o-mini", None): (Decimal("1.07"), 1)}))
    assert r.returncode == 1
    l = line(rep, "gpt-4o-mini")
    assert l["cause"] == "units" and Decimal(str(l["units_diff_pct"])) == 7
    assert "metering gap that no rate change closes" in l["note"]
    assert [x["model"] for x in rep["lines"] if x["flagged"]] == ["gpt-4o-mini"]
    # Within --units-agree-pct the units agree, and the same cost is no gap.
    r, rep = reconcile(db, tmp_path,
                       usage_csv(side, scale={("gpt-4o-mini", None): (Decimal("1.07"), 1)}),
                       "--units-agree-pct", "7")
    assert r.returncode == 0 and rep["flagged"] == 0


def test_model_only_on_invoice_or_only_in_ours_is_coverage(db, loaded, tmp_path):
    side = ours(db, "openai")
    del side[("gpt-4o-mini", None)]
    text = usage_csv(side) + "gpt-5,2.50,3,1000,500\n"
    r, rep = reconcile(db, tmp_path, text)
    assert r.returncode == 1 and rep["flagged"] == 2
    inv = line(rep, "gpt-5")
    assert inv["cause"] == "coverage" and inv["our_units"] is None
    assert inv["provider_cost_usd"] == "2.50" and "we never recorded" in inv["note"]
    mine = line(rep, "gpt-4o-mini")
    assert mine["cause"] == "coverage" and mine["provider_units"] is None
    assert "the invoice does not bill" in mine["note"]
    assert line(rep, "gpt-4o")["flagged"] is False


def test_per_day_files_compare_per_day(db, loaded, tmp_path):
    side = ours(db, "openai", per_day=True)
    assert ("gpt-4o", ymd(D1)) in side and ("gpt-4o", ymd(D2)) in side
    r, rep = reconcile(db, tmp_path, usage_csv(side, per_day=True))
    assert r.returncode == 0 and rep["per_day"] is True and len(rep["lines"]) == len(side)
    # One day's cost off by 10% flags that day alone.
    r, rep = reconcile(db, tmp_path,
                       usage_csv(side, per_day=True,
                                 scale={("gpt-4o", ymd(D2)): (1, Decimal("1.1"))}))
    assert r.returncode == 1 and rep["flagged"] == 1
    assert line(rep, "gpt-4o", ymd(D2))["cause"] == "rate"
    assert line(rep, "gpt-4o", ymd(D1))["flagged"] is False
    # The same day totals moved to the other day: each day is a units gap.
    moved = dict(side)
    moved[("gpt-4o-mini", ymd(D2))] = side[("gpt-4o-mini", ymd(D1))]
    moved[("gpt-4o-mini", ymd(D1))] = side[("gpt-4o-mini", ymd(D2))]
    r, rep = reconcile(db, tmp_path, usage_csv(moved, per_day=True))
    assert {(l["model"], l["date"]) for l in rep["lines"] if l["flagged"]} == {
        ("gpt-4o-mini", ymd(D1)), ("gpt-4o-mini", ymd(D2))}


def test_tenant_filter_restricts_our_side(db, loaded, tmp_path):
    acme = ours(db, "openai", tenant="acme")
    r, rep = reconcile(db, tmp_path, usage_csv(acme), "--tenant", "acme")
    assert r.returncode == 0 and rep["tenant"] == "acme", rep
    assert Decimal(rep["totals"]["our_cost_usd"]) == sum(v["cost"] for v in acme.values())
    r, rep = reconcile(db, tmp_path, usage_csv(acme))
    assert r.returncode == 1 and {l["model"] for l in rep["lines"] if l["flagged"]} == {
        "gpt-4o", "gpt-4o-mini"}


def test_totals_equal_sql_over_cost_rows_to_the_last_digit(db, loaded, tmp_path):
    side = ours(db, "openai")
    side.pop(("whisper-1", None))
    r, rep = reconcile(db, tmp_path, usage_csv(side, scale={("gpt-4o", None): (1, 3)}))
    total = db.query("SELECT sum(cost_usd)::text, sum(CASE modality WHEN 'llm' THEN"
                     " input_units + output_units ELSE input_units * 60 END)::text"
                     " FROM cost_rows WHERE provider = 'openai' AND ts >= %s AND ts < %s",
                     FROM, TO)[0]
    t = rep["totals"]
    assert t["our_cost_usd"] == total[0] and str(t["our_units"]) == total[1]
    invoice = sum(v["cost"] * (3 if m == "gpt-4o" else 1) for (m, _), v in side.items())
    assert Decimal(t["provider_cost_usd"]) == invoice
    assert Decimal(t["cost_diff_usd"]) == invoice - Decimal(total[0])
    assert rep["flagged"] == 2  # gpt-4o (rate) and whisper-1 (coverage)


BAD_FILES = [
    ("unknown provider", "model,provider,cost_usd,input_tokens,output_tokens\n"
     "gpt-4o,openai,1,2,3\ngpt-4o,anthropic,1,2,3\n", "line 3, column 2 (provider)"),
    ("missing column", "model,cost_usd,input_tokens\ngpt-4o,1,2\n",
     'line 1, column 4: missing column "output_tokens"'),
    ("bad number", "model,cost_usd,input_tokens,output_tokens\ngpt-4o,1,2,3\n"
     "gpt-4o-mini,1.2.3,2,3\n", "line 3, column 2 (cost_usd)"),
    ("bad date", "model,date,cost_usd,input_tokens,output_tokens\n"
     f"gpt-4o,{FROM},1,2,3\ngpt-4o,2024-13-01,1,2,3\n", "line 3, column 2 (date)"),
    ("json bad number", '[{"model": "gpt-4o", "cost_usd": 1, "input_tokens": 2,\n'
     '  "output_tokens": "x3"}]', "line 2, column 20 (output_tokens)"),
    ("json missing member", '[\n {"model": "gpt-4o", "cost_usd": 1, "input_tokens": 2}]',
     "line 2, column 2 (output_tokens): record 1 has no output_tokens"),
]


@pytest.mark.parametrize("what,text,where", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_name_line_and_column_and_exit_2(db, loaded, tmp_path, what, text, where):
    name = "usage.json" if text.startswith("[") else "usage.csv"
    r, _ = reconcile(db, tmp_path, text, fmt="text", name=name)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert where in r.stderr, r.stderr
    assert r.stdout == ""
    h = post(loaded, db.create_key("read"), text.encode(),
             "application/json" if name.endswith("json") else "text/csv")
    assert h.status_code == 400 and where in h.json()["error"], h.text


def test_help_names_every_option():
    r = run_vgc("reconcile", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: vgcollector reconcile --provider")
    for flag in ("--usage-file FILE", "--from DATE", "--to DATE", "--tenant T", "--project P",
                 "--threshold-pct N", "--units-agree-pct N", "--format F", "--config FILE"):
        assert f"  {flag} " in r.stdout, flag


def test_bad_options_exit_2(db, loaded, tmp_path):
    side = ours(db, "openai")
    for extra, msg in ((["--threshold-pct", "five"], "threshold_pct"),
                       (["--from", "2024-05-01T10:00:00Z"], "midnight UTC"),
                       (["--format", "xml"], "--format")):
        r, _ = reconcile(db, tmp_path, usage_csv(side), *extra, fmt="text")
        assert r.returncode == 2 and msg in r.stderr, r.stderr
    r = run_vgc("reconcile", "--provider", "openai", "--usage-file", "/nonexistent",
                "--from", FROM, "--to", TO, "--db", db.conninfo)
    assert r.returncode == 2 and "/nonexistent" in r.stderr
    r = run_vgc("reconcile", "--provider", "openai", "--usage-file", str(tmp_path / "x"),
                "--from", FROM, "--to", TO, "--db", "host=/nonexistent dbname=x")
    assert r.returncode == 2


def post(col, key, body, ctype="text/csv", **params):
    q = {k: v for k, v in {"provider": "openai", "from": FROM, "to": TO, **params}.items()
         if v is not None}
    headers = {"Content-Type": ctype}
    if isinstance(body, bytes) and body[:2] == b"\x1f\x8b":
        headers["Content-Encoding"] = "gzip"
    return col.post("/v1/reconcile?" + urlencode(q), key=key, body=body, headers=headers)


def test_http_returns_the_same_report_as_the_cli(db, loaded, tmp_path):
    side = ours(db, "openai", per_day=True)
    text = usage_csv(side, per_day=True, scale={("gpt-4o", ymd(D1)): (1, 10)})
    _, cli = reconcile(db, tmp_path, text)
    read, admin = db.create_key("read"), db.create_key("admin")
    for key in (read, admin):
        r = post(loaded, key, text.encode())
        assert r.status_code == 200, r.text
        assert jl(r.text) == cli
    # The same file as JSON, and gzipped.
    records = list(csv.DictReader(io.StringIO(text)))
    as_json = json.dumps(records).encode()
    assert jl(post(loaded, read, as_json, "application/json").text) == cli
    assert jl(post(loaded, read, gzip.compress(as_json), "application/json").text) == cli
    # Thresholds travel too, and come back as JSON numbers.
    r = post(loaded, read, text.encode(), threshold_pct="01000")
    assert r.json()["flagged"] == 0 and r.json()["threshold_pct"] == 1000


def test_http_scoped_keys_are_confined_and_ingest_keys_refused(db, loaded, tmp_path):
    acme = ours(db, "openai", tenant="acme")
    text = usage_csv(acme)
    _, cli = reconcile(db, tmp_path, text, "--tenant", "acme")
    scoped = db.create_key("read", tenant="acme")
    r = post(loaded, scoped, text.encode())
    assert r.status_code == 200 and jl(r.text) == cli and cli["flagged"] == 0
    assert jl(post(loaded, scoped, text.encode(), tenant="acme").text) == cli
    r = post(loaded, scoped, text.encode(), tenant="globex")
    assert r.status_code == 403 and "scoped to tenant" in r.json()["error"]
    proj = db.create_key("read", project="ops")
    _, cli_ops = reconcile(db, tmp_path, text, "--project", "ops")
    assert jl(post(loaded, proj, text.encode()).text) == cli_ops
    assert post(loaded, proj, text.encode(), project="voice").status_code == 403
    r = post(loaded, db.create_key("ingest"), text.encode())
    assert r.status_code == 403, r.text
    assert post(loaded, None, text.encode()).status_code == 401


def test_http_refuses_wrong_type_and_oversized_bodies(db, collectors, tmp_path):
    col = collectors(db, "--max-body-bytes", "2048")
    key = db.create_key("read")
    r = post(col, key, b"model,cost_usd,units\n", "text/plain")
    assert r.status_code == 415 and "text/csv" in r.json()["error"]
    r = post(col, key, b"x" * 4096)
    assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]
    r = post(col, key, b"model,cost_usd,input_tokens,output_tokens\n", provider="Open AI")
    assert r.status_code == 400 and r.json()["error"].startswith("provider")
    r = post(col, key, b"model,cost_usd,input_tokens,output_tokens\n", to=None)
    assert r.status_code == 400 and r.json()["error"] == "to: required"


def test_text_report_aligns_and_csv_follows_rollup_rules(db, loaded, tmp_path):
    side = ours(db, "openai")
    text = usage_csv(side, scale={("gpt-4o", None): (1, 10)}) + "=cmd,1,1,1,1\n"
    r, _ = reconcile(db, tmp_path, text, fmt="text")
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"reconcile openai {FROM} .. {TO}")
    table = lines[2:2 + 1 + 4 + 2]  # header, 4 lines, rule, TOTAL
    assert table[0].split()[:3] == ["MODEL", "OUR", "UNITS"]
    assert len({len(l) for l in table}) == 1, table  # every row as wide: aligned
    assert table[-1].startswith("TOTAL") and set(table[-2]) == {"-"}
    r, _ = reconcile(db, tmp_path, text, fmt="csv")
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0][:3] == ["model", "our_units", "provider_units"]
    assert ["'=cmd"] == [x[0] for x in rows[1:] if "cmd" in x[0]]
    assert r.returncode == 1
