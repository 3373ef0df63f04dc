"""`klaviyo-etl sync` as cron runs it: JSON summary, quiet output, exit codes, a clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.sandbox import SandboxConfig, SandboxData, serve


@pytest.fixture(scope="module")
def sandbox():
    config = SandboxConfig(
        seed=3,
        profiles=120,
        events=1500,
        campaigns=6,
        flows=2,
        lists=2,
        segments=2,
        forms=2,
        templates=3,
        tags=3,
        days=30,
    )
    data = SandboxData.generate(config)
    with serve(data, config) as server:
        yield server, config


def test_json_summary_and_exit_code(sandbox, tmp_path):
    server, config = sandbox
    result = CliRunner().invoke(
        app,
        [
            "--db",
            str(tmp_path / "k.db"),
            "--base-url",
            server.url,
            "sync",
            "metrics",
            "lists",
            "list_members",
            "--json",
        ],
        env={"KLAVIYO_API_KEY": config.api_key, "KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml")},
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    by_stream = {s["stream"]: s for s in summary["streams"]}
    assert set(by_stream) == {"metrics", "lists", "list_members"}
    assert by_stream["lists"]["rows"] == 2 and by_stream["list_members"]["rows"] > 0


def test_quiet_prints_nothing_on_success(sandbox, tmp_path):
    server, config = sandbox
    result = CliRunner().invoke(
        app,
        ["--db", str(tmp_path / "k.db"), "--quiet", "--base-url", server.url, "sync", "tags"],
        env={"KLAVIYO_API_KEY": config.api_key, "KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml")},
    )
    assert result.exit_code == 0 and result.output == ""


def _events(db) -> int:
    try:
        conn = sqlite3.connect(db, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def test_sigterm_stops_after_the_current_page(sandbox, tmp_path):
    server, config = sandbox
    config.latency_ms = 150  # slow enough to be mid-run when the signal lands
    db = tmp_path / "k.db"
    try:
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
                "profiles",
            ],
            env={
                **os.environ,
                "KLAVIYO_API_KEY": config.api_key,
                "KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml"),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline and not _events(db):
            time.sleep(0.02)
        assert proc.poll() is None, "the sync ended before the signal; make it slower"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        config.latency_ms = 0
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    statuses = {s for (s,) in conn.execute("SELECT status FROM sync_runs")}
    assert "stopped" in statuses
    # only whole pages: what is stored is what the run said it wrote
    stored = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    counted = conn.execute("SELECT COALESCE(SUM(rows), 0) FROM sync_runs WHERE stream = 'events'").fetchone()[
        0
    ]
    assert stored == counted


def test_a_rejected_key_is_one_line_and_exit_2(sandbox, tmp_path):
    server, config = sandbox
    result = CliRunner().invoke(
        app,
        ["--db", str(tmp_path / "k.db"), "--quiet", "--base-url", server.url, "sync", "all"],
        env={
            "KLAVIYO_API_KEY": "pk_not_the_right_key_9876",
            "KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml"),
        },
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["Error: 401: the API key pk_…9876 was rejected — check KLAVIYO_API_KEY"]
    assert "pk_not_the_right_key" not in result.output
