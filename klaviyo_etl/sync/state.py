"""Per-stream bookkeeping in `sync_state` and `sync_runs`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from klaviyo_etl.db.repositories import Repository
from klaviyo_etl.processes import process_mark
from klaviyo_etl.sync.status import KILLED, KILLED_ERROR, RUNNING


@dataclass
class StreamState:
    """The stored watermark of one stream (plus per-parent / per-channel marks in `extra`)."""

    stream: str
    watermark: str | None = None
    last_success_at: str | None = None
    last_reconcile_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, db: sqlite_utils.Database, stream: str) -> StreamState:
        rows = list(db["sync_state"].rows_where("stream = ?", [stream]))
        if not rows:
            return cls(stream)
        row = rows[0]
        return cls(
            stream,
            row["watermark"],
            row["last_success_at"],
            row["last_reconcile_at"],
            json.loads(row["extra"] or "{}"),
        )

    def snapshot(self) -> dict[str, Any]:
        """The state as it stands now, to be written with the page that produced it.

        Taken when a page is queued, not when it is written: by then other pages may have
        moved the in-memory marks past rows that are still waiting in the queue.
        """
        return {
            "stream": self.stream,
            "watermark": self.watermark,
            "extra": json.dumps(self.extra, sort_keys=True),
        }

    def save(self, db: sqlite_utils.Database, snapshot: dict[str, Any] | None = None, **columns: Any) -> None:
        """Upsert a snapshot of this state (inside the caller's transaction).

        One prepared statement (`Repository.upsert`): this runs with every page, and
        sqlite-utils' `upsert` reads the schema each time (~1 ms a page under a first load,
        ~0.5 us of CPU per event; issue 12)."""
        Repository(db).upsert("sync_state", [{**(snapshot or self.snapshot()), **columns}], pk="stream")


def start_run(db: sqlite_utils.Database, run_id: str, stream: str, started_at: str) -> None:
    """The stream's `sync_runs` row, `running` until `record_run` says how it ended.

    Called under the database lock, so an older `running` row of the stream belongs to a
    run that died: it is marked `killed` now."""
    with db.atomic():
        db.execute(
            "UPDATE sync_runs SET status = ?, error = ? WHERE stream = ? AND status = ?",
            [KILLED, KILLED_ERROR, stream, RUNNING],
        )
        db["sync_runs"].insert(
            {
                "run_id": run_id,
                "stream": stream,
                "started_at": started_at,
                "status": RUNNING,
                "error": process_mark(),
            }
        )


def record_run(db: sqlite_utils.Database, run_id: str, result: Any) -> None:
    """One `sync_runs` row per stream per run (the one `start_run` made, if it did), and the
    stream's summary in `sync_state`."""
    with db.atomic():
        db.execute(
            "DELETE FROM sync_runs WHERE run_id = ? AND stream = ? AND status = ?",
            [run_id, result.stream, RUNNING],
        )
        db["sync_runs"].insert(
            {
                "run_id": run_id,
                "stream": result.stream,
                "started_at": result.started_at,
                "ended_at": result.ended_at,
                "status": result.status,
                "rows": result.rows,
                "pages": result.pages,
                "requests": result.requests,
                "retries": result.retries,
                "throttled": result.throttled,
                "warnings": result.warnings,
                "error": result.error,
            }
        )
        total = db.execute(
            "SELECT COALESCE(SUM(rows), 0) FROM sync_runs WHERE stream = ?", [result.stream]
        ).fetchone()[0]
        columns: dict[str, Any] = {
            "stream": result.stream,
            "last_attempt_at": result.ended_at,
            "rows_total": total,
        }
        if result.status == "ok":
            columns.update(last_success_at=result.ended_at, last_error=None)
        elif result.status == "failed":
            columns["last_error"] = result.error
        db["sync_state"].upsert(columns, pk="stream")
