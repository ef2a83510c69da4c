"""The row's field table (common/row_fields.c, printed by build/row-fields)
against the live cost_rows columns after every migration: a migration that
forgets a field, or a field the table forgets, fails here."""

import json
import subprocess

from conftest import BUILD

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
    assert len(fields) == 24
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
