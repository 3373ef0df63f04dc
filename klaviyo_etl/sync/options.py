"""What a run is asked for (`SyncOptions`), what it reports as it goes (`Progress`) and what
each stream's run came to (`StreamResult`).

Apart from `klaviyo_etl.sync.run`, which the streams run through, so the command line can
build a run's options and show its progress without loading the streams and the database
layer: a sync loads those while its first request is out (issue 12: start-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# The most --lookback-days / --reconcile-days (and the config file's) may say: a century.
# More reached back past year 1000, which the API refuses, or past year 1, which overflowed.
MAX_DAYS = 36500


@dataclass
class SyncOptions:
    streams: list[str] | None = None  # None = all
    full_refresh: bool = False
    since: str | None = None  # ISO date/datetime overriding the watermark
    reconcile: bool | None = None  # None = automatic (every reconcile_days)
    predictive: bool = False
    lookback_days: float = 3.0
    reconcile_days: float = 7.0
    safety_lag_minutes: float = 10.0
    conversion_metric: str | None = None  # [reports] conversion_metric (None: the default rule)
    parse_workers: int = 0  # [sync] parse_workers: processes parsing bulk loads (0: one thread)


@dataclass
class StreamResult:
    stream: str
    status: str  # ok | failed | skipped | stopped
    rows: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    deleted: int = 0
    warnings: int = 0  # values stored raw because they could not be read (see `sync_runs`)
    error: str | None = None
    note: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


class Progress(Protocol):
    """Where a run reports as it goes (Rich bars on a terminal, log lines elsewhere)."""

    def start(self, stream: str) -> None: ...
    def advance(
        self, stream: str, rows: int, pages: int, requests: int, covered: tuple[float, float] | None = None
    ) -> None: ...
    def finish(self, result: StreamResult) -> None: ...
