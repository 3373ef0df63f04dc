"""Freshness per stream, read from `sync_state`, `sync_runs` and the tables themselves."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from klaviyo_etl.sync.names import ALIASES, STREAM_NAMES

if TYPE_CHECKING:
    import sqlite_utils

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
        age = humanize_age((now - dt.datetime.fromisoformat(success)).total_seconds()) if success else None
        out.append(
            {
                "stream": name,
                "last_success_at": success,
                "age": age,
                "watermark": state.get("watermark"),
                "rows": count,
                "last_status": run.get("status"),
                "last_error": state.get("last_error"),
                # Why the last run did not sync it (a stream it reads from did not finish).
                "skipped_because": run.get("error") if run.get("status") == "skipped" else None,
            }
        )
    return out
