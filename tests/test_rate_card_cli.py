"""`vgcollector prices ls | set | rm | default-markup | plan | sync`: the rate
card from the command line. set upserts by scope as the HTTP call does, ls
prints each rule with its id, scope and token, bad values are refused naming
the flag, and sync lists fixed rules priced under today's book cost."""

import json
from decimal import Decimal

from conftest import make_row, run_vgc

FEED = {
    "provider": "deepgram", "currency": "USD",
    "models": [{"id": "nova-3", "modality": "stt", "rates": [
        {"meter": "audio_input", "amount": "0.0043", "unit": "minute",
         "effective_from": "2026-01-01"}]}],
}


def prices(db, *args):
    return run_vgc("prices", *args, "--db", db.conninfo)


def test_set_ls_rm_default_and_plan(db, collector):
    r = prices(db, "set", "--provider", "deepgram", "--model", "deepgram/nova-3",
               "--fixed", "0.0060", "--unit", "minute")
    assert r.returncode == 0, r.stderr
    rule_id = int(r.stdout.splitlines()[0])
    assert "created" in r.stdout
    r = prices(db, "set", "--provider", "deepgram", "--model", "nova-3", "--markup", "1.3")
    assert r.returncode == 0 and int(r.stdout.splitlines()[0]) == rule_id, r.stderr
    assert "replaced" in r.stdout
    assert prices(db, "set", "--tenant", "acme", "--markup", "2", "--basis", "book").returncode == 0
    assert prices(db, "plan", "acme", "growth").returncode == 0
    assert prices(db, "default-markup", "1.10").returncode == 0
    ls = prices(db, "ls")
    assert ls.returncode == 0, ls.stderr
    assert "default markup 1.1" in ls.stdout
    line = next(x for x in ls.stdout.splitlines() if x.startswith(f"{rule_id} "))
    assert "provider=deepgram model=nova-3" in line and line.endswith("cost_plus:1.3")
    assert any("tenant=acme basis=book" in x and x.endswith("cost_plus:2")
               for x in ls.stdout.splitlines())
    assert "tenant acme is on growth" in ls.stdout
    # The card rates the next row.
    key = db.create_key("ingest")
    row = make_row(0, id="dg", modality="stt", provider="deepgram", model_id="nova-3",
                   input_units=2, output_units=0, cost_usd=0.01, rated_price_usd=999,
                   metadata={}, tenant_id=None)
    assert collector.post("/v1/ingest", json=[row], key=key).json()["accepted"] == 1
    assert db.query("SELECT rated_price_usd, rate_rule FROM cost_rows")[0] == \
        (Decimal("0.013"), "cost_plus:1.3")
    assert prices(db, "rm", str(rule_id)).returncode == 0
    r = prices(db, "rm", str(rule_id))
    assert r.returncode == 1 and "no such rule" in r.stderr


def test_bad_values_are_refused_naming_the_flag(db):
    for args, msg in [
        (["--markup", "-1"], "--markup \"-1\": must not be negative"),
        (["--fixed", "0.1", "--unit", "hour"], "unit \"hour\""),
        (["--markup", "1", "--fixed", "1", "--unit", "minute"], "markup and fixed"),
        (["--modality", "video", "--markup", "1"], "modality \"video\""),
    ]:
        r = prices(db, "set", *args)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
    r = prices(db, "default-markup", "abc")
    assert r.returncode == 2 and "default-markup \"abc\"" in r.stderr
    r = prices(db, "set", "--markup", "1", "--expected-revision", "999")
    assert r.returncode == 1 and "expected_revision 999" in r.stderr
    assert db.scalar("SELECT count(*) FROM rate_card_rules") == 0


def test_sync_lists_fixed_rules_under_todays_book_cost(db, tmp_path):
    feed = tmp_path / "dg.json"
    feed.write_text(json.dumps(FEED))
    assert prices(db, "import", str(feed)).returncode == 0
    assert prices(db, "set", "--provider", "deepgram", "--fixed", "0.006",
                  "--unit", "minute").returncode == 0
    r = prices(db, "sync")
    assert r.returncode == 0 and "at or above" in r.stdout, r.stdout
    # 0.00007 a second is 0.0042 a minute: under the book's 0.0043.
    assert prices(db, "set", "--provider", "deepgram", "--model", "nova-3", "--fixed",
                  "0.00007", "--unit", "second").returncode == 0
    r = prices(db, "sync")
    assert r.returncode == 1, r.stdout
    assert "fixed:0.00007/second is under the book's" in r.stdout
    assert "deepgram/nova-3" in r.stdout and "fixed:0.006/minute" not in r.stdout
