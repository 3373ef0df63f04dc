"""The sync engine: streams run concurrently inside the rate limiter; one thread writes SQLite.

Network work is asyncio (many requests in flight, paced per endpoint); every database write
goes through a single writer thread in its own transaction, so the event loop never blocks
on disk and SQLite never sees two writers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlite_utils

from klaviyo_etl.client import KlaviyoClient, RequestStats
from klaviyo_etl.db.database import open_database
from klaviyo_etl.db.lock import database_lock
from klaviyo_etl.db.repositories import Repository, utcnow
from klaviyo_etl.db.rollups import ensure_rollups
from klaviyo_etl.errors import AuthError, RevisionRetired
from klaviyo_etl.ratelimit import RateLimiter
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.state import StreamState, record_run
from klaviyo_etl.sync.streams import DEPENDS_ON, STREAM_NAMES, Stream, build_streams, resolve

__all__ = ["STREAM_NAMES", "SyncOptions", "SyncResult", "StreamResult", "run_sync"]

log = logging.getLogger(__name__)


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
    error: str | None = None
    note: str | None = None
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
        if not self.ok:
            return 1
        return 130 if any(s.status == "stopped" for s in self.streams) else 0


class Progress(Protocol):
    """Where a run reports as it goes (Rich bars on a terminal, log lines elsewhere)."""

    def start(self, stream: str) -> None: ...
    def advance(self, stream: str, rows: int, pages: int, requests: int) -> None: ...
    def finish(self, result: StreamResult) -> None: ...


def _is_fatal(exc: Exception) -> bool:
    return isinstance(exc, RevisionRetired) or (isinstance(exc, AuthError) and exc.status == 401)


class ParserPools:
    """A process pool for parsing bulk loads, started only if a stream asks for it."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: Executor | None = None

    def get(self) -> Executor:
        if self._pool is None:
            from klaviyo_etl.sync.parsing import parser_pool

            self._pool = parser_pool(self.workers)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


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

    async def write(self, fn: Callable[[Repository], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._transaction, fn)

    async def run(self, fn: Callable[[Repository], Any]) -> Any:
        """Run `fn` on the writer thread, managing its own transactions."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, self.repo)

    async def read(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        def query(_: Repository) -> list[dict[str, Any]]:
            cursor = self.db.execute(sql, params)
            cols = [c[0] for c in cursor.description]
            return [dict(zip(cols, row, strict=True)) for row in cursor.fetchall()]

        return await asyncio.get_running_loop().run_in_executor(self.pool, query, self.repo)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


@dataclass
class StreamRun:
    """What a stream sees while it runs: its state, the client, the writer, the clock."""

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
    note: str | None = None

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
        return utcnow()

    async def pages(self, path: str, params: dict[str, Any], **parsing: Any):
        async for page in self.client.pages(path, params, stats=self.stats, **parsing):
            if self.stop.is_set():
                raise Stopped()
            yield page

    async def post(self, path: str, body: Any) -> dict[str, Any]:
        if self.stop.is_set():
            raise Stopped()
        return await self.client.post(path, body, stats=self.stats)

    async def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return await self.writer.read(sql, params)

    async def commit(
        self, fn: Callable[[Repository], Any], rows: int | None = None, **state_columns: Any
    ) -> None:
        """Write one page with the stream's state as of now, in one transaction, and count it.

        rows=None marks bookkeeping rather than a page; `state_columns` go to `sync_state`.

        Counting happens in the writer thread right after the commit, so a page that commits
        while its task is being cancelled (a stop, a failing sibling) is still counted.
        """

        snapshot = self.state.snapshot()

        def write_and_count(repo: Repository) -> None:
            fn(repo)
            self.state.save(repo.db, snapshot, **state_columns)
            if rows is not None:
                self.page_count += 1
                self.rows += rows

        await self.writer.write(write_and_count)
        if self.progress:
            self.progress.advance(self.name, self.rows, self.page_count, self.stats.requests)


def _due_for_reconcile(state: StreamState, options: SyncOptions, now: dt.datetime) -> bool:
    if options.reconcile is not None:
        return options.reconcile
    if not state.last_reconcile_at:
        return state.watermark is None  # first run is a full scan anyway
    age = now - dt.datetime.fromisoformat(state.last_reconcile_at)
    return age >= dt.timedelta(days=options.reconcile_days)


async def _run_async(
    settings: Settings,
    options: SyncOptions,
    db: sqlite_utils.Database,
    run_id: str,
    progress: Progress | None,
    stop: threading.Event,
    client_factory: Callable[[], KlaviyoClient],
) -> list[StreamResult]:
    streams = build_streams()
    names = resolve(options.streams)
    writer = Writer(db)
    pools = ParserPools(workers=min(4, max(2, os.cpu_count() or 2)))
    results: dict[str, StreamResult] = {}
    fatal: list[Exception] = []
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        async with client_factory() as client:

            async def run_one(name: str) -> None:
                stream: Stream = streams[name]
                # Read on the writer thread, never beside one of its open transactions.
                state = await writer.run(lambda repo: StreamState.load(repo.db, name))
                full = options.full_refresh or (
                    stream.reconcilable and _due_for_reconcile(state, options, started)
                )
                run = StreamRun(name, state, client, writer, options, started, full, stop, progress, pools)
                result = StreamResult(name, "ok", started_at=utcnow())
                if progress:
                    progress.start(name)
                try:
                    await stream.run(run)
                except Stopped:
                    result.status, result.error = "stopped", "stopped before completion"
                except Exception as exc:  # one stream failing must not stop the others
                    log.debug("stream %s failed", name, exc_info=True)
                    result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
                    if _is_fatal(exc):
                        # The key or the revision is wrong for every stream alike: stop them
                        # all and say it once, instead of one identical failure per stream.
                        result.error = str(exc)
                        fatal.append(exc)
                        stop.set()

                def record(repo: Repository) -> None:
                    # Runs after every page this stream queued (one FIFO writer), so the
                    # counts are final and match the rows stored.
                    result.rows, result.pages, result.deleted = run.rows, run.page_count, run.deleted
                    result.requests, result.retries = run.stats.requests, run.stats.retries
                    result.throttled, result.note = run.stats.throttled, run.note
                    result.ended_at = utcnow()
                    record_run(repo.db, run_id, result)

                await writer.write(record)
                results[name] = result
                if progress and not fatal:
                    progress.finish(result)

            finished = {name: asyncio.Event() for name in names}

            async def run_when_ready(name: str) -> None:
                """Independent streams run at once; a stream waits for those it reads from."""
                needs = [d for d in DEPENDS_ON.get(name, ()) if d in finished]
                try:
                    for dep in needs:
                        await finished[dep].wait()
                    failed = [d for d in needs if results[d].status != "ok"]
                    if failed:
                        results[name] = StreamResult(
                            name, "skipped", error=f"{', '.join(failed)} did not finish", ended_at=utcnow()
                        )
                    else:
                        await run_one(name)
                finally:
                    finished[name].set()

            await asyncio.gather(*(run_when_ready(n) for n in names))
            if any(r.rows for r in results.values()) and not stop.is_set():
                # Keep the report rollups current here, so the first report after a big
                # sync answers at once instead of catching up.
                await writer.run(lambda repo: ensure_rollups(repo.db))
    finally:
        pools.close()
        writer.close()
    if fatal:
        raise fatal[0]
    return [results[n] for n in names if n in results]


def make_client(settings: Settings, limiter: RateLimiter | None = None, **kwargs: Any):
    kwargs.setdefault("max_attempts", settings.retries + 1)
    return lambda: KlaviyoClient(
        settings.require_api_key(),
        base_url=settings.base_url,
        revision=settings.revision,
        limiter=limiter,
        **kwargs,
    )


def run_sync(
    settings: Settings,
    options: SyncOptions,
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    client_factory: Callable[[], KlaviyoClient] | None = None,
) -> SyncResult:
    """Run the requested streams under the database lock; see `klaviyo_etl.sync`."""
    resolve(options.streams)  # fail on bad names before taking the lock
    factory = client_factory or make_client(settings)
    if client_factory is None:
        settings.require_api_key()  # a missing key is a usage error before the lock is taken
    run_id = uuid.uuid4().hex[:12]
    with database_lock(settings.db_path):
        db = open_database(settings.db_path)
        try:
            results = asyncio.run(
                _run_async(settings, options, db, run_id, progress, stop or threading.Event(), factory)
            )
        finally:
            db.close()
    return SyncResult(run_id, results)
