"""Placeholder while the engine is being written; the dataclasses are the stable API."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from klaviyo_etl.settings import Settings

STREAM_NAMES = [
    "metrics", "events", "profiles", "lists", "list_members", "segments", "segment_members",
    "campaigns", "campaign_messages", "flows", "flow_actions", "flow_messages", "forms",
    "templates", "tags", "reports",
]


@dataclass
class SyncOptions:
    streams: list[str] | None = None  # None = all
    full_refresh: bool = False
    since: str | None = None  # ISO date/datetime overriding the watermark
    reconcile: bool | None = None  # None = automatic (every reconcile_days)
    predictive: bool = False
    lookback_days: float = 3.0
    reconcile_days: float = 7.0


@dataclass
class StreamResult:
    stream: str
    status: str  # ok | failed | skipped
    rows: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    error: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


@dataclass
class SyncResult:
    run_id: str
    streams: list[StreamResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.streams)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


def run_sync(settings: Settings, options: SyncOptions, *, progress=None,
             stop: threading.Event | None = None) -> SyncResult:
    raise NotImplementedError("sync engine in progress")
