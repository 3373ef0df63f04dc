"""When each stream is due, from its interval and what `sync_state`/`sync_runs` say happened.

A stream is due when its interval has passed since its last successful sync began, or it has
never succeeded. After a failure it is retried sooner than a full interval, but not at once:
the wait doubles with each failure in a row (5m, 10m, 20m, ...) and never exceeds the
interval, so a broken stream neither hammers the API nor waits longer than it normally would.

The clock starts when the run that last synced the stream well *started* (the earliest
`sync_runs.started_at` of its run_id), not when the stream ended: a daily profiles sync that
takes 40 minutes, or a stream queued behind others in the same run, would otherwise slide later
every day, find itself "not quite due" at its cron slot, and skip a whole interval.

A run the stream itself skipped (its key lacks the stream's scope: `accounts` without
`accounts:read`) is settled like a success: the key gives the same answer until it changes,
so the stream waits its interval instead of asking again, and logging it, at every cron run.
A stream skipped because one it reads from did not finish is neither: it is due again as
soon as that one is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlite_utils

from klaviyo_etl.config_file import Config, Interval
from klaviyo_etl.sync.names import ALIASES
from klaviyo_etl.sync.status import run_status
from klaviyo_etl.timeutil import parse_time_or_none, utcnow

BACKOFF_BASE = dt.timedelta(minutes=5)
# cron starts jobs a second or two late; a stream whose hour is up in 30 s is due now, or an
# hourly cron line would find it "not quite due" and skip it for a whole hour.
MAX_TOLERANCE = dt.timedelta(minutes=2)
_HISTORY = 50  # recent runs read per stream; enough to count failures past the backoff cap


def backoff(failures: int, interval: Interval) -> dt.timedelta:
    """How long to wait after `failures` failures in a row before trying again."""
    if failures <= 0 or interval.timedelta is None:
        return dt.timedelta(0)
    delay = BACKOFF_BASE * 2 ** min(failures - 1, 20)
    return min(delay, interval.timedelta)


def tolerance(interval: Interval) -> dt.timedelta:
    """How early a cron-triggered check may treat a stream as due (a tenth, at most 2m)."""
    if interval.timedelta is None:
        return dt.timedelta(0)
    return min(interval.timedelta / 10, MAX_TOLERANCE)


@dataclass(frozen=True)
class LastRun:
    run_started_at: dt.datetime | None  # when the whole run (all its streams) began
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    status: str | None
    error: str | None
    requests: int = 0

    @property
    def refused(self) -> bool:
        """Skipped by the stream itself, after asking (a missing scope): the engine's skip for
        a stream it reads from that did not finish sends no request."""
        return self.status == "skipped" and self.requests > 0


@dataclass(frozen=True)
class StreamPlan:
    """Everything the scheduler knows about one stream at one moment."""

    stream: str
    interval: Interval
    last_success_at: dt.datetime | None  # when the run that last synced it well started
    last_attempt_at: dt.datetime | None
    last_run: LastRun | None  # newest sync_runs row
    failures: int  # failed runs since the last good one
    last_error: str | None
    due_at: dt.datetime | None  # None: the stream is off
    reason: str
    skipped_because: str | None = None  # the stream's own skip, newer than its last success

    def is_due(self, now: dt.datetime, *, early: bool = True) -> bool:
        """Due at `now`? `early` allows cron's start-up lag (see `tolerance`)."""
        if self.due_at is None:
            return False
        slack = tolerance(self.interval) if early else dt.timedelta(0)
        return now >= self.due_at - slack

    def is_overdue(self, now: dt.datetime) -> bool:
        """A whole interval has passed since the stream fell due: nothing is running the
        schedule (no cron line, the machine off, `schedule run` stopped), or every run is
        refused. `schedule status` says so, rather than "due now" like a minute late."""
        interval = self.interval.timedelta
        return self.due_at is not None and interval is not None and now - self.due_at >= interval

    def as_dict(self, now: dt.datetime) -> dict:
        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat(timespec="seconds") if value else None

        return {
            "stream": self.stream,
            "interval": str(self.interval),
            "last_success_at": iso(self.last_success_at),
            "last_attempt_at": iso(self.last_attempt_at),
            "last_status": self.last_run.status if self.last_run else None,
            "last_error": self.last_error,
            "failures": self.failures,
            "due_at": iso(self.due_at),
            "due_in_seconds": (max(0, int((self.due_at - now).total_seconds())) if self.due_at else None),
            "due_now": self.is_due(now),
            "overdue": self.is_overdue(now),
            "reason": self.reason,
            "skipped_because": self.skipped_because,
        }


def _recent_runs(db: sqlite_utils.Database, stream: str) -> list[LastRun]:
    if "sync_runs" not in db.table_names():
        return []
    rows = db.execute(
        "SELECT (SELECT MIN(x.started_at) FROM sync_runs x WHERE x.run_id = r.run_id), "
        "r.started_at, r.ended_at, r.status, r.error, r.requests FROM sync_runs r WHERE r.stream = ? "
        "ORDER BY r.started_at DESC, r.id DESC LIMIT ?",
        [stream, _HISTORY],
    ).fetchall()
    return [
        LastRun(
            parse_time_or_none(run_start),
            parse_time_or_none(start),
            parse_time_or_none(end),
            *run_status(status, error),
            requests or 0,
        )
        for run_start, start, end, status, error, requests in rows
    ]


def _state(db: sqlite_utils.Database) -> dict[str, dict]:
    if "sync_state" not in db.table_names():
        return {}
    return {row["stream"]: row for row in db["sync_state"].rows}


def _interval(delta: dt.timedelta) -> Interval:
    return Interval(int(delta.total_seconds()))


def plan_stream(
    stream: str, interval: Interval, state: dict | None, runs: list[LastRun], now: dt.datetime
) -> StreamPlan:
    """Work out one stream's due time from its sync_state row and its recent sync_runs.

    A stream that never synced is due `now`.
    """
    state = state or {}
    last_ok = next((run for run in runs if run.status == "ok"), None)
    # The newest answer that holds until the key changes: a success, or the stream's own skip.
    settled = next((run for run in runs if run.status == "ok" or run.refused), None)
    refused = settled if settled is not None and settled.refused else None
    # Runs the engine stopped, or skipped for another stream, are neither successes nor failures.
    failed = []
    for run in runs:
        if run is settled:
            break
        if run.status == "failed":
            failed.append(run)
    last_success = None
    if last_ok:
        last_success = last_ok.run_started_at or last_ok.started_at
    last_success = last_success or parse_time_or_none(state.get("last_success_at"))
    last_attempt = parse_time_or_none(state.get("last_attempt_at"))
    if runs and runs[0].started_at and (last_attempt is None or runs[0].started_at > last_attempt):
        last_attempt = runs[0].started_at
    failures = len(failed)
    failed_at = (failed[0].ended_at or failed[0].started_at) if failed else None
    last_error = failed[0].error if failed else None
    if (
        not runs
        and state.get("last_error")
        and last_attempt
        and (last_success is None or last_attempt > last_success)
    ):
        # sync_state alone records a failed attempt (no sync_runs history to count).
        failures, failed_at, last_error = 1, last_attempt, state.get("last_error")

    if interval.off:
        due_at, reason = None, "off"
    elif failures and failed_at:
        wait = backoff(failures, interval)
        due_at = failed_at + wait
        reason = f"retrying after {failures} failure(s) in a row, {_interval(wait)} backoff"
    elif refused is not None:
        due_at = (refused.run_started_at or refused.started_at or now) + interval.timedelta
        reason = f"every {interval}, skipped last time"
    elif last_success is None:
        due_at, reason = now, "never synced"
    else:
        due_at = last_success + interval.timedelta
        reason = f"every {interval}"
    if stream in ALIASES:
        reason += f" (synced by {ALIASES[stream]})"
    return StreamPlan(
        stream=stream,
        interval=interval,
        last_success_at=last_success,
        last_attempt_at=last_attempt,
        last_run=runs[0] if runs else None,
        failures=failures,
        last_error=last_error,
        due_at=due_at,
        reason=reason,
        skipped_because=refused.error if refused is not None else None,
    )


def plan(db: sqlite_utils.Database, config: Config, now: dt.datetime | None = None) -> list[StreamPlan]:
    """One StreamPlan per configured stream, in the engine's stream order."""
    now = now or utcnow()
    state = _state(db)
    plans = []
    for stream, interval in config.schedule.items():
        # campaign_messages and flow_actions are written by the campaigns and flows streams,
        # so their history is the writer's; syncing them runs the writer.
        writer = ALIASES.get(stream, stream)
        plans.append(plan_stream(stream, interval, state.get(writer), _recent_runs(db, writer), now))
    return plans


def due_streams(
    db: sqlite_utils.Database,
    config: Config,
    now: dt.datetime | None = None,
    *,
    early: bool = True,
) -> list[str]:
    """The streams to sync at `now`: interval elapsed, never synced, or failure backoff over."""
    now = now or utcnow()
    return [p.stream for p in plan(db, config, now) if p.is_due(now, early=early)]


def next_due(
    db: sqlite_utils.Database, config: Config, now: dt.datetime | None = None
) -> tuple[dt.datetime, list[str]] | None:
    """The earliest due time and the streams due then; None when every stream is off."""
    now = now or utcnow()
    plans = [p for p in plan(db, config, now) if p.due_at is not None]
    if not plans:
        return None
    when = max(min(p.due_at for p in plans), now)
    return when, [p.stream for p in plans if max(p.due_at, now) <= when]
