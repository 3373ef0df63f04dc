import sqlite3

import pytest
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.db import SCHEMA_VERSION, migrate, migration_status, open_database
from klaviyo_etl.db import migrations as m
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


def test_exports_are_recorded_per_folder_and_file_apart_from_the_public_tables(tmp_path):
    db = open_database(tmp_path / "k.db")
    assert db["_exports"].pks == ["target", "item"]
    assert set(db["_exports"].columns_dict) == {"target", "item", "marker", "rows", "exported_at"}
    public = m.public_tables(db)
    assert PUBLIC_TABLES <= set(public)
    assert not [t for t in public if t.startswith(("_", "rollup_"))]


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


def _migrate_as_before(db, functions) -> None:
    """How klaviyo-etl recorded migrations before they ran through sqlite-utils' Migrations:
    `_migrations` created inside the first one's transaction, one row per version."""
    for version, fn in enumerate(functions, start=1):
        with db.atomic():
            db["_migrations"].create(
                {"version": int, "name": str, "applied_at": str}, pk="version", if_not_exists=True
            )
            fn(db)
            db["_migrations"].insert(
                {"version": version, "name": fn.__name__, "applied_at": "2026-01-01T00:00:00+00:00"}
            )


def test_a_database_recorded_by_the_earlier_code_opens_and_migrates(tmp_path):
    path = tmp_path / "old.db"
    old = open_database(path, migrate=False)
    # Written by a release that knew m001..m004 only, with a row synced into it.
    _migrate_as_before(
        old, [m.m001_resources, m.m002_sync_bookkeeping, m.m003_reporting_api, m.m004_report_rollups]
    )
    old["metrics"].insert({"id": "m1", "name": "Placed Order"})
    old.close()

    db = open_database(path)  # applies what is pending through the new code
    assert "_deferred_indexes" in db.table_names()
    assert "_sqlite_migrations" not in db.table_names()  # the record stays in _migrations
    rows = list(db["_migrations"].rows_where(order_by="version"))
    assert [(r["version"], r["name"]) for r in rows] == [
        (i, name) for i, name in enumerate(m.MIGRATIONS.names(), start=1)
    ]
    assert rows[0]["applied_at"] == "2026-01-01T00:00:00+00:00"  # earlier records untouched
    assert db["metrics"].count == 1
    assert migrate(db) == []
    assert all(row["applied_at"] for row in migration_status(db))


def test_a_complete_database_from_the_earlier_code_needs_no_migration(tmp_path):
    path = tmp_path / "old.db"
    old = open_database(path, migrate=False)
    _migrate_as_before(old, [getattr(m, n) for n in m.MIGRATIONS.names()])
    schema = old.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    old.close()
    db = open_database(path)
    assert migrate(db) == []
    assert db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == schema


def test_the_schema_from_empty_matches_the_earlier_recording(tmp_path):
    old = open_database(tmp_path / "old.db", migrate=False)
    _migrate_as_before(old, [getattr(m, n) for n in m.MIGRATIONS.names()])
    new = open_database(tmp_path / "new.db")
    query = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
    assert new.execute(query).fetchall() == old.execute(query).fetchall()


def test_events_stored_with_a_space_separated_datetime_are_rewritten_and_recounted(tmp_path):
    """m013 (LIVE_BEHAVIOUR.md §9): a file synced before `stored_time` holds some datetimes as
    Klaviyo sent them; they are rewritten in the one shape, and the rollups, built while they
    had no hour, are rebuilt at their next refresh."""
    from klaviyo_etl.db.rollups import refresh_rollups

    path = tmp_path / "old.db"
    old = open_database(path, migrate=False)
    _migrate_as_before(old, [getattr(m, n) for n in m.MIGRATIONS.names()[:12]])
    old["metrics"].insert({"id": "m1", "name": "Viewed Product"})
    sent = ["2026-06-23T10:00:00+00:00", "2026-06-23 10:15:23.918411+00:00", "2026-06-23 11:00:00+00:00"]
    old["events"].insert_all(
        {"id": f"e{i}", "metric_id": "m1", "profile_id": "p1", "datetime": d} for i, d in enumerate(sent)
    )
    refresh_rollups(old)
    hours = "SELECT hour, sum(events) FROM rollup_metric_hours GROUP BY hour ORDER BY hour"
    assert old.execute(hours).fetchall() == [("2026-06-23 10", 1), ("2026-06-23 11", 1), ("2026-06-23T10", 1)]
    old.close()

    db = open_database(path)
    assert [r[0] for r in db.execute("SELECT datetime FROM events ORDER BY id")] == [
        "2026-06-23T10:00:00+00:00",
        "2026-06-23T10:15:23.918411+00:00",
        "2026-06-23T11:00:00+00:00",
    ]
    assert db.execute("SELECT count(*) FROM rollup_dirty").fetchone()[0] == 0  # no row marked one by one
    refresh_rollups(db, "")  # what a sync's end asks for: only what changed
    assert db.execute(hours).fetchall() == [("2026-06-23T10", 2), ("2026-06-23T11", 1)]


def test_many_events_to_rewrite_have_their_datetime_indexes_built_again_as_they_were(tmp_path):
    """m013 drops the indexes on `datetime` while it rewrites many rows, and builds them again."""
    path = tmp_path / "old.db"
    old = open_database(path, migrate=False)
    _migrate_as_before(old, [getattr(m, n) for n in m.MIGRATIONS.names()[:12]])
    old["events"].insert_all(
        {"id": f"e{i}", "metric_id": "m1", "datetime": f"2026-06-23 10:{i % 60:02d}:{i % 59:02d}+00:00"}
        for i in range(10_001)
    )
    schema = "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'events' ORDER BY name"
    before = old.execute(schema).fetchall()
    old.close()
    db = open_database(path)
    # m014, after m013, replaces the update trigger m013 put back: it is then a new file's.
    trigger = "SELECT sql FROM sqlite_master WHERE name = 'events_rollup_update'"
    fresh = open_database(tmp_path / "fresh.db").execute(trigger).fetchone()[0]
    assert db.execute(schema).fetchall() == [
        (kind, name, fresh if name == "events_rollup_update" else sql) for kind, name, sql in before
    ]
    assert (
        db.execute("SELECT count(*) FROM events WHERE substr(datetime, 11, 1) = 'T'").fetchone()[0] == 10_001
    )
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_several_processes_opening_a_database_that_needs_migrations_all_succeed(tmp_path):
    """After an upgrade, the cron's sync and a `report` or `status` typed meanwhile open the
    file at once; each applied the pending migrations itself, and the one whose read snapshot
    was overtaken by another's commit failed at once with "database is locked" (SQLite does not
    wait for a reader that wants to write), shown as an unexpected error."""
    import subprocess
    import sys

    for attempt in range(3):
        path = tmp_path / f"old{attempt}.db"
        old = open_database(path, migrate=False)
        _migrate_as_before(old, [getattr(m, n) for n in m.MIGRATIONS.names()[:11]])
        old["events"].insert_all(
            {"id": f"e{i}", "metric_id": "m1", "datetime": f"2026-06-23 10:{i % 60:02d}:00+00:00"}
            for i in range(3000)
        )
        old.close()
        opener = "import sys; from klaviyo_etl.db import open_database; open_database(sys.argv[1])"
        processes = [
            subprocess.Popen([sys.executable, "-c", opener, str(path)], stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        errors = [p.communicate(timeout=60)[1] for p in processes]
        assert [p.returncode for p in processes] == [0] * 4, errors
        db = open_database(path)
        assert [
            r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY version")
        ] == m.MIGRATIONS.names()


def test_a_database_another_writer_keeps_busy_past_the_timeout_is_a_one_line_error(tmp_path, monkeypatch):
    from klaviyo_etl.db import database
    from klaviyo_etl.errors import DatabaseError

    path = tmp_path / "old.db"
    old = open_database(path, migrate=False)
    _migrate_as_before(old, [getattr(m, n) for n in m.MIGRATIONS.names()[:11]])
    old.execute("BEGIN IMMEDIATE")  # another process, mid-write
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 100)
    try:
        with pytest.raises(DatabaseError, match="stayed busy: another klaviyo-etl is writing to it"):
            open_database(path)
    finally:
        old.execute("ROLLBACK")
    migrated = open_database(path)
    assert migrated.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(m.MIGRATIONS.names())
