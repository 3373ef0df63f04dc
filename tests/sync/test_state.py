"""Watermark state: what `sync_state` keeps per stream, and how marks advance. No server."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

from klaviyo_etl.db import open_database
from klaviyo_etl.models import Resource
from klaviyo_etl.sync.options import StreamResult
from klaviyo_etl.sync.state import StreamState, record_run, start_run
from klaviyo_etl.sync.status import stream_status
from klaviyo_etl.sync.streams.base import clamp, earlier, later, latest


def test_a_stream_never_synced_has_no_watermark(tmp_path):
    db = open_database(tmp_path / "k.db")
    state = StreamState.load(db, "events")
    assert state == StreamState("events")
    assert state.watermark is None and state.extra == {}


def test_a_saved_state_loads_back_with_its_per_parent_marks(tmp_path):
    db = open_database(tmp_path / "k.db")
    state = StreamState("list_members", watermark="2026-05-01T00:00:00+00:00")
    state.extra.update({"L2": "2026-05-02T00:00:00+00:00", "L1": "2026-04-30T00:00:00+00:00"})
    with db.atomic():
        state.save(db, last_reconcile_at="2026-05-03T00:00:00+00:00")
    loaded = StreamState.load(db, "list_members")
    assert loaded.watermark == "2026-05-01T00:00:00+00:00"
    assert loaded.extra == state.extra
    assert loaded.last_reconcile_at == "2026-05-03T00:00:00+00:00"
    stored = next(db["sync_state"].rows_where("stream = ?", ["list_members"]))
    assert list(json.loads(stored["extra"])) == ["L1", "L2"]  # stable text: keys sorted


def test_a_snapshot_keeps_the_marks_as_they_were_when_the_page_was_queued(tmp_path):
    db = open_database(tmp_path / "k.db")
    state = StreamState("campaigns", watermark="2026-05-01T00:00:00+00:00", extra={"email": "a"})
    snapshot = state.snapshot()
    state.watermark = "2026-06-01T00:00:00+00:00"
    state.extra["email"] = "b"  # a later page moved on before the first one was written
    with db.atomic():
        state.save(db, snapshot)
    loaded = StreamState.load(db, "campaigns")
    assert loaded.watermark == "2026-05-01T00:00:00+00:00" and loaded.extra == {"email": "a"}


def test_saving_again_keeps_the_columns_it_does_not_name(tmp_path):
    db = open_database(tmp_path / "k.db")
    state = StreamState("flows", watermark="w1")
    with db.atomic():
        state.save(db, last_reconcile_at="r1")
        state.watermark = "w2"
        state.save(db)
    loaded = StreamState.load(db, "flows")
    assert (loaded.watermark, loaded.last_reconcile_at) == ("w2", "r1")


def test_recording_runs_sums_rows_and_keeps_the_last_error_until_a_success(tmp_path):
    db = open_database(tmp_path / "k.db")

    def result(status, rows, error=None, at="2026-05-01T00:00:00+00:00"):
        return SimpleNamespace(
            stream="tags",
            started_at=at,
            ended_at=at,
            status=status,
            rows=rows,
            pages=1,
            requests=1,
            retries=0,
            throttled=0,
            warnings=0,
            error=error,
        )

    record_run(db, "r1", result("ok", 5, at="2026-05-01T00:00:00+00:00"))
    record_run(db, "r2", result("failed", 2, "boom", at="2026-05-02T00:00:00+00:00"))
    row = next(db["sync_state"].rows_where("stream = ?", ["tags"]))
    assert row["rows_total"] == 7 and row["last_error"] == "boom"
    assert row["last_success_at"] == "2026-05-01T00:00:00+00:00"
    assert row["last_attempt_at"] == "2026-05-02T00:00:00+00:00"
    record_run(db, "r3", result("ok", 0, at="2026-05-03T00:00:00+00:00"))
    row = next(db["sync_state"].rows_where("stream = ?", ["tags"]))
    assert row["last_error"] is None and row["last_success_at"] == "2026-05-03T00:00:00+00:00"


def _resource(updated: str | None) -> Resource:
    attributes = {"updated": updated} if updated else {}
    return Resource.model_validate({"type": "list", "id": updated or "x", "attributes": attributes})


def test_a_page_moves_the_mark_to_its_latest_value_compared_as_times():
    page = [
        _resource("2026-05-01T10:00:00+00:00"),
        _resource("2026-05-01T11:30:00+02:00"),  # 09:30 UTC: earlier, though larger as text
        _resource(None),
    ]
    assert latest(page, "updated") == "2026-05-01T10:00:00+00:00"
    assert latest([_resource(None)], "updated") is None


def test_a_mark_never_moves_back():
    a, b = "2026-05-01T10:00:00Z", "2026-05-01T09:00:00+00:00"
    assert later(a, b) == a and later(b, a) == a
    assert later(None, b) == b and later(a, None) == a and later(None, None) is None


def test_since_against_a_stored_mark_takes_the_earlier_and_a_mark_never_passes_the_start():
    a, b = "2026-05-01T10:00:00Z", "2026-05-01T11:00:00+02:00"  # b is 09:00 UTC
    assert earlier(a, b) == b and earlier(b, a) == b
    assert earlier(None, a) == a and earlier(a, None) == a and earlier(None, None) is None
    start = dt.datetime(2026, 5, 1, 9, 30, tzinfo=dt.UTC)
    assert clamp(a, start) == "2026-05-01T09:30:00+00:00"
    assert clamp(b, start) == b and clamp(None, start) is None


def test_a_running_stream_reads_running_until_its_process_is_gone_then_killed(tmp_path):
    db = open_database(tmp_path / "k.db")

    def events() -> tuple:
        row = next(r for r in stream_status(db) if r["stream"] == "events")
        return row["last_status"], row["last_error"]

    start_run(db, "run1", "events", "2026-05-01T00:00:00+00:00")
    assert events() == ("running", None)  # this process runs it
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    db.execute("UPDATE sync_runs SET error = ? WHERE run_id = 'run1'", [f"pid {gone.stdout.strip()}"])
    status, error = events()
    assert status == "killed" and error.startswith("the sync died before this stream finished")
    # The next run holds the lock: the dead run's row is settled in the history, and the new
    # run's own row is recorded in place of its `running` one.
    start_run(db, "run2", "events", "2026-05-01T01:00:00+00:00")
    ended = StreamResult(
        "events", "ok", rows=5, started_at="2026-05-01T01:00:00+00:00", ended_at="2026-05-01T01:01:00+00:00"
    )
    record_run(db, "run2", ended)
    assert [(r["run_id"], r["status"]) for r in db["sync_runs"].rows] == [("run1", "killed"), ("run2", "ok")]
    assert events() == ("ok", None)


def test_a_killed_run_whose_pid_another_process_took_reads_killed_not_running(tmp_path):
    """A pid is reused once its process is gone: the row named only the pid, and a killed run
    whose pid another process now held read `running` for ever (and `schedule` waited on it)."""
    path = tmp_path / "k.db"
    open_database(path).close()
    code = (
        "import sys; from klaviyo_etl.db import open_database; from klaviyo_etl.sync.state import start_run;"
        " start_run(open_database(sys.argv[1]), 'run1', 'events', '2026-05-01T00:00:00+00:00')"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)  # it dies `running`
    db = open_database(path)
    (mark,) = db.execute("SELECT error FROM sync_runs WHERE run_id = 'run1'").fetchone()
    # Another process (this one) now holds the dead run's pid.
    reused = re.sub(r"^pid \d+", f"pid {os.getpid()}", mark)
    db.execute("UPDATE sync_runs SET error = ? WHERE run_id = 'run1'", [reused])
    row = next(r for r in stream_status(db) if r["stream"] == "events")
    assert row["last_status"] == "killed", (mark, row)
    # A row written before start times were recorded (`pid N`) is still judged by its pid.
    db.execute("UPDATE sync_runs SET error = ? WHERE run_id = 'run1'", [f"pid {os.getpid()}"])
    assert next(r for r in stream_status(db) if r["stream"] == "events")["last_status"] == "running"
