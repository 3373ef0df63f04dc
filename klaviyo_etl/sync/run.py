"""What a stream sees while it runs (`StreamRun`), and the single writer behind it.

The engine builds one `StreamRun` per stream; the streams (`klaviyo_etl.sync.streams`) only
read from it and write through it, so they never import the engine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlite_utils

from klaviyo_etl.client import KlaviyoClient, RequestStats
from klaviyo_etl.db.repositories import Repository
from klaviyo_etl.errors import PaginationLoop
from klaviyo_etl.sync.options import Progress, SyncOptions
from klaviyo_etl.sync.parsing import ModelPage, parser_pool
from klaviyo_etl.sync.state import StreamState
from klaviyo_etl.timeutil import utcnow_iso

T = TypeVar("T")


class ParserPools:
    """Where bulk loads parse, started only if a stream asks for it: one thread of this
    process (`workers=0`, the default: see `klaviyo_etl.sync.parsing`), or a pool of
    `workers` processes.

    Tried and dropped (issue 12, measured 2026-12-02 at 200,000 events): parsing on the
    writer's own thread instead. `executemany` lets go of the GIL for every row it steps and
    takes it back for the next, and beside the parse thread it waited for it: its 1.5-1.9 s
    of CPU took 2.7-3.3 s of wall, 2.2-2.4 s without the parse thread. But the sync was no
    faster: a first set of 4 alternated runs had events ~1 % faster, a second had events
    7.13 -> 7.18 s and profiles 3.12 -> 3.19 s (medians of 4; profiles' own span 0.97 ->
    0.94 of the ceiling, in every run). Each page's parse then waits behind the writes
    queued before it, and with it the window's next request."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: Executor | None = None

    def get(self) -> Executor:
        if self._pool is None:
            if self.workers > 0:
                self._pool = parser_pool(self.workers)
            else:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class WriteAbandoned(Exception):
    """A write queued after one of its stream's writes failed, not attempted; its cause is
    that first failure (what the stream reports)."""


def _seen(future: asyncio.Future) -> None:
    """Mark a write's failure as retrieved: the stream reports its first write error itself."""
    if not future.cancelled():
        future.exception()


class Stopped(Exception):
    """The stop event was set; the run ends after the page being written commits."""


class Writer:
    """The single writer: runs write functions one at a time, each in its own transaction."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db
        self.repo = Repository(db)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

    def _transaction(self, fn: Callable[[Repository], Any]) -> Any:
        with self.db.atomic():
            return fn(self.repo)

    def submit(self, fn: Callable[[Repository], Any]) -> asyncio.Future:
        """Queue `fn` for its own transaction (writes run in the order they were queued)."""
        return asyncio.get_running_loop().run_in_executor(self.pool, self._transaction, fn)

    async def write(self, fn: Callable[[Repository], Any]) -> Any:
        return await self.submit(fn)

    async def run(self, fn: Callable[[Repository], T]) -> T:
        """Run `fn` on the writer thread, managing its own transactions (or reading)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, self.repo)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


@dataclass
class StreamRun:
    """What a stream sees while it runs: its state, the client, the writer, the clock.

    Two clocks, never mixed: `started` and `server_now()` are Klaviyo's (from its `Date`
    header), for filters and watermarks compared with Klaviyo's timestamps; `now_iso()` is
    ours, for the bookkeeping compared with our own stamps (`synced_at`, `last_reconcile_at`).
    """

    name: str
    state: StreamState
    client: KlaviyoClient
    writer: Writer
    options: SyncOptions
    started: dt.datetime
    full_scan: bool
    stop: threading.Event
    progress: Progress | None
    pools: ParserPools | None = None
    stats: RequestStats = field(default_factory=RequestStats)
    rows: int = 0
    page_count: int = 0
    deleted: int = 0
    warnings: int = 0
    note: str | None = None
    # (seconds of the time range read, seconds in it) for a stream that knows its range
    # (the windowed ones): the progress shows percent done and an ETA from it.
    covered: tuple[float, float] | None = None
    # The first of this stream's writes that failed: those queued after it are not attempted
    # (`WriteAbandoned`, which carries it as its cause).
    write_error: BaseException | None = None

    @property
    def since(self) -> str | None:
        return self.options.since

    @property
    def lookback(self) -> dt.timedelta:
        return dt.timedelta(days=self.options.lookback_days)

    @property
    def safety_lag(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.options.safety_lag_minutes)

    @property
    def started_iso(self) -> str:
        return self.started.isoformat(timespec="seconds")

    def now_iso(self) -> str:
        """Our clock now, for bookkeeping compared with `synced_at` stamps."""
        return utcnow_iso()

    def server_now(self) -> dt.datetime:
        """Klaviyo's clock now, for filters compared with Klaviyo's timestamps."""
        return self.client.server_now()

    async def pages(self, path: str, params: dict[str, Any], **parsing: Any):
        """The pages of one walk; a next link it already followed ends it with
        `PaginationLoop` (after the page that sent it, which is stored as usual)."""
        parsing.setdefault("parse", ModelPage.parse_json)
        followed: set[str] = set()
        async for page in self.client.pages(path, params, stats=self.stats, **parsing):
            if self.stop.is_set():
                raise Stopped()
            link = page.links.next
            yield page
            if link in followed:
                raise PaginationLoop(
                    f"GET {path}: Klaviyo's next link repeats one already followed (after"
                    f" {len(followed) + 1} pages); stopped rather than read the same pages for ever;"
                    " the next sync tries again"
                )
            if link:
                followed.add(link)

    async def post(self, path: str, body: Any) -> dict[str, Any]:
        if self.stop.is_set():
            raise Stopped()
        return await self.client.post(path, body, stats=self.stats)

    async def read(self, fn: Callable[[Repository], T]) -> T:
        """Read through a repository method, on the writer thread (never beside a write)."""
        return await self.writer.run(fn)

    def queue(
        self,
        fn: Callable[[Repository], Any],
        rows: int | None = None,
        *,
        warnings: int = 0,
        **state_columns: Any,
    ) -> asyncio.Future:
        """Queue one page's write with the stream's state as of now, in one transaction, and
        count it; the caller may fetch its next page while this one is written.

        rows=None marks bookkeeping rather than a page; `warnings` counts values the page
        stored raw; `state_columns` go to `sync_state`.

        Writes run in the order they are queued, each with the state as it was when it was
        queued, so the stored state never claims rows still waiting behind it. Once one of
        this stream's writes has failed, those queued after it fail too rather than store a
        state that claims the lost page's rows. Counting happens in the writer thread right
        after the commit, so a page that commits while its task is being cancelled (a stop,
        a failing sibling) is still counted.
        """
        snapshot = self.state.snapshot()

        def write_and_count(repo: Repository) -> None:
            if (earlier := self.write_error) is not None:
                raise WriteAbandoned(f"{self.name}: an earlier write of this stream failed") from earlier
            try:
                fn(repo)
                self.state.save(repo.db, snapshot, **state_columns)
            except BaseException as exc:
                self.write_error = exc
                raise
            if rows is not None:
                self.page_count += 1
                self.rows += rows
            self.warnings += warnings

        done = self.writer.submit(write_and_count)
        if self.progress:
            done.add_done_callback(self._advance)
        # A task cancelled while it waits (a failing sibling) leaves its write queued: dropping
        # it would let the writes queued after it store a state that claims its rows. A write
        # nobody waits for any more (its window failed, or one queued without waiting: an early
        # index build) fails as the stream's first write error says, not as an asyncio warning.
        done.add_done_callback(_seen)  # also when the shield below was cancelled
        shielded = asyncio.shield(done)
        shielded.add_done_callback(_seen)
        return shielded

    def _advance(self, done: asyncio.Future) -> None:
        if self.progress and not done.cancelled() and done.exception() is None:
            self.progress.advance(self.name, self.rows, self.page_count, self.stats.requests, self.covered)

    async def commit(
        self,
        fn: Callable[[Repository], Any],
        rows: int | None = None,
        *,
        warnings: int = 0,
        **state_columns: Any,
    ) -> None:
        """`queue` the write and wait until it is stored."""
        await self.queue(fn, rows, warnings=warnings, **state_columns)
