"""The single writer behind a stream (`StreamRun.queue`): order, and what a failed write leaves."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading

import pytest

from klaviyo_etl.db import open_database
from klaviyo_etl.sync.options import SyncOptions
from klaviyo_etl.sync.run import StreamRun, WriteAbandoned, Writer
from klaviyo_etl.sync.state import StreamState


def _run(db, writer: Writer) -> StreamRun:
    return StreamRun(
        "events",
        StreamState("events"),
        client=None,  # type: ignore[arg-type]  # no request is made
        writer=writer,
        options=SyncOptions(),
        started=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        full_scan=False,
        stop=threading.Event(),
        progress=None,
    )


def test_writes_queued_after_a_failed_one_are_not_stored_so_the_state_never_claims_its_rows(tmp_path):
    """Pages are queued while earlier ones are written; each carries the watermark as it stood
    when queued, which may already count a page ahead of it in the queue. A failed page must
    not be followed by a stored watermark that claims its rows (a resumed run would skip them)."""
    db = open_database(tmp_path / "k.db")
    db.execute("CREATE TABLE pages (n INTEGER)")
    writer = Writer(db)

    def failing(repo):
        repo.db.execute("INSERT INTO pages (n) VALUES (1)")
        raise sqlite3.IntegrityError("disk said no")

    async def scenario() -> tuple[BaseException | None, BaseException | None]:
        run = _run(db, writer)
        run.state.watermark = "2026-10-01T00:00:00+00:00"
        first = run.queue(failing, 1)
        run.state.watermark = "2026-10-02T00:00:00+00:00"  # counts the first page's rows
        second = run.queue(lambda repo: repo.db.execute("INSERT INTO pages (n) VALUES (2)"), 1)
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert run.rows == 0 and run.page_count == 0
        return results[0], results[1]

    try:
        first, second = asyncio.run(scenario())
    finally:
        writer.close()
    assert isinstance(first, sqlite3.IntegrityError)
    assert isinstance(second, WriteAbandoned) and second.__cause__ is first
    assert db.execute("SELECT count(*) FROM pages").fetchone()[0] == 0
    assert StreamState.load(db, "events").watermark is None


def test_a_queued_write_is_stored_even_if_the_task_waiting_for_it_is_cancelled(tmp_path):
    """A worker cancelled by a failing sibling leaves its page queued: the pages queued after
    it, with states that count its rows, are stored too, so it must be."""
    db = open_database(tmp_path / "k.db")
    db.execute("CREATE TABLE pages (n INTEGER)")
    writer = Writer(db)
    gate = threading.Event()

    async def scenario() -> None:
        run = _run(db, writer)
        blocker = run.queue(lambda repo: gate.wait(5))  # the writer is busy
        waiting = asyncio.ensure_future(
            run.queue(lambda repo: repo.db.execute("INSERT INTO pages VALUES (1)"), 1)
        )
        await asyncio.sleep(0.01)
        waiting.cancel()
        last = run.queue(lambda repo: repo.db.execute("INSERT INTO pages VALUES (2)"), 1)
        gate.set()
        await blocker
        await last
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert run.rows == 2

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
    assert [r[0] for r in db.execute("SELECT n FROM pages ORDER BY n")] == [1, 2]
