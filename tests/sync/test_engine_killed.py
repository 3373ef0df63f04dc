"""Killing a sync mid-run and running it again gives the database an uninterrupted run gives."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

from klaviyo_etl.db import open_database
from klaviyo_etl.sync.engine import SyncOptions, run_sync
from klaviyo_etl.sync.status import stream_status
from tests.helpers.sync import count_rows, settings_for, start_sync, wait_for_rows

COMPARED = {
    "metrics": "id, name",
    "events": "id, metric_id, profile_id, datetime, value, attributes",
    "profiles": "id, email, updated, attributes",
    "lists": "id, name",
    "segments": "id, name",
    "campaigns": "id, channel, name, send_time",
    "campaign_messages": "id, campaign_id, channel",
    "flows": "id, name",
    "flow_actions": "id, flow_id",
    "flow_messages": "id, flow_id, flow_action_id",
    "forms": "id, name",
    "templates": "id, name",
    "tags": "id, name",
    "list_members": "list_id, profile_id, joined_group_at",
    "segment_members": "segment_id, profile_id, joined_group_at",
}


def snapshot(path) -> dict[str, set]:
    conn = sqlite3.connect(path)
    try:
        return {
            t: set(conn.execute(f"SELECT {cols} FROM {t} WHERE deleted_at IS NULL"))
            for t, cols in COMPARED.items()
        }
    finally:
        conn.close()


def _status_of(path, stream: str) -> dict:
    db = open_database(path, create=False)
    try:
        return next(r for r in stream_status(db) if r["stream"] == stream)
    finally:
        db.close()


def indexes(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()


def test_kill_mid_sync_then_resume_equals_uninterrupted_and_status_says_it_was_killed(
    sandbox_factory, tmp_path
):
    with sandbox_factory("small", events=6000, profiles=300, latency_ms=15) as sb:
        server, config = sb.server, sb.config
        killed_db = tmp_path / "killed.db"
        proc = start_sync(killed_db, server, "all")
        wait_for_rows(proc, killed_db, "events", 1500)
        assert proc.poll() is None, "the sync finished before it could be killed; make it slower"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        interrupted_events = count_rows(killed_db, "events")
        assert 0 < interrupted_events < 6000
        # the first load went in without secondary indexes; they are listed for rebuilding
        assert count_rows(killed_db, "_deferred_indexes") > 0
        # Before: no trace of the run, "last run" blank and "never" succeeded, as if no sync
        # had been tried; now the stream's row says it was killed.
        events = _status_of(killed_db, "events")
        assert (events["last_status"], events["last_success_at"]) == ("killed", None)
        assert "killed" in events["last_error"] and "next sync resumes" in events["last_error"]

        settings = settings_for(server, config, killed_db)
        assert run_sync(settings, SyncOptions()).ok
        assert _status_of(killed_db, "events")["last_status"] == "ok"
        conn = sqlite3.connect(killed_db)
        try:  # the history keeps the killed run, settled by the run that came next
            statuses = [
                r[0] for r in conn.execute("SELECT status FROM sync_runs WHERE stream = 'events' ORDER BY id")
            ]
        finally:
            conn.close()
        assert statuses == ["killed", "ok"]
        clean_db = tmp_path / "clean.db"
        assert run_sync(settings_for(server, config, clean_db), SyncOptions()).ok

    resumed, clean = snapshot(killed_db), snapshot(clean_db)
    assert indexes(killed_db) == indexes(clean_db) and "idx_events_metric_id_datetime" in indexes(clean_db)
    assert count_rows(killed_db, "_deferred_indexes") == 0
    for table in COMPARED:
        assert resumed[table] == clean[table], table
    assert len(clean["events"]) == 6000


def children_of(pid: int) -> list[str]:
    return subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout.split()


def test_a_first_load_parses_in_the_sync_process_by_default(sandbox_factory, tmp_path):
    with sandbox_factory("small", events=6000, profiles=300, latency_ms=15) as sb:
        db = tmp_path / "k.db"
        proc = start_sync(db, sb.server, "events")
        wait_for_rows(proc, db, "events", 1000)
        children = children_of(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert children == [], "parse_workers = 0 (the default) parses on a thread: no worker processes"


def test_killed_sync_leaves_no_parse_workers_behind(sandbox_factory, tmp_path):
    with sandbox_factory("small", events=6000, profiles=300, latency_ms=15) as sb:
        db = tmp_path / "k.db"
        proc = start_sync(db, sb.server, "events", config="[sync]\nparse_workers = 2\n")
        wait_for_rows(proc, db, "events", 1000)
        children = children_of(proc.pid)
        assert len(children) >= 2, "with parse_workers = 2 the bulk load parses in worker processes"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        alive = children
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [
                c
                for c in children
                if os.path.exists(f"/proc/{c}")
                and "Z" not in open(f"/proc/{c}/stat").read().rsplit(")", 1)[1].split()[0]
            ]
        assert not alive, f"parse workers outlived the killed sync: {alive}"
