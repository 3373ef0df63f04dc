"""Rollups built beside a first load's index builds (`build_beside`) against a full rebuild
the old way on the same data: every rollup table, row for row, float for float."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import closing

import pytest
import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.db import open_database, rollups
from klaviyo_etl.db.repositories import Repository
from klaviyo_etl.db.rollups import (
    ENTITY_TABLES,
    PREBUILT_KEY,
    ROLLUP_TABLES,
    build_beside,
    ensure_rollups,
    refresh_rollups,
)
from klaviyo_etl.errors import ConfigError
from tests.helpers.sync import sync_ok

STAMP = "2026-01-01T00:00:00+00:00"


def snapshot(db) -> dict[str, list[tuple]]:
    return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in ROLLUP_TABLES}


@pytest.fixture(scope="module")
def synced(sandbox_factory, tmp_path_factory):
    """A first load of a sandbox account (metrics and events), then what the sandbox does not
    send: events flagged deleted or gone, events without a metric or a profile, and values
    with cents (whose float sums depend on the order they are added in)."""
    path = tmp_path_factory.mktemp("prebuild") / "synced.db"
    with sandbox_factory("small") as sb:
        sync_ok(sb.server, sb.config, path, streams=["metrics", "events"])
    db = open_database(path)
    with db.conn:
        rowids = [r[0] for r in db.execute("SELECT rowid FROM events ORDER BY rowid")]
        db.execute(f"UPDATE events SET deleted_at = '{STAMP}' WHERE rowid % 17 = 0")
        db.execute("DELETE FROM events WHERE rowid % 29 = 0")
        db.execute("UPDATE events SET metric_id = NULL WHERE rowid % 31 = 0")
        db.execute("UPDATE events SET profile_id = NULL WHERE rowid % 37 = 0")
        db.execute("UPDATE events SET value = (rowid % 1000) / 100.0 + 0.01 WHERE rowid % 3 = 0")
    db.close()
    assert len(rowids) > 2000
    return path


def copy_of(source, tmp_path, name):
    db = open_database(source)
    db.execute(f"VACUUM INTO '{tmp_path / name}'")
    db.close()
    return open_database(tmp_path / name)


def the_old_way(source, conversion=None) -> dict[str, list[tuple]]:
    """A full rebuild on one connection, pass after pass: a copy in memory has no file for a
    second connection to open, so neither `build_beside` nor the rebuild's reader runs."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    with closing(sqlite3.connect(source)) as disk:
        disk.backup(conn)
    db = sqlite_utils.Database(conn)
    db.execute("DELETE FROM rollup_state")
    assert refresh_rollups(db, None, conversion=conversion).mode == "full"
    out = snapshot(db)
    db.close()
    return out


def as_a_first_load_ends(source, tmp_path, change=None, conversion=None, cache_kib=None):
    """A copy as the events stream's end finds it (no rollups yet, the events' indexes
    deferred), taken through `build_beside` as the stream's finish does; `change` runs in
    the same transaction first, like a reconciliation flagging rows deleted."""
    db = copy_of(source, tmp_path, "new.db")
    if cache_kib is not None:
        db.execute(f"PRAGMA cache_size = -{cache_kib}")
    for table in ROLLUP_TABLES:
        db.execute(f"DELETE FROM {table}")
    db.execute("DELETE FROM rollup_state")
    repo = Repository(db)
    with db.atomic():
        assert repo.defer_indexes("events") >= 2
    with db.atomic():
        if change:
            change(db)
        assert build_beside(db, lambda: repo.restore_indexes("events"), conversion=conversion) >= 2
    return db


def test_rollups_built_beside_the_index_builds_equal_a_full_rebuild(synced, tmp_path):
    old = the_old_way(synced)
    db = as_a_first_load_ends(synced, tmp_path)
    assert PREBUILT_KEY in dict(db.execute("SELECT key, value FROM rollup_state").fetchall())
    assert ensure_rollups(db).mode == "full"
    new = snapshot(db)
    assert all(old[t] for t in ROLLUP_TABLES), {t: len(v) for t, v in old.items()}
    assert new == old
    # The mark is spent: a later rebuild (a new conversion metric) does the whole pass again.
    assert PREBUILT_KEY not in dict(db.execute("SELECT key, value FROM rollup_state").fetchall())
    assert refresh_rollups(db, None).mode == "full"
    assert snapshot(db) == old
    db.close()


def prebuilt_tables(db) -> list[str]:
    state = dict(db.execute("SELECT key, value FROM rollup_state").fetchall())
    return json.loads(state[PREBUILT_KEY])["tables"]


def test_the_rebuild_after_a_prebuild_reads_the_events_no_more(synced, tmp_path, monkeypatch):
    old = the_old_way(synced)
    db = as_a_first_load_ends(synced, tmp_path)
    assert prebuilt_tables(db) == ["rollup_metric_hours", "rollup_activity_days", *ENTITY_TABLES]

    def not_again(*args):
        raise AssertionError("passed over the events again")

    monkeypatch.setattr(rollups, "_metric_hours", not_again)
    monkeypatch.setattr(rollups, "_rebuild_activity_full", not_again)
    monkeypatch.setattr(rollups, "_rebuild_entities", not_again)
    monkeypatch.setattr(rollups, "_rebuild_channels", not_again)
    stats = ensure_rollups(db)
    assert (stats.mode, stats.messages, stats.forms) == ("full", *counts_of(old))
    assert snapshot(db) == old
    db.close()


def test_message_and_form_rollups_whose_sorts_spill_to_files_are_the_same_floats(synced, tmp_path):
    old = the_old_way(synced)
    db = as_a_first_load_ends(synced, tmp_path, cache_kib=40)  # the sorter's least: every GROUP BY spills
    assert set(ENTITY_TABLES) <= set(prebuilt_tables(db))
    assert {t: v for t, v in snapshot(db).items() if t in ENTITY_TABLES} == {t: old[t] for t in ENTITY_TABLES}
    db.close()


def counts_of(rollup: dict[str, list[tuple]]) -> tuple[int, int]:
    """The messages and forms a rebuild reports, from its `rollup_entities` rows."""
    kinds = [row[0] for row in rollup["rollup_entities"]]
    return kinds.count("message"), kinds.count("form")


def test_message_and_form_rollups_prebuilt_for_another_conversion_metric_are_built_again(
    synced, tmp_path, monkeypatch
):
    with closing(sqlite3.connect(synced)) as disk:
        other = disk.execute(
            "SELECT name FROM metrics WHERE name != ? ORDER BY name LIMIT 1", [kc.PLACED_ORDER]
        ).fetchone()[0]
    old = the_old_way(synced, conversion=other)
    assert old != the_old_way(synced)  # the setting changes the conversions counted
    db = as_a_first_load_ends(synced, tmp_path)  # the default rule, as the stream's end knows it
    assert ensure_rollups(db, conversion=other).mode == "full"
    assert snapshot(db) == old
    db.close()


def test_a_conversion_setting_matching_no_metric_prebuilds_the_hours_and_fails_in_the_refresh(
    synced, tmp_path
):
    db = as_a_first_load_ends(synced, tmp_path, conversion="No Such Metric")
    assert prebuilt_tables(db) == ["rollup_metric_hours", "rollup_activity_days"]
    with pytest.raises(ConfigError, match="No Such Metric"):
        ensure_rollups(db, conversion="No Such Metric")
    db.close()


def test_past_the_profiles_a_prebuild_follows_only_the_hours_are_prebuilt(synced, tmp_path, monkeypatch):
    old = the_old_way(synced)
    monkeypatch.setattr(rollups, "PREBUILD_MAX_PROFILES", 3)
    db = as_a_first_load_ends(synced, tmp_path)
    assert prebuilt_tables(db) == ["rollup_metric_hours", *ENTITY_TABLES]
    assert ensure_rollups(db).mode == "full"
    assert snapshot(db) == old
    db.close()


def test_events_changed_after_the_prebuild_are_counted(synced, tmp_path):
    db = as_a_first_load_ends(synced, tmp_path)
    assert PREBUILT_KEY in dict(db.execute("SELECT key, value FROM rollup_state").fetchall())
    metric = db.execute("SELECT metric_id FROM events WHERE metric_id IS NOT NULL LIMIT 1").fetchone()[0]
    with db.conn:
        db.execute(f"UPDATE events SET deleted_at = '{STAMP}' WHERE rowid % 11 = 0 AND deleted_at IS NULL")
        db["events"].insert(
            {"id": "late", "metric_id": metric, "datetime": dt.datetime.now(dt.UTC).isoformat(), "value": 0.3}
        )
    db.execute(f"VACUUM INTO '{tmp_path / 'changed.db'}'")
    assert ensure_rollups(db).mode == "full"
    assert snapshot(db) == the_old_way(tmp_path / "changed.db")
    db.close()


def test_a_change_in_the_index_builds_transaction_stores_no_prebuild(synced, tmp_path):
    def flag_some_deleted(db):
        db.execute(f"UPDATE events SET deleted_at = '{STAMP}' WHERE rowid % 13 = 0 AND deleted_at IS NULL")

    db = as_a_first_load_ends(synced, tmp_path, change=flag_some_deleted)
    assert PREBUILT_KEY not in dict(db.execute("SELECT key, value FROM rollup_state").fetchall())
    db.execute(f"VACUUM INTO '{tmp_path / 'changed.db'}'")
    assert ensure_rollups(db).mode == "full"
    assert snapshot(db) == the_old_way(tmp_path / "changed.db")
    db.close()


def test_no_prebuild_once_the_rollups_exist(synced, tmp_path):
    db = copy_of(synced, tmp_path, "kept.db")
    ensure_rollups(db)
    before = snapshot(db)
    with db.atomic():
        assert build_beside(db, lambda: "done") == "done"
    assert PREBUILT_KEY not in dict(db.execute("SELECT key, value FROM rollup_state").fetchall())
    assert snapshot(db) == before
    db.close()


def test_a_first_load_ends_with_the_rollups_a_full_rebuild_gives(sandbox_factory, tmp_path):
    path = tmp_path / "first.db"
    with sandbox_factory("small") as sb:
        sync_ok(sb.server, sb.config, path, streams=["metrics", "events"])
    db = open_database(path)
    state = dict(db.execute("SELECT key, value FROM rollup_state").fetchall())
    assert "watermark" in state and PREBUILT_KEY not in state
    assert not db.execute("SELECT 1 FROM _deferred_indexes").fetchall()
    after_sync = snapshot(db)
    db.close()
    assert after_sync["rollup_metric_hours"] and after_sync["rollup_entity_days"]
    assert after_sync == the_old_way(path)


def test_a_first_load_prebuilds_the_message_rollups_for_the_configured_conversion_metric(
    sandbox_factory, tmp_path, monkeypatch
):
    """The stream's end builds them for `[reports] conversion_metric`, so the refresh after
    the sync keeps them instead of building them a second time."""
    builds = []
    rebuild = rollups._rebuild_entity_tables
    monkeypatch.setattr(
        rollups, "_rebuild_entity_tables", lambda db, days: builds.append(1) or rebuild(db, days)
    )
    with sandbox_factory("small") as sb:
        sync_ok(sb.server, sb.config, tmp_path / "metrics.db", streams=["metrics"])
        with closing(sqlite3.connect(tmp_path / "metrics.db")) as disk:
            other = disk.execute(
                "SELECT name FROM metrics WHERE name != ? ORDER BY name LIMIT 1", [kc.PLACED_ORDER]
            ).fetchone()[0]
        builds.clear()
        sync_ok(
            sb.server, sb.config, tmp_path / "both.db", streams=["metrics", "events"], conversion_metric=other
        )
    assert len(builds) == 1
