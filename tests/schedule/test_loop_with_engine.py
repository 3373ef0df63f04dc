"""The scheduler with the real engine against the sandbox: what it records is what it reads."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import pytest

from klaviyo_etl.config_file import load_config
from klaviyo_etl.db import open_database
from klaviyo_etl.sandbox import SandboxServer
from klaviyo_etl.schedule import Scheduler, due_stream_names, engine_runner, plan
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import STREAM_NAMES
from klaviyo_etl.timeutil import utcnow
from tests.helpers.sandbox import scopes_missing


@pytest.fixture(scope="module")
def sandbox(sandbox_factory) -> Iterator[SandboxServer]:
    with sandbox_factory("tiny", events=200) as running:
        yield running.server


def _settings(sandbox: SandboxServer, tmp_path) -> Settings:
    return Settings(db_path=tmp_path / "k.db", api_key=sandbox.config.api_key, base_url=sandbox.url)


def test_one_pass_syncs_everything_then_nothing_is_due(sandbox, tmp_path):
    settings = _settings(sandbox, tmp_path)
    config = load_config(tmp_path / "none.toml")
    scheduler = Scheduler(settings.db_path, config, engine_runner(settings, config))
    tick = scheduler.tick()
    assert tick.outcome == "ok", [(s.stream, s.error) for s in tick.result.streams]
    assert tick.streams == STREAM_NAMES
    # Every stream, including those written by another (campaign_messages, flow_actions),
    # now counts as synced: nothing is due, for the loop or for `sync --due`.
    assert due_stream_names(settings, config) == []
    assert scheduler.seconds_until_next() == scheduler.poll_seconds
    db = open_database(settings.db_path)
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 200
    db.close()


def test_stopping_mid_run_ends_the_loop_with_the_database_intact(sandbox, tmp_path):
    settings = _settings(sandbox, tmp_path)
    config = load_config(tmp_path / "none.toml")
    scheduler = Scheduler(settings.db_path, config, engine_runner(settings, config))
    sandbox.config.latency_ms = 30  # slow enough that the stop lands mid-run
    try:
        threading.Timer(0.5, scheduler.stop.set).start()
        began = time.monotonic()
        assert scheduler.run(handle_signals=False) == 0
        took = time.monotonic() - began
    finally:
        sandbox.config.latency_ms = 0
    assert took < 10
    db = open_database(settings.db_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    statuses = dict(db.execute("SELECT stream, status FROM sync_runs").fetchall())
    assert "stopped" in statuses.values()  # some stream was cut short, and said so
    # Only whole pages were written: the rows stored are exactly the rows the run counted.
    recorded = db.execute("SELECT COALESCE(SUM(rows), 0) FROM sync_runs WHERE stream = 'events'")
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == recorded.fetchone()[0]
    db.close()


def test_a_stream_skipped_for_a_missing_scope_waits_its_interval(sandbox, tmp_path):
    # A key without accounts:read: the run skips `accounts` (one request, one line), and the
    # next cron run must not ask again; it is due a day later, and the plan says why.
    settings = _settings(sandbox, tmp_path)
    config = load_config(tmp_path / "none.toml")
    scheduler = Scheduler(settings.db_path, config, engine_runner(settings, config))
    with scopes_missing(sandbox.config, "accounts:read"):
        tick = scheduler.tick()
    skipped = {s.stream: s.status for s in tick.result.streams}
    assert skipped["accounts"] == "skipped"
    assert due_stream_names(settings, config) == []
    db = open_database(settings.db_path)
    try:
        accounts = next(p for p in plan(db, config) if p.stream == "accounts")
    finally:
        db.close()
    assert "accounts:read" in (accounts.skipped_because or "")
    assert accounts.due_at is not None and accounts.due_at > utcnow() + dt.timedelta(hours=23)
