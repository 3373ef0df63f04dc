"""`--max-age`: database first, but never answer from data older than the user accepts.

Each report names the sync streams it reads. If any of them last succeeded longer ago than
`--max-age` (or never), those streams are synced before the report runs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import sqlite_utils

from klaviyo_etl.errors import KlaviyoEtlError, UsageError
from klaviyo_etl.timeutil import parse_time_or_none

_EVENTS = ["metrics", "events"]
STREAMS: dict[str, list[str]] = {
    "overview": [*_EVENTS, "profiles"],
    "campaigns": [*_EVENTS, "campaigns", "campaign_messages"],
    "flows": [*_EVENTS, "flows", "flow_messages"],
    "forms": [*_EVENTS, "forms"],
    "segments": ["segments", "segment_members"],
    "lists": ["lists", "list_members"],
    "metric": _EVENTS,
    "rfm": [*_EVENTS, "profiles"],
    "cohorts": _EVENTS,
    "dashboard": [*_EVENTS, "profiles", "campaigns", "campaign_messages", "flows", "flow_messages"],
}


def streams_for(report: str, source: str = "events") -> list[str]:
    streams = list(STREAMS[report])
    if source in ("klaviyo", "compare"):
        streams.append("reports")
    return streams


# The longest --max-age, as --last's longest period.
MAX_AGE_DAYS = 9999


def parse_age(text: str) -> dt.timedelta:
    """'90s', '15m', '6h', '2d' -> timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text or "")
    if not match:
        raise UsageError(f"--max-age {text!r} is not a duration (use e.g. 30m, 6h, 2d)")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if seconds > MAX_AGE_DAYS * 86400:  # beyond timedelta's range ended in "unexpected OverflowError"
        raise UsageError(f"--max-age {text!r} is too long: at most {MAX_AGE_DAYS}d")
    return dt.timedelta(seconds=seconds)


def stale_streams(
    db: sqlite_utils.Database, streams: list[str], max_age: dt.timedelta, now: dt.datetime | None = None
) -> list[str]:
    """The streams whose last successful sync is older than max_age, or that never synced."""
    now = now or dt.datetime.now(dt.UTC)
    last = dict(db.execute("SELECT stream, last_success_at FROM sync_state").fetchall())
    out = []
    for stream in streams:
        when = parse_time_or_none(last.get(stream))
        if when is None or now - when > max_age:
            out.append(stream)
    return out


def unfinished_loads(db: sqlite_utils.Database, streams: list[str]) -> list[tuple[str, str | None]]:
    """(stream, watermark) of the streams that stored rows but never finished a sync: a
    first load stopped or killed part way. A report from them lacks what it has not read."""
    if "sync_state" not in db.table_names():
        return []
    found = db.execute(
        "SELECT stream, watermark FROM sync_state WHERE last_success_at IS NULL"
        " AND (watermark IS NOT NULL OR rows_total > 0)"
    ).fetchall()
    return [(stream, watermark) for stream, watermark in found if stream in streams]


def ensure_fresh(
    settings,
    db: sqlite_utils.Database,
    report: str,
    max_age: str | None,
    *,
    source: str = "events",
    sync: Callable | None = None,
    now: dt.datetime | None = None,
    conversion: str | None = None,
) -> list[str]:
    """Sync the report's stale streams first; return the streams synced (none if fresh).

    Raises when that sync fails: the user asked for data no older than max_age, so an
    answer from older data would be a silent lie.
    """
    if max_age is None:
        return []
    stale = stale_streams(db, streams_for(report, source), parse_age(max_age), now)
    if not stale:
        return []
    if sync is None:
        # Imported here for start-up time: the sync (httpx, the engine) only loads when needed.
        from klaviyo_etl.sync.engine import SyncOptions, run_sync

        def sync(streams: list[str]):
            return run_sync(settings, SyncOptions(streams=streams, conversion_metric=conversion))

    result = sync(stale)
    if not getattr(result, "ok", False):
        failed = [s.stream for s in getattr(result, "streams", []) if s.status == "failed"]
        raise KlaviyoEtlError(
            f"could not refresh {', '.join(failed or stale)} before the report"
            " (drop --max-age to report from the stored data)"
        )
    return stale
