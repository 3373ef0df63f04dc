"""Every public table has an Arrow schema, column for column, typed by one set of rules."""

from __future__ import annotations

import pyarrow as pa
import sqlite_utils

from klaviyo_etl.db.migrations import migrate, public_tables
from klaviyo_etl.export.schema import (
    ACCOUNT_PARTITION,
    COLUMNS,
    ORDER_BY,
    TIME,
    schema_fingerprint,
    table_schema,
)


def _migrated() -> sqlite_utils.Database:
    db = sqlite_utils.Database(memory=True)
    migrate(db)
    return db


def test_every_public_table_and_column_has_an_arrow_type():
    db = _migrated()
    tables = public_tables(db)
    assert "events" in tables and "_exports" not in tables and "rollup_state" not in tables
    assert set(COLUMNS) == set(tables)
    for table in tables:
        assert list(COLUMNS[table]) == [c.name for c in db[table].columns], table


def test_types_follow_the_documented_rules():
    for table, columns in COLUMNS.items():
        for name, kind in columns.items():
            where = f"{table}.{name}"
            if name.endswith("_at") or name in ("created", "updated", "datetime", "last_event_date"):
                assert kind == TIME, where
            elif name == "id" or name.endswith("_id"):
                assert kind == (pa.int64() if table == "sync_runs" and name == "id" else pa.string()), where
            elif name in ("attributes", "statistics", "extra"):
                assert kind == pa.json_(), where
    assert COLUMNS["events"]["value"] == pa.float64()
    assert COLUMNS["profiles"]["predicted_clv"] == pa.float64()
    assert COLUMNS["campaigns"]["archived"] == pa.bool_()
    assert TIME == pa.timestamp("us", tz="UTC")


def test_order_keys_are_columns_of_their_table():
    for table, keys in ORDER_BY.items():
        assert set(keys) <= set(COLUMNS[table]), table


def test_the_account_partition_is_no_column_of_any_table():
    # Several accounts' files sit under `account=NAME` folders; BigQuery refuses a hive key
    # that is also a column of the files.
    assert all(ACCOUNT_PARTITION not in columns for columns in COLUMNS.values())
    assert table_schema("campaigns").names == list(COLUMNS["campaigns"])
    assert schema_fingerprint("campaigns") != schema_fingerprint("flows")
