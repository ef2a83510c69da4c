"""The row's field table (common/row_fields.c, printed by build/row-fields)
against the live cost_rows columns after every migration: a migration that
forgets a field, or a field the table forgets, fails here."""

import json
import subprocess

from conftest import BUILD, ROLLUP_SHAPE

# Columns the collector fills itself, not fields of the wire row: the key that
# stored the row, and when. Name -> (data_type, not null, default).
COLLECTOR_COLUMNS = {
    "key_id": ("bigint", False, None),
    "received_at": ("timestamp with time zone", True, "now()"),
}


def field_table():
    out = subprocess.run([f"{BUILD}/row-fields"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def expected_columns():
    want = {f["column"]: (f["sql_type"], f["not_null"], f["default"]) for f in field_table()}
    want.update(COLLECTOR_COLUMNS)
    return want


def live_columns(db):
    rows = db.query(
        "SELECT column_name, data_type, is_nullable = 'NO', column_default"
        " FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'cost_rows'"
    )
    return {name: (typ, notnull, default) for name, typ, notnull, default in rows}


def schema_mismatches(db):
    """One line per column where the table and the database disagree."""
    want, have = expected_columns(), live_columns(db)
    out = []
    for col in sorted(set(want) | set(have)):
        if col not in have:
            out.append(f"{col}: in the field table, missing from cost_rows")
        elif col not in want:
            out.append(f"{col}: in cost_rows, missing from the field table")
        elif want[col] != have[col]:
            out.append(f"{col}: field table says {want[col]}, cost_rows has {have[col]}")
    return out


def test_field_table_matches_cost_rows(db):
    fields = field_table()
    assert len(fields) == 27
    assert [f["name"] for f in fields][:3] == ["id", "timestamp", "modality"]
    assert schema_mismatches(db) == []


def test_schema_check_catches_a_column_added_by_hand(db):
    db.query("ALTER TABLE cost_rows ADD COLUMN budget_id text")
    assert schema_mismatches(db) == ["budget_id: in cost_rows, missing from the field table"]


def test_schema_check_catches_a_changed_nullability(db):
    db.query("ALTER TABLE cost_rows ALTER COLUMN model_id SET NOT NULL")
    assert schema_mismatches(db) == [
        "model_id: field table says ('text', False, None), cost_rows has ('text', True, None)"
    ]


ROLLUP_TABLES = {
    "cost_rollup_hourly": ["hour"] + ROLLUP_SHAPE["keys"],
    "cost_rollup_daily": ["day"] + ROLLUP_SHAPE["keys"],
    "cost_rollup_tenant_daily": ["day", "tenant_id", "project"],
    "cost_rollup_tenant_hourly": ["hour", "tenant_id", "project"],
    "vgc_rollup_deltas": ["hour"] + ROLLUP_SHAPE["keys"] + ["stored_at"],
}
ROLLUP_SQL_TYPES = {"count": "bigint", "money": "numeric", "units": "numeric"}


def rollup_mismatches(db):
    """One line per rollup table whose measure columns are not the rollup
    shape's stored measures (name, type, NOT NULL DEFAULT 0)."""
    want = {m["name"]: (ROLLUP_SQL_TYPES[m["kind"]], True, "0")
            for m in ROLLUP_SHAPE["measures"] if m["from_rows"]}
    out = []
    for table, keys in ROLLUP_TABLES.items():
        rows = db.query(
            "SELECT column_name, data_type, is_nullable = 'NO', column_default"
            " FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s", table)
        have = {name: (typ, notnull, default) for name, typ, notnull, default in rows
                if name not in keys}
        if have != want:
            out.append(f"{table}: shape says {sorted(want.items())}, table has {sorted(have.items())}")
    return out


def test_rollup_shape_matches_every_rollup_table(db):
    """collector/rollup_shape.c is the one list of the rollup measures: every
    rollup table (hourly, daily, and the tenant summaries) holds exactly its
    stored measures."""
    assert "requests" in [m["name"] for m in ROLLUP_SHAPE["measures"]]
    assert rollup_mismatches(db) == []


def test_live_hours_view_carries_every_key_and_stored_measure(db):
    """vgc_rollup_hourly_live, what every read sums, has the hourly table's
    keys and every stored measure: a measure added to the shape and the
    tables but not to the view would read as missing."""
    want = ["hour"] + ROLLUP_SHAPE["keys"] + [m["name"] for m in ROLLUP_SHAPE["measures"]
                                               if m["from_rows"]]
    have = [r[0] for r in db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema ="
        " current_schema() AND table_name = 'vgc_rollup_hourly_live' ORDER BY ordinal_position")]
    assert sorted(have) == sorted(want)


def test_rollup_shape_check_catches_a_measure_added_by_hand(db):
    db.query("ALTER TABLE cost_rollup_daily ADD COLUMN tips numeric NOT NULL DEFAULT 0")
    bad = rollup_mismatches(db)
    assert len(bad) == 1 and bad[0].startswith("cost_rollup_daily:") and "tips" in bad[0]
