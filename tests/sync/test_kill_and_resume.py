"""Killing a sync mid-run and running it again gives the database an uninterrupted run gives."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from sync_helpers import settings_for, small_config

from klaviyo_etl.sandbox import SandboxData, serve
from klaviyo_etl.sync.engine import SyncOptions, run_sync

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


def indexes(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()


def count(path, table: str) -> int:
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def test_kill_mid_sync_then_resume_equals_uninterrupted(tmp_path):
    config = small_config(events=6000, profiles=300, latency_ms=15)
    data = SandboxData.generate(config)
    with serve(data, config) as server:
        killed_db = tmp_path / "killed.db"
        env = {**os.environ, "KLAVIYO_API_KEY": config.api_key}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "klaviyo_etl",
                "--db",
                str(killed_db),
                "--quiet",
                "--base-url",
                server.url,
                "sync",
                "all",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while count(killed_db, "events") < 1500 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the sync finished before it could be killed; make it slower"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        interrupted_events = count(killed_db, "events")
        assert 0 < interrupted_events < 6000
        # the first load went in without secondary indexes; they are listed for rebuilding
        assert count(killed_db, "_deferred_indexes") > 0

        settings = settings_for(server, config, killed_db)
        assert run_sync(settings, SyncOptions()).ok
        clean_db = tmp_path / "clean.db"
        assert run_sync(settings_for(server, config, clean_db), SyncOptions()).ok

    resumed, clean = snapshot(killed_db), snapshot(clean_db)
    assert indexes(killed_db) == indexes(clean_db) and "idx_events_metric_id_datetime" in indexes(clean_db)
    assert count(killed_db, "_deferred_indexes") == 0
    for table in COMPARED:
        assert resumed[table] == clean[table], table
    assert len(clean["events"]) == 6000


def test_killed_sync_leaves_no_parse_workers_behind(tmp_path):
    config = small_config(events=6000, profiles=300, latency_ms=15)
    data = SandboxData.generate(config)
    with serve(data, config) as server:
        db = tmp_path / "k.db"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "klaviyo_etl",
                "--db",
                str(db),
                "--quiet",
                "--base-url",
                server.url,
                "sync",
                "events",
            ],
            env={**os.environ, "KLAVIYO_API_KEY": config.api_key},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while count(db, "events") < 1000 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert children, "the bulk load should be parsing in worker processes"
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
