"""Privacy deletions: a profile Klaviyo deleted keeps only its id and deleted_at, its events
stop counting, and `purge --deleted` removes what is left."""

from __future__ import annotations

from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.db import open_database
from klaviyo_etl.db.rollups import ensure_rollups
from klaviyo_etl.sync.engine import SyncOptions, run_sync
from tests.helpers.sync import assert_matches_sandbox, settings_for

PERSONAL = ("email", "phone_number", "first_name", "last_name", "city", "region", "country", "attributes")


def _profile_with_events_and_memberships(db, data) -> str:
    members = {p for group in data.members.values() for p in group}
    rows = db.execute(
        "SELECT profile_id, count(*) n FROM events WHERE profile_id IS NOT NULL GROUP BY profile_id"
        " ORDER BY n DESC, profile_id"
    ).fetchall()
    return next(pid for pid, _ in rows if pid in members)


def test_a_privacy_deletion_erases_the_profile_and_its_events_stop_counting(sandbox_factory, tmp_path):
    with sandbox_factory("small") as sb:
        db_path = tmp_path / "k.db"
        settings = settings_for(sb.server, sb.config, db_path)
        assert run_sync(settings, SyncOptions()).ok
        db = open_database(db_path)
        gone = _profile_with_events_and_memberships(db, sb.data)
        ensure_rollups(db)
        counted_before = db.execute("SELECT sum(events) FROM rollup_metric_hours").fetchone()[0]
        assert db["profiles"].get(gone)["email"]
        db.close()

        removed = sb.data.forget_profile(gone)
        assert removed > 0
        result = run_sync(settings, SyncOptions(reconcile=True))
        assert result.ok, [(s.stream, s.error) for s in result.streams]

        assert_matches_sandbox(db_path, sb.data)  # live events equal the server's, too
        db = open_database(db_path)
        row = db["profiles"].get(gone)
        assert row["deleted_at"] is not None
        assert {c: row[c] for c in PERSONAL} == dict.fromkeys(PERSONAL)
        live = db.execute(
            "SELECT count(*) FROM events WHERE profile_id = ? AND deleted_at IS NULL", [gone]
        ).fetchone()[0]
        assert live == 0
        for table in ("list_members", "segment_members"):
            assert not db.execute(
                f"SELECT 1 FROM {table} WHERE profile_id = ? AND (deleted_at IS NULL OR email IS NOT NULL)",
                [gone],
            ).fetchall()
        ensure_rollups(db)
        counted_after = db.execute("SELECT sum(events) FROM rollup_metric_hours").fetchone()[0]
        assert counted_after == counted_before - removed
        assert not db.execute(
            "SELECT 1 FROM profiles WHERE deleted_at IS NOT NULL AND (email IS NOT NULL OR phone_number IS NOT NULL)"
        ).fetchall()
        db.close()

        env = {"KLAVIYO_API_KEY": sb.config.api_key}
        first = CliRunner().invoke(app, ["--db", str(db_path), "purge", "--deleted"], env=env)
        assert first.exit_code == 0, first.output
        assert f"events: {removed} deleted" in first.output and "profiles: 1 deleted" in first.output
        again = CliRunner().invoke(app, ["--db", str(db_path), "purge", "--deleted"], env=env)
        assert again.exit_code == 0 and "profiles: 0 deleted" in again.output
        db = open_database(db_path)
        assert db["profiles"].count_where("id = ?", [gone]) == 0
        assert db["events"].count_where("profile_id = ?", [gone]) == 0


def test_purge_needs_to_be_told_what(tiny_db_path):
    result = CliRunner().invoke(app, ["--db", str(tiny_db_path), "purge"])
    assert result.exit_code == 2 and "--deleted" in result.output
