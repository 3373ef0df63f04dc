"""`klaviyo-etl sync` as cron runs it: JSON summary, quiet output, exit codes, a clean SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time

import pytest
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from tests.helpers.sandbox import scopes_missing
from tests.helpers.sync import read_only_database, start_sync, wait_for_rows


@pytest.fixture(scope="module")
def sandbox(sandbox_factory):
    with sandbox_factory("small", lists=2) as running:
        yield running.server, running.config


def invoke(server, config, tmp_path, *args: str, db=None):
    """The CLI on `db` (k.db in tmp_path) against the sandbox, with its key and no config file."""
    env = {"KLAVIYO_API_KEY": config.api_key, "KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml")}
    return CliRunner().invoke(
        app, ["--db", str(db or tmp_path / "k.db"), "--base-url", server.url, *args], env=env
    )


def test_json_summary_and_exit_code(sandbox, tmp_path):
    server, config = sandbox
    result = invoke(server, config, tmp_path, "sync", "metrics", "lists", "list_members", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    by_stream = {s["stream"]: s for s in summary["streams"]}
    assert set(by_stream) == {"metrics", "lists", "list_members"}
    assert by_stream["lists"]["rows"] == 2 and by_stream["list_members"]["rows"] > 0


def test_quiet_prints_nothing_on_success(sandbox, tmp_path):
    server, config = sandbox
    result = invoke(server, config, tmp_path, "--quiet", "sync", "tags")
    assert result.exit_code == 0 and result.output == ""


def test_sigterm_stops_after_the_current_page(sandbox, tmp_path):
    server, config = sandbox
    config.latency_ms = 150  # slow enough to be mid-run when the signal lands
    db = tmp_path / "k.db"
    try:
        proc = start_sync(db, server, "events", "profiles", capture=True)
        wait_for_rows(proc, db, "events", timeout=30)
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


def stopped_mid_sync(sandbox, tmp_path, trouble, signum=signal.SIGTERM) -> float:
    """Start a sync of events and profiles, let `trouble(config)` befall the server once rows
    are stored, send `signum` a second later; assert the sync ends as stopped (exit 130, every
    stream 'stopped', no failure) and return the seconds from the signal to its end."""
    server, config = sandbox
    config.latency_ms = 150
    db = tmp_path / "k.db"
    proc = start_sync(db, server, "events", "profiles", capture=True)
    try:
        wait_for_rows(proc, db, "events", timeout=30)
        assert proc.poll() is None, "the sync ended before the trouble; make it slower"
        trouble(config)
        time.sleep(1)
        proc.send_signal(signum)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=15)
        took = time.monotonic() - sent
    finally:
        config.latency_ms, config.fault_rate = 0, 0.0
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert "FAILED" not in err and "Traceback" not in err
    conn = sqlite3.connect(db)
    statuses = {s for (s,) in conn.execute("SELECT status FROM sync_runs")}
    assert statuses == {"stopped"}
    return took


def test_sigterm_during_server_trouble_stops_at_once_instead_of_retrying_to_the_end(sandbox, tmp_path):
    # Every answer a 5xx, a drop or a short body: the client retries. Without the stop reaching
    # the retries it went on ~60 s, then failed (exit 1).
    stopped_mid_sync(sandbox, tmp_path, lambda config: setattr(config, "fault_rate", 1.0))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_requests_hang_stops_at_once_instead_of_waiting_for_the_timeout(
    sandbox, tmp_path, signum
):
    # Every request from then on hangs (the server never answers). Before, each request in
    # flight waited for the 60 s timeout first (exit after ~59 s).
    hang = lambda config: setattr(config, "latency_ms", 600_000)  # noqa: E731
    took = stopped_mid_sync(sandbox, tmp_path, hang, signum)
    assert took < 3, took  # ~0.15 s; the rest is slack for a busy machine


def test_the_request_timeout_is_how_long_a_request_waits_for_its_answer(sandbox, tmp_path):
    server, config = sandbox
    config.latency_ms = 5000  # a slow Klaviyo: under the 60 s default, so a sync waited it out
    started = time.monotonic()
    try:
        args = ("--quiet", "--retries", "0", "--request-timeout", "0.5", "sync", "tags")
        result = invoke(server, config, tmp_path, *args)
    finally:
        config.latency_ms = 0
    took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert "tags: FAILED" in result.stderr and "ReadTimeout" in result.stderr
    assert took < 4, took  # the clock's request and the stream's, 0.5 s each


def test_a_stream_that_gives_up_on_server_trouble_says_after_how_many_attempts_and_what_next(
    sandbox, tmp_path
):
    server, config = sandbox
    config.fault_rate = 1.0
    try:
        result = invoke(server, config, tmp_path, "--quiet", "--retries", "1", "sync", "tags")
    finally:
        config.fault_rate = 0.0
    assert result.exit_code == 1, result.output
    assert "tags: FAILED" in result.stderr
    assert "GET /api/tags" in result.stderr
    assert "; gave up after 2 attempts, the next sync tries again" in result.stderr
    assert ".;" not in result.stderr


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


def test_a_stream_skipped_because_the_one_it_reads_from_failed_is_named_with_the_reason(sandbox, tmp_path):
    server, config = sandbox
    with scopes_missing(config, "segments:read"):
        result = invoke(server, config, tmp_path, "sync", "tags", "segments", "segment_members")
    assert result.exit_code == 1, result.output
    assert "tags: ok" in result.stdout
    assert "segments: FAILED" in result.stderr and "lacks a required scope" in result.stderr
    # Not silence: the user learns segment_members was not synced, and why.
    assert "segment_members: skipped because segments did not finish" in result.stderr


def test_a_skipped_stream_is_recorded_in_sync_runs_and_status_says_why(sandbox, tmp_path):
    server, config = sandbox
    assert invoke(server, config, tmp_path, "--quiet", "sync", "segments", "segment_members").exit_code == 0
    with scopes_missing(config, "segments:read"):
        result = invoke(server, config, tmp_path, "--quiet", "sync", "segments", "segment_members")
    assert result.exit_code == 1, result.output
    conn = sqlite3.connect(tmp_path / "k.db")
    last = conn.execute(
        "SELECT status, error, started_at IS NOT NULL, ended_at IS NOT NULL, rows FROM sync_runs"
        " WHERE stream = 'segment_members' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    # Before, the run left no row: `status` said the previous run's "ok".
    assert last == ("skipped", "segments did not finish", 1, 1, 0)
    status = invoke(server, config, tmp_path, "status", "--json")
    row = next(r for r in json.loads(status.stdout) if r["stream"] == "segment_members")
    assert (row["last_status"], row["skipped_because"]) == ("skipped", "segments did not finish")
    assert row["rows"] > 0 and row["last_success_at"]  # what the earlier run stored stays


def _sync_and_purge(db_path, server, config, tmp_path):
    for command in (["sync", "tags"], ["purge", "--deleted"]):
        yield invoke(server, config, tmp_path, *command, db=db_path)


def test_a_database_folder_that_is_a_file_is_one_line_for_sync_and_purge(sandbox, tmp_path):
    server, config = sandbox
    (tmp_path / "notes").write_text("not a folder")
    sync, purge = _sync_and_purge(tmp_path / "notes" / "k.db", server, config, tmp_path)
    for result, start in ((sync, "Error: cannot create the lock file"), (purge, "Error: no database at")):
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(start), lines
    assert "must be a folder you can write" in sync.output


def test_a_read_only_database_is_one_line_for_sync_and_purge_and_stays_unchanged(sandbox, tmp_path):
    server, config = sandbox
    db_path = tmp_path / "k.db"
    before = read_only_database(db_path)
    for result in _sync_and_purge(db_path, server, config, tmp_path):
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert lines == [
            f"Error: database {db_path} is read-only: make it writable (chmod u+w); sync, purge and export"
            " write to it"
        ]
    assert db_path.read_bytes() == before


def test_purge_on_a_mistyped_database_path_leaves_nothing_behind(tmp_path):
    db_path = tmp_path / "typo" / "k.db"
    result = CliRunner().invoke(
        app,
        ["--db", str(db_path), "purge", "--deleted"],
        env={"KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml")},
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"Error: no database at {db_path}: run `klaviyo-etl sync` first, or point --db / KLAVIYO_ETL_DB at one"
    )
    assert not (tmp_path / "typo").exists()


def test_a_stream_whose_first_request_gives_up_counts_the_retries_in_its_time(sandbox, tmp_path):
    # The oldest-row request of a first load fails after its retries: the FAILED line said
    # "after 0.0s", its clock started only once that request was done.
    server, config = sandbox
    config.fault_rate = 1.0
    try:
        result = invoke(server, config, tmp_path, "--retries", "1", "sync", "events")
    finally:
        config.fault_rate = 0.0
    assert result.exit_code == 1, result.output
    seconds = re.search(r"events: FAILED after ([0-9.]+)s", result.stderr)
    assert seconds is not None, result.stderr
    assert float(seconds.group(1)) > 0.0, result.stderr


def test_all_beside_stream_names_syncs_every_stream(sandbox, tmp_path):
    # `sync all events` dropped `all` and synced events alone.
    server, config = sandbox
    result = invoke(server, config, tmp_path, "sync", "all", "tags", "--json")
    assert result.exit_code == 0, result.output
    synced = {s["stream"] for s in json.loads(result.stdout)["streams"]}
    assert {"metrics", "events", "profiles", "tags", "campaigns"} <= synced
    assert invoke(server, config, tmp_path, "sync", "all", "tgas").exit_code == 2


def test_stream_names_with_due_are_refused_rather_than_ignored(sandbox, tmp_path):
    # `sync --due events` ignored `events`: it synced whatever was due, or said "nothing is due".
    server, config = sandbox
    result = invoke(server, config, tmp_path, "sync", "--due", "events")
    assert result.exit_code == 2, result.output
    assert "give stream names (events) or --due, not both" in result.output
    assert not (tmp_path / "k.db").exists()
