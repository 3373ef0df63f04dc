"""`klaviyo-etl schedule ...` through the real CLI (CliRunner), plus one real process."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.db import open_database
from klaviyo_etl.db.lock import database_lock
from klaviyo_etl.sync.engine import STREAM_NAMES, StreamResult
from klaviyo_etl.sync.state import record_run

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"KLAVIYO_ETL_CONFIG": str(tmp_path / "config.toml"), "KLAVIYO_API_KEY": ""}


def _record(db_path: Path, stream: str, started: dt.datetime, status: str = "ok", error=None):
    db = open_database(db_path)
    stamp = started.isoformat(timespec="microseconds")
    record_run(
        db, uuid.uuid4().hex[:12], StreamResult(stream, status, error=error, started_at=stamp, ended_at=stamp)
    )
    db.close()


def test_status_json_reports_each_stream(tmp_path, env):
    db = tmp_path / "k.db"
    Path(env["KLAVIYO_ETL_CONFIG"]).write_text('[schedule]\nevents = "1h"\nprofiles = "off"\n')
    now = dt.datetime.now(dt.UTC)
    _record(db, "events", now - dt.timedelta(minutes=20))
    _record(db, "metrics", now - dt.timedelta(minutes=3), "failed", "AuthError: 403")

    result = runner.invoke(app, ["--db", str(db), "schedule", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    streams = {s["stream"]: s for s in data["streams"]}
    assert list(streams) == STREAM_NAMES
    events, metrics = streams["events"], streams["metrics"]
    assert events["interval"] == "1h" and events["due_now"] is False
    assert 39 * 60 <= events["due_in_seconds"] <= 40 * 60
    assert events["last_status"] == "ok"
    assert metrics["last_status"] == "failed" and metrics["failures"] == 1
    assert metrics["last_error"] == "AuthError: 403"
    assert 0 < metrics["due_in_seconds"] <= 2 * 60  # 5 minute backoff after the failure
    assert streams["profiles"]["interval"] == "off" and streams["profiles"]["due_at"] is None
    assert streams["tags"]["due_now"] is True and streams["tags"]["reason"] == "never synced"


def test_status_table(tmp_path, env):
    db = tmp_path / "k.db"
    _record(db, "events", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))
    result = runner.invoke(app, ["--db", str(db), "schedule", "status"], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    events = next(line for line in result.output.splitlines() if " events " in line)
    assert "in 40m" in events or "in 39m" in events
    assert "ok 20m ago" in events
    tags = next(line for line in result.output.splitlines() if " tags " in line)
    assert "never" in tags and "now" in tags and "yes" in tags
    assert "Due now: metrics, profiles" in result.output


def test_status_names_the_failure(tmp_path, env):
    db = tmp_path / "k.db"
    now = dt.datetime.now(dt.UTC)
    _record(db, "campaigns", now - dt.timedelta(minutes=9), "failed", "ApiError: 500: boom")
    _record(db, "campaigns", now - dt.timedelta(minutes=2), "failed", "ApiError: 500: boom")
    result = runner.invoke(app, ["--db", str(db), "schedule", "status"], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    campaigns = next(line for line in result.output.splitlines() if " campaigns " in line)
    assert "failed 2m ago (2 in a row)" in campaigns
    assert "in 7m (" in campaigns  # 10 minutes of backoff after the second failure
    assert "campaigns failed: ApiError: 500: boom" in result.output.splitlines()


def test_status_says_why_a_stream_skipped_itself_and_when_it_asks_again(tmp_path, env):
    db_path = tmp_path / "k.db"
    stamp = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat(timespec="microseconds")
    db = open_database(db_path)
    why = "the API key lacks accounts:read: add it to show the account's preferred currency"
    record_run(
        db,
        "r1",
        StreamResult("accounts", "skipped", requests=1, error=why, started_at=stamp, ended_at=stamp),
    )
    db.close()
    result = runner.invoke(app, ["--db", str(db_path), "schedule", "status"], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    accounts = next(line for line in result.output.splitlines() if " accounts " in line)
    assert "skipped 2h ago" in accounts and "in 21h59m" in accounts
    assert f"accounts skipped: {why}" in result.output.splitlines()
    assert "accounts" not in result.output.splitlines()[-1]  # not due now


def test_crontab_prints_a_pasteable_line_and_creates_the_log_dir(tmp_path, env):
    log = tmp_path / "logs" / "sync.log"
    result = runner.invoke(
        app,
        [
            "--db",
            str(tmp_path / "k.db"),
            "--base-url",
            "http://127.0.0.1:8080",
            "schedule",
            "crontab",
            "--log",
            str(log),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    jobs = [line for line in result.output.splitlines() if line and not line.startswith("#")]
    assert len(jobs) == 1
    assert jobs[0].startswith("0 * * * * KLAVIYO_ETL_CONFIG=")
    assert f"--db {tmp_path / 'k.db'} --base-url http://127.0.0.1:8080 --quiet sync --due" in jobs[0]
    assert jobs[0].endswith(f">> {log} 2>&1")
    assert log.parent.is_dir()


@pytest.mark.parametrize(
    ("log", "message"),
    [
        ("{tmp}", "--log {tmp} is a folder"),
        (
            "{tmp}/notes/cron.log",
            "--log {tmp}/notes/cron.log: cannot create its folder: a file is in the way",
        ),
    ],
)
def test_crontab_refuses_a_log_no_cron_job_could_append_to(tmp_path, env, log, message):
    (tmp_path / "notes").write_text("a file, not a folder")
    log = log.replace("{tmp}", str(tmp_path))
    result = runner.invoke(
        app, ["--db", str(tmp_path / "k.db"), "schedule", "crontab", "--log", log], env=env
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: " + message.replace("{tmp}", str(tmp_path)))


def test_run_needs_an_api_key(tmp_path, env):
    result = runner.invoke(app, ["--db", str(tmp_path / "k.db"), "schedule", "run"], env=env)
    assert result.exit_code == 2
    assert "no API key" in result.output


def test_a_bad_config_is_one_line_and_exit_2(tmp_path, env):
    Path(env["KLAVIYO_ETL_CONFIG"]).write_text('[schedule]\nevents = "hourly"\n')
    for command in (["schedule", "status"], ["schedule", "crontab"], ["schedule", "run"]):
        result = runner.invoke(app, ["--db", str(tmp_path / "k.db"), *command], env=env)
        assert result.exit_code == 2
        assert result.output.strip().splitlines() == [
            f"Error: config {env['KLAVIYO_ETL_CONFIG']}: [schedule] events: 'hourly' is not an "
            'interval; use a number and unit like "30m", "1h", "3h", "1d", "1h30m", or "off"'
        ]


def _wait_for(path: Path, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not seen in {path}:\n{content}")


def test_a_real_schedule_run_skips_while_locked_and_stops_on_sigterm(tmp_path, env):
    """The loop and a manual sync share the lock; SIGTERM ends the process cleanly (exit 0)."""
    db = tmp_path / "k.db"
    open_database(db).close()
    stderr = tmp_path / "stderr.txt"
    process_env = {
        **os.environ,
        **env,
        "KLAVIYO_API_KEY": "pk_test",
        "KLAVIYO_BASE_URL": "http://127.0.0.1:9",
    }
    with database_lock(db), stderr.open("w") as err:  # a manual sync is running
        process = subprocess.Popen(
            [sys.executable, "-m", "klaviyo_etl", "--db", str(db), "schedule", "run", "--poll", "60"],
            env=process_env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            _wait_for(stderr, "skipped: locked by another run")
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
    log = stderr.read_text()
    assert code == 0, log
    assert "SIGTERM received" in log and "scheduler stopped" in log
    assert "Traceback" not in log
    runs = open_database(db).execute("SELECT COUNT(*) FROM sync_runs").fetchone()[0]
    assert runs == 0  # refused by the lock: nothing written, nothing counted as failed


def test_run_stops_with_exit_2_on_a_rejected_key(sandbox_factory, tmp_path, env):
    """A 401 will not fix itself: the loop ends with the error instead of retrying forever."""
    with sandbox_factory("tiny") as sb:
        process = subprocess.run(
            [sys.executable, "-m", "klaviyo_etl", "--db", str(tmp_path / "k.db"), "schedule", "run"],
            env={
                **os.environ,
                **env,
                "KLAVIYO_API_KEY": "pk_not_the_right_key_9876",
                "KLAVIYO_BASE_URL": sb.server.url,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert process.returncode == 2, process.stderr
    assert process.stderr.strip().splitlines()[-1] == (
        "Error: 401: the API key pk_…9876 was rejected — check KLAVIYO_API_KEY"
    )


def test_status_of_a_database_not_there_yet_shows_every_stream_due_and_creates_nothing(tmp_path, env):
    db = tmp_path / "not-yet" / "k.db"
    result = runner.invoke(app, ["--db", str(db), "schedule", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    streams = json.loads(result.output)["streams"]
    assert [s["stream"] for s in streams] == STREAM_NAMES
    assert all(s["due_now"] and s["reason"].startswith("never synced") for s in streams)
    assert not (tmp_path / "not-yet").exists()


def test_status_table_at_80_columns_shows_every_stream_name_whole(tmp_path, env):
    # At 80 columns the table cut the names it is about: "segment_memb…", "campaign_mes…".
    db = tmp_path / "k.db"
    now = dt.datetime.now(dt.UTC)
    for stream in STREAM_NAMES:
        _record(db, stream, now - dt.timedelta(minutes=20))
    result = runner.invoke(app, ["--db", str(db), "schedule", "status"], env={**env, "COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "…" not in result.output
    names = {line.replace("│", " ").split()[0] for line in result.output.splitlines() if line.strip()}
    assert set(STREAM_NAMES) <= names


def test_crontab_carries_every_global_option_cron_would_not_have(tmp_path, env):
    # cron has none of the shell's KLAVIYO_* variables, and without --allow-insecure every run
    # against this http:// base URL was refused (one line in the log, nothing synced).
    result = runner.invoke(
        app,
        [
            "--db",
            str(tmp_path / "k.db"),
            "--base-url",
            "http://10.0.0.5:8080",
            "--allow-insecure",
            "schedule",
            "crontab",
            "--log",
            str(tmp_path / "sync.log"),
        ],
        env={**env, "KLAVIYO_ETL_RETRIES": "2", "KLAVIYO_ETL_REQUEST_TIMEOUT": "30"},
    )
    assert result.exit_code == 0, result.output
    [job] = [line for line in result.output.splitlines() if line and not line.startswith("#")]
    assert (
        f"--db {tmp_path / 'k.db'} --base-url http://10.0.0.5:8080 --retries 2 --request-timeout 30"
        " --allow-insecure --quiet sync --due" in job
    )


def test_crontab_leaves_the_config_file_s_values_to_the_file(tmp_path, env):
    # cron's runs read the file: a copy of its base_url or request_timeout in the line would
    # override a later edit of the file without a word.
    config = tmp_path / "config.toml"
    config.write_text('[defaults]\nbase_url = "https://eu.example.test"\n[sync]\nrequest_timeout = 20\n')
    args = ["--db", str(tmp_path / "k.db"), "schedule", "crontab", "--log", str(tmp_path / "sync.log")]
    result = runner.invoke(app, args, env={**env, "KLAVIYO_ETL_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    [job] = [line for line in result.output.splitlines() if line and not line.startswith("#")]
    assert "--base-url" not in job and "--request-timeout" not in job, job


def test_status_says_a_stream_is_overdue_when_a_whole_interval_was_missed(tmp_path, env):
    # Twelve days without a sync of an hourly stream showed "now", like a stream that fell due
    # a minute ago: nothing told that the schedule itself had stopped running.
    db = tmp_path / "k.db"
    now = dt.datetime.now(dt.UTC)
    for stream in STREAM_NAMES:
        _record(db, stream, now - dt.timedelta(days=12 if stream == "events" else 0, minutes=20))
    result = runner.invoke(app, ["--db", str(db), "schedule", "status"], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    events = next(line for line in lines if " events " in line)
    assert "overdue 11d23h" in events and "yes" in events
    assert not any("overdue" in line for line in lines if " events " not in line and "│" in line)
    assert "Overdue by a whole interval or more: events. Is the schedule running" in result.output
    as_json = runner.invoke(app, ["--db", str(db), "schedule", "status", "--json"], env=env)
    overdue = {s["stream"] for s in json.loads(as_json.output)["streams"] if s["overdue"]}
    assert overdue == {"events"}


def test_status_shows_now_for_a_stream_due_within_crons_lag(tmp_path, env):
    # Failed 4 minutes ago, retried after 5: `sync --due` runs it now (cron fires a little
    # late), and "due now" said yes while "next due" said "in 1m".
    db = tmp_path / "k.db"
    _record(db, "events", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4), "failed", "ApiError: 500")
    result = runner.invoke(app, ["--db", str(db), "schedule", "status"], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    events = next(line for line in result.output.splitlines() if " events " in line)
    assert [cell.strip() for cell in events.split("│")][5:7] == ["now", "yes"]


def test_a_next_run_in_another_year_shows_its_year():
    # A "9999d" interval's next run read "Apr 18 16:24", 27 years off.
    from klaviyo_etl.cli.schedule import _local

    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    later = now + dt.timedelta(days=9999)
    assert _local(later, now).startswith(f"{later.astimezone().year}-")
    assert not _local(now + dt.timedelta(days=2), now).startswith("2026")  # this year: "Jun 03 12:00"
