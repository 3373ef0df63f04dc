"""A fake clock and a fake engine that keeps the books exactly like the real one.

The fake engine takes the real database lock and writes `sync_runs`/`sync_state` through the
engine's own `record_run`, so the scheduler under test reads what production would read; only
the Klaviyo requests are missing, and the clock advances instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from klaviyo_etl.config_file import Config, load_config
from klaviyo_etl.db import open_database
from klaviyo_etl.db.lock import database_lock
from klaviyo_etl.sync.engine import StreamResult, SyncResult
from klaviyo_etl.sync.names import resolve
from klaviyo_etl.sync.state import record_run

START = dt.datetime(2026, 5, 1, 0, 0, tzinfo=dt.UTC)


@dataclass
class FakeClock:
    """Time that moves only when someone sleeps (or a fake sync takes time)."""

    current: dt.datetime = START
    slept: float = 0.0
    on_sleep: Callable[[FakeClock], None] | None = None

    def now(self) -> dt.datetime:
        return self.current

    def sleep(self, seconds: float) -> None:
        self.current += dt.timedelta(seconds=seconds)
        self.slept += seconds
        if self.on_sleep:
            self.on_sleep(self)

    def advance(self, **kwargs: float) -> None:
        self.current += dt.timedelta(**kwargs)


def iso(when: dt.datetime) -> str:
    return when.isoformat(timespec="microseconds")


def write_run(
    db_path: Path,
    stream: str,
    started_at: dt.datetime,
    status: str = "ok",
    *,
    ended_at: dt.datetime | None = None,
    error: str | None = None,
    run_id: str | None = None,
    requests: int = 0,
) -> None:
    """Record one stream's run the way the engine does (same function, same columns)."""
    db = open_database(db_path)
    try:
        result = StreamResult(
            stream,
            status,
            rows=1,
            pages=1,
            requests=requests,
            error=error,
            started_at=iso(started_at),
            ended_at=iso(ended_at or started_at),
        )
        record_run(db, run_id or uuid.uuid4().hex[:12], result)
    finally:
        db.close()


@dataclass
class FakeEngine:
    """Stands in for `run_sync`: takes the lock, 'syncs' each stream, records the outcome.

    `fail` maps a stream to how many of its next runs fail; `during` runs while the lock is
    held (a manual sync attempt, a signal); `seconds_per_stream` is the simulated sync time.
    """

    db_path: Path
    clock: FakeClock
    fail: dict[str, int] = field(default_factory=dict)
    seconds_per_stream: float = 0.0
    during: Callable[[list[str], threading.Event], None] | None = None
    calls: list[tuple[dt.datetime, list[str]]] = field(default_factory=list)

    def __call__(self, streams: list[str], stop: threading.Event) -> SyncResult:
        run_id = uuid.uuid4().hex[:12]
        results = []
        with database_lock(self.db_path):
            self.calls.append((self.clock.now(), list(streams)))
            if self.during:
                self.during(streams, stop)
            for name in resolve(streams):
                if stop.is_set():  # the engine ends after the page being written commits
                    break
                started = self.clock.now()
                self.clock.advance(seconds=self.seconds_per_stream)
                failing = self.fail.get(name, 0) > 0
                if failing:
                    self.fail[name] -= 1
                write_run(
                    self.db_path,
                    name,
                    started,
                    "failed" if failing else "ok",
                    ended_at=self.clock.now(),
                    error="HTTP 503" if failing else None,
                    run_id=run_id,
                )
                results.append(
                    StreamResult(
                        name,
                        "failed" if failing else "ok",
                        rows=1,
                        pages=1,
                        error="HTTP 503" if failing else None,
                    )
                )
        return SyncResult(run_id, results)

    def runs_of(self, stream: str) -> list[dt.datetime]:
        return [at for at, streams in self.calls if stream in resolve(streams)]


def write_config(path: Path, text: str) -> Config:
    path.write_text(text, encoding="utf-8")
    return load_config(path)
