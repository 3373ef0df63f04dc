"""`klaviyo-etl schedule run`: a foreground loop that syncs each stream when it is due.

The loop keeps no schedule of its own: each pass it asks `due.plan` what `sync_state` and
`sync_runs` say is due, so a manual `sync` between passes counts, and a restart picks up where
the last process left off. Time and the sync itself are injected (`clock`, `runner`) so tests
drive days of scheduling with a fake clock and no network.

Shutdown: SIGINT/SIGTERM set the `stop` event, which the engine checks after each committed
page, so the current page is finished and nothing is left half-written. A second signal
interrupts at once (SQLite rolls back the open transaction).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from klaviyo_etl.config_file import Config
from klaviyo_etl.db import open_database
from klaviyo_etl.errors import ConfigError, DatabaseLocked, FatalError, Unreachable, UsageError
from klaviyo_etl.schedule.due import backoff, plan
from klaviyo_etl.settings import Settings
from klaviyo_etl.signals import stop_on_signals
from klaviyo_etl.sync.engine import SyncOptions, SyncResult, run_sync

log = logging.getLogger("klaviyo_etl.schedule")

# What the scheduler calls to sync: the streams due now, and the event that asks it to stop.
Runner = Callable[[list[str], threading.Event], "SyncResult"]


class Clock(Protocol):
    def now(self) -> dt.datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time in UTC and real sleeping."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def sync_options(config: Config, streams: list[str]) -> SyncOptions:
    """The SyncOptions a scheduled (or `sync --due`) run uses: the config's sync windows."""
    return SyncOptions(
        streams=list(streams),
        lookback_days=config.lookback_days,
        reconcile_days=config.reconcile_days,
        conversion_metric=config.conversion_metric,
    )


def engine_runner(settings: Settings, config: Config | Callable[[], Config]) -> Runner:
    """The real runner: `run_sync`, which takes the database lock itself.

    `config` may be a callable, so a loop that reloads its config runs with the new windows.
    """

    def run(streams: list[str], stop: threading.Event) -> SyncResult:
        current = config() if callable(config) else config
        return run_sync(settings, sync_options(current, streams), stop=stop)

    return run


@dataclass
class Tick:
    """What one pass of the loop did."""

    at: dt.datetime
    streams: list[str]
    outcome: str  # ok | failed | locked | error
    result: SyncResult | None = None
    error: str | None = None


@dataclass
class Scheduler:
    """Run each stream of `config.schedule` whenever it is due, until stopped.

    `poll_seconds` caps every sleep, so the loop re-reads the database (and notices a laptop
    waking from suspend) at least that often; it is also how long a pass refused by the lock
    waits before trying again. `slice_seconds` is how often a sleep checks the stop event.
    """

    db_path: Path
    config: Config
    runner: Runner
    clock: Clock = field(default_factory=SystemClock)
    stop: threading.Event = field(default_factory=threading.Event)
    poll_seconds: float = 60.0
    slice_seconds: float = 1.0
    # Re-read before every pass, so editing the config file needs no restart; a broken edit
    # is logged and the previous config kept.
    reload: Callable[[], Config] | None = None
    # In-memory holds: a stream attempted (or refused by the lock) is not retried before this,
    # even if the database does not yet show why (a runner that raised records nothing).
    _not_before: dict[str, dt.datetime] = field(default_factory=dict, init=False)
    _crashes: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.poll_seconds <= 0 or self.slice_seconds <= 0:
            raise UsageError("poll and slice intervals must be positive")
        self._db = open_database(self.db_path)

    def due_now(self) -> list[str]:
        now = self.clock.now()
        return [
            p.stream
            for p in plan(self._db, self.config, now)
            if p.is_due(now, early=False) and now >= self._not_before.get(p.stream, now)
        ]

    def seconds_until_next(self) -> float:
        """Seconds until the next stream is due, capped at `poll_seconds`."""
        now = self.clock.now()
        wakes = [
            max(p.due_at, self._not_before.get(p.stream, p.due_at))
            for p in plan(self._db, self.config, now)
            if p.due_at is not None
        ]
        if not wakes:
            return self.poll_seconds
        return max(0.0, min((min(wakes) - now).total_seconds(), self.poll_seconds))

    def reload_config(self) -> None:
        if self.reload is None:
            return
        try:
            fresh = self.reload()
        except ConfigError as exc:
            log.error("%s; keeping the previous schedule", exc)
            return
        if fresh != self.config:
            log.info("config %s changed: schedule reloaded", fresh.path)
            self.config = fresh

    def tick(self) -> Tick | None:
        """Sync the streams due now, once; None when nothing is due."""
        self.reload_config()
        streams = self.due_now()
        if not streams:
            return None
        now = self.clock.now()
        hold = now + dt.timedelta(seconds=self.poll_seconds)
        for stream in streams:
            self._not_before[stream] = hold
        log.info("running %s", ", ".join(streams))
        try:
            result = self.runner(streams, self.stop)
        except DatabaseLocked:
            log.warning(
                "skipped: locked by another run (%s); trying again in %ss",
                ", ".join(streams),
                _seconds(self.poll_seconds),
            )
            return Tick(now, streams, "locked")
        except (UsageError, FatalError) as exc:
            if not isinstance(exc, Unreachable):
                # A missing key, a bad option, a rejected key (401) or a retired revision (410)
                # will not fix itself: stop with the error, as `sync` does.
                raise
            self._hold_after_crash(streams, now, hold)
            return self._error_tick(now, streams, exc)  # the server may be back next pass
        except Exception as exc:  # survive anything else; the next attempt may succeed
            self._hold_after_crash(streams, now, hold)
            return self._error_tick(now, streams, exc)
        self._crashes = 0
        self._log_result(result)
        return Tick(now, streams, "ok" if result.ok else "failed", result=result)

    def _hold_after_crash(self, streams: list[str], now: dt.datetime, hold: dt.datetime) -> None:
        self._crashes += 1
        for stream in streams:
            wait = backoff(self._crashes, self.config.interval(stream))
            self._not_before[stream] = max(hold, now + wait)

    def _error_tick(self, now: dt.datetime, streams: list[str], exc: Exception) -> Tick:
        log.error("sync of %s failed: %s: %s", ", ".join(streams), type(exc).__name__, exc)
        log.debug("sync failure", exc_info=True)
        return Tick(now, streams, "error", error=f"{type(exc).__name__}: {exc}")

    def _log_result(self, result: SyncResult) -> None:
        for stream in result.streams:
            if stream.status == "failed":
                interval = self.config.interval(stream.stream)
                log.error(
                    "%s: failed: %s (retrying with backoff, at most every %s)",
                    stream.stream,
                    stream.error,
                    interval,
                )
            else:
                log.info(
                    "%s: %s, %d rows in %d pages",
                    stream.stream,
                    stream.status,
                    stream.rows,
                    stream.pages,
                )

    def run(self, *, until: dt.datetime | None = None, handle_signals: bool = True) -> int:
        """Loop until stopped (signal or `stop` set) or `until`; return the exit code, 0."""
        with stop_on_signals(self.stop) if handle_signals else _nothing():
            self._announce()
            while not self.stop.is_set() and (until is None or self.clock.now() < until):
                if self.tick() is not None:
                    continue
                wait = self.seconds_until_next()
                if until is not None:
                    wait = min(wait, max(0.0, (until - self.clock.now()).total_seconds()))
                self._sleep(wait)
        log.info("scheduler stopped")
        return 0

    def _sleep(self, seconds: float) -> None:
        remaining = seconds
        while remaining > 0 and not self.stop.is_set():
            step = min(self.slice_seconds, remaining)
            self.clock.sleep(step)
            remaining -= step

    def _announce(self) -> None:
        on = {s: i for s, i in self.config.schedule.items() if not i.off}
        if not on:
            log.warning("every stream is off in %s; nothing will run", self.config.path)
            return
        groups: dict[str, list[str]] = {}
        for stream, interval in on.items():
            groups.setdefault(str(interval), []).append(stream)
        log.info(
            "scheduler started on %s: %s",
            self.db_path,
            "; ".join(f"every {i}: {', '.join(s)}" for i, s in groups.items()),
        )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@contextmanager
def _nothing() -> Iterator[None]:
    yield


__all__ = ["Clock", "Runner", "Scheduler", "SystemClock", "Tick", "engine_runner", "sync_options"]
