"""The `schedule run` loop, driven by a fake clock: nothing here sleeps for real."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time

import pytest

from klaviyo_etl.config_file import load_config
from klaviyo_etl.db import open_database
from klaviyo_etl.db.lock import database_lock
from klaviyo_etl.errors import (
    ConfigError,
    DatabaseLocked,
    KeyRejected,
    RevisionRetired,
    Unreachable,
    UsageError,
)
from klaviyo_etl.schedule import Scheduler, engine_runner
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import STREAM_NAMES
from tests.helpers.schedule import START, FakeClock, FakeEngine, write_config

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)


def _scheduler(db_path, config, runner, clock, **kw) -> Scheduler:
    kw.setdefault("slice_seconds", 5.0)
    return Scheduler(db_path, config, runner, clock=clock, **kw)


def _runs(db_path, stream: str) -> list[tuple[str, str]]:
    db = open_database(db_path)
    try:
        return [
            (r["started_at"], r["status"])
            for r in db["sync_runs"].rows_where("stream = ?", [stream], order_by="id")
        ]
    finally:
        db.close()


def test_each_stream_runs_when_due_over_a_day(db_path, clock, tmp_path):
    config = load_config(tmp_path / "missing.toml")  # the seed's defaults
    engine = FakeEngine(db_path, clock, seconds_per_stream=2)
    began = time.monotonic()
    code = _scheduler(db_path, config, engine, clock).run(until=START + DAY, handle_signals=False)
    assert code == 0
    assert time.monotonic() - began < 10  # a simulated day, no real sleeping
    assert engine.calls[0] == (START, STREAM_NAMES)  # everything is due on a new database

    def hours(stream):
        return [round((at - START) / H, 2) for at in engine.runs_of(stream)]

    assert hours("events") == list(range(24))
    assert hours("campaigns") == [0, 3, 6, 9, 12, 15, 18, 21]
    assert hours("flows") == [0, 6, 12, 18]
    assert hours("profiles") == [0]
    assert hours("metrics") == [0]
    # Streams due together run in one call, as one run.
    assert engine.calls[1][0] == START + H and engine.calls[1][1] == ["events"]
    assert (START + 3 * H, ["events", "campaigns", "campaign_messages"]) in engine.calls
    assert len(_runs(db_path, "events")) == 24


def test_a_restarted_loop_continues_from_sync_state(db_path, clock, tmp_path):
    config = write_config(tmp_path / "c.toml", _only(events="1h"))
    engine = FakeEngine(db_path, clock)
    _scheduler(db_path, config, engine, clock).run(until=START + 90 * M, handle_signals=False)
    assert engine.runs_of("events") == [START, START + H]

    clock.current = START + 100 * M  # a new process, ten minutes later
    again = FakeEngine(db_path, clock)
    _scheduler(db_path, config, again, clock).run(until=START + 3 * H, handle_signals=False)
    assert again.runs_of("events") == [START + 2 * H]  # not at once: 2h after the last start


def test_a_failure_does_not_stop_the_others_and_is_retried_with_backoff(db_path, clock, tmp_path, caplog):
    config = write_config(tmp_path / "c.toml", _only(events="1h", campaigns="3h"))
    engine = FakeEngine(db_path, clock, fail={"campaigns": 2})
    caplog.set_level(logging.INFO, logger="klaviyo_etl.schedule")
    _scheduler(db_path, config, engine, clock).run(until=START + 4 * H, handle_signals=False)

    assert engine.runs_of("events") == [START + n * H for n in range(4)]
    # Failed at 0:00, retried 5 minutes later, failed again, retried 10 minutes after that.
    assert engine.runs_of("campaigns") == [START, START + 5 * M, START + 15 * M, START + 15 * M + 3 * H]
    assert [s for _, s in _runs(db_path, "campaigns")] == ["failed", "failed", "ok", "ok"]
    assert "campaigns: failed: HTTP 503" in caplog.text


def test_a_runner_that_raises_is_survived_and_backed_off(db_path, clock, tmp_path, caplog):
    config = write_config(tmp_path / "c.toml", _only(events="1h"))
    engine = FakeEngine(db_path, clock)
    attempts: list[dt.datetime] = []

    def flaky(streams, stop):
        attempts.append(clock.now())
        if len(attempts) <= 2:
            raise OSError("disk I/O error")
        return engine(streams, stop)

    _scheduler(db_path, config, flaky, clock).run(until=START + 2 * H, handle_signals=False)
    assert attempts == [START, START + 5 * M, START + 15 * M, START + 15 * M + H]
    assert "sync of events failed: OSError: disk I/O error" in caplog.text


def test_usage_errors_stop_the_loop(db_path, clock, tmp_path):
    config = write_config(tmp_path / "c.toml", _only(events="1h"))

    def no_key(streams, stop):
        raise ConfigError("no API key")

    with pytest.raises(UsageError, match="no API key"):
        _scheduler(db_path, config, no_key, clock).run(handle_signals=False)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_loop_after_the_current_run(db_path, clock, tmp_path, signum):
    config = write_config(tmp_path / "c.toml", _only(events="1h", metrics="1h"))
    seen: list[bool] = []

    def signal_mid_run(streams, stop):
        if len(engine.calls) == 2:  # the second run: a signal arrives while it syncs
            os.kill(os.getpid(), signum)
            seen.append(stop.is_set())

    engine = FakeEngine(db_path, clock, during=signal_mid_run)
    before = signal.getsignal(signum)
    code = _scheduler(db_path, config, engine, clock).run()
    assert code == 0
    assert seen == [True]  # the engine sees the stop event and ends after its page
    assert len(engine.calls) == 2 and clock.now() == START + H
    assert signal.getsignal(signum) is before  # the handlers are put back
    # The interrupted run wrote nothing after the stop, and nothing half-way.
    assert [s for _, s in _runs(db_path, "events")] == ["ok"]


def test_setting_the_stop_event_ends_a_sleep_promptly(db_path, clock, tmp_path):
    config = write_config(tmp_path / "c.toml", _only(events="1d"))
    engine = FakeEngine(db_path, clock)
    stop = threading.Event()

    def stop_after_an_hour(c: FakeClock) -> None:
        if c.now() >= START + H:
            stop.set()

    clock.on_sleep = stop_after_an_hour
    code = _scheduler(db_path, config, engine, clock, stop=stop).run(handle_signals=False)
    assert code == 0
    assert clock.now() == START + H  # stopped within one slice, not at the next due time
    assert len(engine.calls) == 1


def test_a_manual_sync_during_the_loop_is_refused_by_the_lock(db_path, clock, tmp_path):
    config = write_config(tmp_path / "c.toml", _only(events="1h"))
    manual = FakeEngine(db_path, clock)
    refused: list[str] = []

    def manual_sync_meanwhile(streams, stop):
        before = _runs(db_path, "events")
        with pytest.raises(DatabaseLocked) as caught:
            manual(["events"], threading.Event())
        refused.append(str(caught.value))
        assert _runs(db_path, "events") == before  # the refused sync wrote nothing

    engine = FakeEngine(db_path, clock, during=manual_sync_meanwhile)
    _scheduler(db_path, config, engine, clock).run(until=START + M, handle_signals=False)
    assert len(refused) == 1 and "another klaviyo-etl sync is running" in refused[0]
    assert manual.calls == []
    assert [s for _, s in _runs(db_path, "events")] == ["ok"]


def test_the_loop_skips_a_pass_while_a_manual_sync_holds_the_lock(db_path, clock, tmp_path, caplog):
    config = write_config(tmp_path / "c.toml", _only(events="1h"))
    engine = FakeEngine(db_path, clock)
    caplog.set_level(logging.INFO, logger="klaviyo_etl.schedule")
    scheduler = _scheduler(db_path, config, engine, clock, poll_seconds=60)
    with database_lock(db_path):  # a manual `klaviyo-etl sync` is running
        tick = scheduler.tick()
    assert tick is not None and tick.outcome == "locked"
    assert "skipped: locked by another run (events)" in caplog.text
    assert engine.calls == [] and _runs(db_path, "events") == []  # not counted as a failure
    assert scheduler.tick() is None  # not hammering the lock
    assert scheduler.seconds_until_next() == 60

    scheduler.run(until=START + 2 * M, handle_signals=False)
    assert engine.runs_of("events") == [START + M]  # tried again on the next pass


def test_the_real_runner_shares_the_lock_with_manual_syncs(db_path, clock, tmp_path, caplog):
    """engine_runner calls run_sync, which refuses to start while another run holds the lock."""
    config = write_config(tmp_path / "c.toml", _only(events="1h"))
    settings = Settings(db_path=db_path, api_key="pk_test", base_url="http://127.0.0.1:9")
    scheduler = _scheduler(db_path, config, engine_runner(settings, config), clock)
    with database_lock(db_path):
        tick = scheduler.tick()
    assert tick.outcome == "locked"
    assert "skipped: locked by another run" in caplog.text
    assert _runs(db_path, "events") == []


def test_every_stream_off_idles_without_running(db_path, clock, tmp_path, caplog):
    text = "[schedule]\n" + "".join(f'{s} = "off"\n' for s in STREAM_NAMES)
    config = write_config(tmp_path / "c.toml", text)
    engine = FakeEngine(db_path, clock)
    caplog.set_level(logging.INFO, logger="klaviyo_etl.schedule")
    _scheduler(db_path, config, engine, clock).run(until=START + H, handle_signals=False)
    assert engine.calls == [] and clock.now() == START + H
    assert "every stream is off" in caplog.text


def test_poll_must_be_positive(db_path, clock, tmp_path):
    config = load_config(tmp_path / "missing.toml")
    with pytest.raises(UsageError):
        Scheduler(db_path, config, FakeEngine(db_path, clock), clock=clock, poll_seconds=0)


def _only(**intervals: str) -> str:
    """A [schedule] with just these streams on."""
    lines = [f'{s} = "{intervals.get(s, "off")}"' for s in STREAM_NAMES]
    return "[schedule]\n" + "\n".join(lines) + "\n"


def test_an_edited_config_is_picked_up_without_a_restart(db_path, clock, tmp_path, caplog):
    path = tmp_path / "config.toml"
    only = {name: "off" for name in STREAM_NAMES}

    def schedule(**intervals: str) -> str:
        return "[schedule]\n" + "".join(f'{k} = "{v}"\n' for k, v in {**only, **intervals}.items())

    config = write_config(path, schedule(events="1h"))
    engine = FakeEngine(db_path, clock)
    scheduler = _scheduler(db_path, config, engine, clock, reload=lambda: load_config(path))
    scheduler.tick()
    assert engine.calls[-1][1] == ["events"]

    path.write_text(schedule(tags="1h"), encoding="utf-8")  # events off, tags on
    clock.advance(seconds=2 * 3600)
    scheduler.tick()
    assert engine.calls[-1][1] == ["tags"]

    path.write_text("[schedule]\nevents = 'every now and then'\n", encoding="utf-8")  # a broken edit
    clock.advance(seconds=2 * 3600)
    with caplog.at_level(logging.ERROR):
        scheduler.tick()
    assert engine.calls[-1][1] == ["tags"]  # the previous schedule goes on
    assert "keeping the previous schedule" in caplog.text


@pytest.mark.parametrize(
    "error",
    [
        KeyRejected(401, "the API key pk_…9876 was rejected — check KLAVIYO_API_KEY"),
        RevisionRetired(410, "API revision 2020-01-01 is retired"),
    ],
    ids=["401", "410"],
)
def test_a_rejected_key_or_a_retired_revision_stops_the_loop(db_path, clock, tmp_path, error):
    config = write_config(tmp_path / "c.toml", _only(events="1h"))
    attempts = []

    def rejected(streams, stop):
        attempts.append(clock.now())
        raise error

    with pytest.raises(type(error)):
        _scheduler(db_path, config, rejected, clock).run(until=START + 3 * H, handle_signals=False)
    assert attempts == [START]  # not retried


def test_an_unreachable_server_is_survived_and_backed_off(db_path, clock, tmp_path, caplog):
    config = write_config(tmp_path / "c.toml", _only(events="1h"))
    attempts = []

    def down(streams, stop):
        attempts.append(clock.now())
        raise Unreachable("cannot connect to http://127.0.0.1:9: Connection refused")

    _scheduler(db_path, config, down, clock).run(until=START + 20 * M, handle_signals=False)
    assert attempts == [START, START + 5 * M, START + 15 * M]
    assert "cannot connect to http://127.0.0.1:9" in caplog.text
