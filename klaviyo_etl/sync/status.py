"""Freshness per stream, read from `sync_state`, `sync_runs` and the tables themselves."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from klaviyo_etl.processes import is_running
from klaviyo_etl.sync.names import ALIASES, STREAM_NAMES

if TYPE_CHECKING:
    import sqlite_utils

# A stream's `sync_runs` row while it runs: `error` names the process (`process_mark`: its pid
# and start time), so that a run killed before it could record how it ended (kill -9, the
# machine stopped) is told from a live one, even once another process holds its pid.
RUNNING = "running"
KILLED = "killed"
KILLED_ERROR = (
    "the sync died before this stream finished (killed, out of memory, machine stopped);"
    " the next sync resumes from its stored pages"
)


def run_status(status: str | None, error: str | None) -> tuple[str | None, str | None]:
    """A `sync_runs` row's status and error as they stand: a `running` row whose process is
    gone is `killed` (see `start_run`); so is one whose pid another process took since."""
    if status != RUNNING:
        return status, error
    if is_running(error):
        return status, None
    return KILLED, KILLED_ERROR


STREAM_TABLES = {name: name for name in STREAM_NAMES if name != "reports"} | {"reports": "report_values"}


def humanize_age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def stream_status(db: sqlite_utils.Database, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    now = now or dt.datetime.now(dt.UTC)
    states = {r["stream"]: r for r in db["sync_state"].rows}
    last_runs = {
        r["stream"]: r
        for r in db.query(
            "SELECT stream, status, error, ended_at FROM sync_runs WHERE id IN "
            "(SELECT MAX(id) FROM sync_runs GROUP BY stream)"
        )
    }
    out = []
    for name in STREAM_NAMES:
        source = ALIASES.get(name, name)
        state = states.get(source, {})
        run = last_runs.get(source, {})
        table = STREAM_TABLES[name]
        count = db.execute(
            f"SELECT COUNT(*) FROM [{table}]"
            + (" WHERE deleted_at IS NULL" if table != "report_values" else "")
        ).fetchone()[0]
        success = state.get("last_success_at")
        run_state, run_error = run_status(run.get("status"), run.get("error"))
        age = humanize_age((now - dt.datetime.fromisoformat(success)).total_seconds()) if success else None
        out.append(
            {
                "stream": name,
                "last_success_at": success,
                "age": age,
                "watermark": state.get("watermark"),
                "rows": count,
                "last_status": run_state,
                # A killed run's own words: an older error would read as what stopped it.
                "last_error": run_error if run_state != run.get("status") else state.get("last_error"),
                # Why the last run did not sync it (a stream it reads from did not finish).
                "skipped_because": run_error if run_state == "skipped" else None,
            }
        )
    return out
