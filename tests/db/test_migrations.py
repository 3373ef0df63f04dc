import sqlite3

import pytest
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.db import SCHEMA_VERSION, migrate, migration_status, open_database
from klaviyo_etl.errors import DatabaseError

PUBLIC_TABLES = {
    "metrics",
    "events",
    "profiles",
    "lists",
    "list_members",
    "segments",
    "segment_members",
    "campaigns",
    "campaign_messages",
    "flows",
    "flow_actions",
    "flow_messages",
    "forms",
    "templates",
    "tags",
    "sync_state",
    "sync_runs",
}


def test_creates_public_tables_with_id_and_raw_attributes(tmp_path):
    db = open_database(tmp_path / "k.db")
    assert PUBLIC_TABLES <= set(db.table_names())
    for name in PUBLIC_TABLES - {"sync_state", "sync_runs", "list_members", "segment_members"}:
        table = db[name]
        assert table.pks == ["id"], name
        assert "attributes" in table.columns_dict and "deleted_at" in table.columns_dict
    assert db["list_members"].pks == ["list_id", "profile_id"]
    assert db.journal_mode == "wal"


def test_migrate_is_idempotent(tmp_path):
    path = tmp_path / "k.db"
    db = open_database(path, migrate=False)
    assert len(migrate(db)) == SCHEMA_VERSION
    assert migrate(db) == []
    db["metrics"].insert({"id": "m1", "name": "Placed Order"})
    db2 = open_database(path)
    assert migrate(db2) == []
    assert db2["metrics"].count == 1
    assert all(row["applied_at"] for row in migration_status(db2))


def test_refuses_a_database_from_a_newer_version(tmp_path):
    path = tmp_path / "k.db"
    db = open_database(path)
    db["_migrations"].insert({"version": SCHEMA_VERSION + 1, "name": "m999_future", "applied_at": "x"})
    with pytest.raises(DatabaseError, match="newer than this klaviyo-etl"):
        open_database(path)


def test_cli_migrate_and_status(tmp_path):
    path = tmp_path / "k.db"
    runner = CliRunner()
    first = runner.invoke(app, ["--db", str(path), "migrate"])
    assert first.exit_code == 0 and "applied" in first.output
    again = runner.invoke(app, ["--db", str(path), "migrate"])
    assert again.exit_code == 0 and "up to date" in again.output
    status = runner.invoke(app, ["--db", str(path), "migrate", "status"])
    assert "m001_resources" in status.output


def test_cli_migrate_on_newer_file_is_one_line_error(tmp_path):
    path = tmp_path / "k.db"
    open_database(path)["_migrations"].insert({"version": 99, "name": "x", "applied_at": "x"})
    result = CliRunner().invoke(app, ["--db", str(path), "migrate"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "newer" in result.output


def test_not_a_database_file_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_text("this is not sqlite" * 100)
    result = CliRunner().invoke(app, ["--db", str(path), "migrate"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert path.read_text().startswith("this is not sqlite")  # untouched
    with pytest.raises((DatabaseError, sqlite3.DatabaseError)):
        open_database(path)
