"""Which streams are due, from intervals and the engine's bookkeeping."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from klaviyo_etl.config_file import load_config
from klaviyo_etl.db import open_database
from klaviyo_etl.schedule import due_stream_names, due_streams, next_due, plan
from klaviyo_etl.schedule.due import backoff
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import STREAM_NAMES
from tests.helpers.schedule import START, write_config, write_run

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def _due(db_path: Path, config, now: dt.datetime, **kw) -> list[str]:
    db = open_database(db_path)
    try:
        return due_streams(db, config, now, **kw)
    finally:
        db.close()


def _plan(db_path: Path, config, now: dt.datetime, stream: str):
    db = open_database(db_path)
    try:
        return next(p for p in plan(db, config, now) if p.stream == stream)
    finally:
        db.close()


def test_every_stream_is_due_on_a_new_database(db_path, tmp_path):
    config = load_config(tmp_path / "missing.toml")
    assert _due(db_path, config, START) == STREAM_NAMES


def test_a_stream_is_due_once_its_interval_has_passed(db_path, tmp_path):
    config = write_config(tmp_path / "c.toml", '[schedule]\nevents = "1h"\n')
    write_run(db_path, "events", START, ended_at=START + 10 * M)
    assert "events" not in _due(db_path, config, START + 30 * M)
    # Measured from when the run started, not when it ended 10 minutes later.
    assert "events" in _due(db_path, config, START + H, early=False)
    assert "events" not in _due(db_path, config, START + H - dt.timedelta(seconds=1), early=False)
    assert _plan(db_path, config, START, "events").due_at == START + H


def test_cron_lag_is_tolerated_but_only_a_little(db_path, tmp_path):
    config = write_config(tmp_path / "c.toml", '[schedule]\nevents = "1h"\n')
    write_run(db_path, "events", START + dt.timedelta(seconds=3))
    # An hourly cron line fires at :00:00, three seconds "early" for a run that began at :00:03.
    assert "events" in _due(db_path, config, START + H)
    assert "events" not in _due(db_path, config, START + H - 3 * M)


def test_the_clock_starts_when_the_run_started(db_path, tmp_path):
    """A stream queued behind others in the same run keeps the run's slot."""
    config = write_config(tmp_path / "c.toml", '[schedule]\nevents = "1h"\nprofiles = "1h"\n')
    write_run(db_path, "profiles", START, ended_at=START + 20 * M, run_id="r1")
    write_run(db_path, "events", START + 20 * M, ended_at=START + 25 * M, run_id="r1")
    assert _plan(db_path, config, START, "events").due_at == START + H


def test_aliases_follow_the_stream_that_writes_them(db_path, tmp_path):
    config = write_config(tmp_path / "c.toml", '[schedule]\ncampaign_messages = "3h"\n')
    assert "campaign_messages" in _due(db_path, config, START)
    write_run(db_path, "campaigns", START)
    assert "campaign_messages" not in _due(db_path, config, START + H)
    assert "campaign_messages" in _due(db_path, config, START + 3 * H)


def test_failures_back_off_doubling_up_to_the_interval(db_path, tmp_path):
    config = write_config(tmp_path / "c.toml", '[schedule]\nevents = "1h"\n')
    write_run(db_path, "events", START)
    failed_at = START + H
    write_run(db_path, "events", failed_at, "failed", error="HTTP 503")
    first = _plan(db_path, config, failed_at, "events")
    assert (first.failures, first.due_at) == (1, failed_at + 5 * M)
    assert first.last_error == "HTTP 503"
    assert "events" not in _due(db_path, config, failed_at + 4 * M, early=False)
    assert "events" in _due(db_path, config, failed_at + 5 * M, early=False)

    second = failed_at + 5 * M
    write_run(db_path, "events", second, "failed", error="HTTP 503")
    assert _plan(db_path, config, second, "events").due_at == second + 10 * M

    at = second
    for _ in range(5):
        at += H
        write_run(db_path, "events", at, "failed")
    capped = _plan(db_path, config, at, "events")
    assert capped.failures == 7
    assert capped.due_at == at + H  # never longer than the interval itself

    write_run(db_path, "events", at + H)  # success resets the count
    recovered = _plan(db_path, config, at + H, "events")
    assert (recovered.failures, recovered.due_at) == (0, at + 2 * H)


def test_backoff_values():
    from klaviyo_etl.config_file import Interval

    day = Interval.parse("1d")
    assert [backoff(n, day) for n in range(5)] == [
        dt.timedelta(0),
        5 * M,
        10 * M,
        20 * M,
        40 * M,
    ]
    assert backoff(30, day) == dt.timedelta(days=1)
    assert backoff(3, Interval.parse("15m")) == 15 * M


def test_skipped_runs_are_neither_success_nor_failure(db_path, tmp_path):
    config = write_config(tmp_path / "c.toml", '[schedule]\nlist_members = "6h"\n')
    write_run(db_path, "list_members", START)
    write_run(db_path, "list_members", START + 6 * H, "skipped", error="lists failed")
    p = _plan(db_path, config, START + 6 * H, "list_members")
    assert (p.failures, p.due_at) == (0, START + 6 * H)


def test_a_stream_that_skipped_itself_waits_its_interval_and_says_why(db_path, tmp_path):
    # The accounts stream asked and was refused (its key lacks accounts:read): settled until
    # the key changes. The engine's skip for a stream it reads from sends no request.
    config = write_config(tmp_path / "c.toml", '[schedule]\naccounts = "1d"\n')
    write_run(db_path, "accounts", START, "skipped", error="the API key lacks accounts:read", requests=1)
    p = _plan(db_path, config, START + H, "accounts")
    assert (p.failures, p.due_at) == (0, START + 24 * H)
    assert p.skipped_because == "the API key lacks accounts:read"
    assert "accounts" not in _due(db_path, config, START + H)
    # A success after it clears the reason.
    write_run(db_path, "accounts", START + 25 * H, ended_at=START + 25 * H)
    p = _plan(db_path, config, START + 26 * H, "accounts")
    assert (p.due_at, p.skipped_because) == (START + 49 * H, None)


def test_sync_state_alone_is_enough(db_path, tmp_path):
    """Without sync_runs history (pruned, or an older engine), sync_state decides."""
    config = write_config(tmp_path / "c.toml", '[schedule]\nmetrics = "1d"\nforms = "1d"\n')
    db = open_database(db_path)
    db["sync_state"].insert_all(
        [
            {"stream": "metrics", "last_success_at": START.isoformat()},
            {
                "stream": "forms",
                "last_success_at": START.isoformat(),
                "last_attempt_at": (START + H).isoformat(),
                "last_error": "boom",
            },
        ],
        pk="stream",
    )
    db.close()
    metrics = _plan(db_path, config, START, "metrics")
    forms = _plan(db_path, config, START, "forms")
    assert metrics.due_at == START + dt.timedelta(days=1)
    assert (forms.failures, forms.due_at, forms.last_error) == (1, START + H + 5 * M, "boom")


def test_off_streams_are_never_due(db_path, tmp_path):
    text = "[schedule]\n" + "".join(f'{s} = "off"\n' for s in STREAM_NAMES)
    config = write_config(tmp_path / "c.toml", text)
    assert _due(db_path, config, START + 1000 * H) == []
    db = open_database(db_path)
    assert next_due(db, config, START) is None
    db.close()


def test_next_due_names_the_earliest_streams(db_path, tmp_path):
    config = load_config(tmp_path / "missing.toml")
    for stream in STREAM_NAMES:
        write_run(db_path, stream, START)
    db = open_database(db_path)
    when, streams = next_due(db, config, START + 10 * M)
    db.close()
    assert when == START + H
    assert streams == ["events"]


def test_due_stream_names_is_what_sync_due_calls(db_path, config_file):
    config_file.write_text('[schedule]\nevents = "1h"\nmetrics = "off"\n')
    settings = Settings(db_path=db_path)
    now = dt.datetime.now(dt.UTC)
    names = due_stream_names(settings)
    assert "events" in names and "metrics" not in names
    write_run(db_path, "events", now)
    assert "events" not in due_stream_names(settings)
    assert "events" in due_stream_names(settings, now=now + H)


def test_due_stream_names_creates_a_missing_database(tmp_path, config_file):
    settings = Settings(db_path=tmp_path / "new" / "k.db")
    assert due_stream_names(settings) == STREAM_NAMES
