"""The sync engine: streams run concurrently inside the rate limiter; one thread writes SQLite.

Network work is asyncio (many requests in flight, paced per endpoint); every database write
goes through a single writer thread in its own transaction, so the event loop never blocks
on disk and SQLite never sees two writers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from klaviyo_etl.client import KlaviyoClient, RequestStats
from klaviyo_etl.db.lock import database_lock
from klaviyo_etl.errors import FatalError, KlaviyoEtlError, StreamSkipped, TransientError
from klaviyo_etl.ratelimit import RateLimiter
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.collector import fewer_collections
from klaviyo_etl.sync.concurrency import gather_or_cancel
from klaviyo_etl.sync.first_row import FIRST_ROW_PATHS, read_first_row, starts_at_first_row
from klaviyo_etl.sync.memory import release_free_memory, tune_malloc
from klaviyo_etl.sync.names import DEPENDS_ON, STREAM_NAMES, resolve
from klaviyo_etl.sync.options import Progress, StreamResult, SyncOptions
from klaviyo_etl.sync.status import humanize_age
from klaviyo_etl.timeutil import utcnow_iso

if TYPE_CHECKING:
    import sqlite_utils

    from klaviyo_etl.db.repositories import Repository
    from klaviyo_etl.sync.run import ParserPools, Writer
    from klaviyo_etl.sync.state import StreamState
    from klaviyo_etl.sync.streams import Stream

__all__ = ["STREAM_NAMES", "Progress", "SyncOptions", "SyncResult", "StreamResult", "run_sync"]

log = logging.getLogger(__name__)


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


# Klaviyo's clock and ours may differ by this much before a run says so.
CLOCK_TOLERANCE = dt.timedelta(minutes=1)
# The request that reads Klaviyo's clock (its `Date` header) before any stream starts.
CLOCK_PATH, CLOCK_PARAMS = "/api/metrics", {"fields[metric]": "name"}


def _due_for_reconcile(state: StreamState, options: SyncOptions, now: dt.datetime) -> bool:
    if options.reconcile is not None:
        return options.reconcile
    if not state.last_reconcile_at:
        # Never a complete scan: the first run, or a first load that did not finish (its
        # watermark is set, but rows deleted before it resumes were never checked).
        return True
    age = now - dt.datetime.fromisoformat(state.last_reconcile_at)
    return age >= dt.timedelta(days=options.reconcile_days)


async def _run_async(
    settings: Settings,
    options: SyncOptions,
    open_db: Callable[[], sqlite_utils.Database],
    run_id: str,
    progress: Progress | None,
    stop: threading.Event,
    client_factory: Callable[[], KlaviyoClient],
    pools: ParserPools | None = None,  # several accounts share one (see sync/accounts.py)
) -> list[StreamResult]:
    """Run the streams; `open_db` opens the database (the caller closes it), called on a
    thread while the request for Klaviyo's clock is out (a fresh database's migrations take
    about as long as that request: issue 12), after that thread loads the streams and the
    database layer (`load_parts`). On a database not created yet, the requests for the
    windowed streams' oldest rows go out with the clock's (`klaviyo_etl.sync.first_row`)."""
    names = resolve(options.streams)
    writer: Writer | None = None
    results: dict[str, StreamResult] = {}
    fatal: list[Exception] = []
    local_started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    fresh = not os.path.exists(settings.db_path)
    try:
        async with client_factory() as client:

            async def read_clock() -> tuple[RequestStats, dt.datetime]:
                stats = await _read_server_clock(client)
                # Watermarks and windows hang off Klaviyo's time: with our clock ahead of its,
                # events dated in between would never be read.
                return stats, client.server_now().replace(microsecond=0)

            def full_scan(stream: Stream, state: StreamState) -> bool:
                return options.full_refresh or (
                    stream.reconcilable and _due_for_reconcile(state, options, local_started)
                )

            def before_clock(name: str, state: StreamState) -> tuple[RequestStats, asyncio.Future]:
                """The stream's requests that need no clock, sent while it is being read."""
                stream, stats = streams[name], RequestStats()
                early = stream.before_clock(client, state, options, full_scan(stream, state), stats)
                return stats, asyncio.ensure_future(early)

            def first_row(name: str) -> tuple[RequestStats, asyncio.Future]:
                """A windowed stream's oldest row, read before the streams are loaded."""
                stats, endpoint = RequestStats(), client.contract.by_path(FIRST_ROW_PATHS[name])
                return stats, asyncio.ensure_future(read_first_row(client, endpoint, stats))

            reading = asyncio.ensure_future(read_clock())
            firsts: dict[str, tuple[RequestStats, asyncio.Future]] = {}
            try:
                # A database not created yet holds no state: a first load's requests for the
                # oldest rows go out with the clock's, not after the streams, the database layer
                # and pydantic have loaded (~0.15 s), nor after the migrations (issue 12).
                firsts = {
                    n: first_row(n)
                    for n in names
                    if fresh and n in FIRST_ROW_PATHS and starts_at_first_row(options.since, None, False)
                }
                await asyncio.sleep(0)  # let them connect before that thread's imports take the GIL
                parts = await asyncio.to_thread(load_parts)
                if any(n not in FIRST_ROW_PATHS for n in names):
                    # Their pages are read with the models (pydantic, ~0.09 s): loaded here, not
                    # on the event loop at the first of them. Events and profiles need neither.
                    await asyncio.to_thread(parts.models)
                streams: dict[str, Stream] = parts.build_streams()
                db = await asyncio.to_thread(open_db)
                # Before any stream writes: a key of another account must not touch this one's data.
                await parts.ensure_same_account(client, db, settings.db_path, checked := RequestStats())
            except BaseException:
                for task in [reading, *(task for _, task in firsts.values())]:
                    task.cancel()
                await asyncio.gather(reading, *(task for _, task in firsts.values()), return_exceptions=True)
                raise
            pools = pools or parts.ParserPools(workers=options.parse_workers)
            writer = parts.Writer(db)

            async def run_one(name: str) -> None:
                stream: Stream = streams[name]
                # Read on the writer thread, never beside one of its open transactions.
                state = await writer.run(lambda repo: parts.StreamState.load(repo.db, name))
                full = full_scan(stream, state)
                read_first = firsts.pop(name, None)
                stats, early_requests = read_first or before_clock(name, state)
                if progress:  # its time counts from here: early requests may fail after retries
                    progress.start(name)
                early: Exception | None = None
                try:
                    found = await early_requests
                    if read_first is not None:  # a windowed stream's, read before it was built
                        stream.use_first_row(found)
                except Exception as exc:  # the stream fails with it below, as if `run` had
                    early = exc
                clock_stats, started = await reading
                run = parts.StreamRun(
                    name, state, client, writer, options, started, full, stop, progress, pools
                )
                run.stats = stats
                if name == names[0]:  # the clock and account requests count with the first stream
                    stats.add(clock_stats)
                    stats.add(checked)
                result = StreamResult(name, "ok", started_at=utcnow_iso())
                try:
                    # `running` until `record` says how it ended: a kill -9 leaves it, and
                    # `status` then says the run was killed instead of nothing at all.
                    await writer.write(lambda repo: parts.start_run(repo.db, run_id, name, result.started_at))
                    if early is not None:
                        raise early
                    await stream.run(run)
                except parts.Stopped:
                    result.status, result.error = "stopped", "stopped before completion"
                except StreamSkipped as exc:  # skip-and-note: the run and its exit code go on
                    result.status, result.error = "skipped", str(exc)
                except Exception as exc:  # one stream failing must not stop the others
                    log.debug("stream %s failed", name, exc_info=True)
                    if isinstance(exc, parts.WriteAbandoned) and isinstance(exc.__cause__, Exception):
                        exc = exc.__cause__  # the write that failed first: what the user must fix
                    result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
                    if isinstance(exc, TransientError) and stop.is_set():
                        # The stop ended the client's retries: stopped, not failed.
                        result.status, result.error = "stopped", "stopped before completion"
                    elif isinstance(exc, TransientError):  # say what to do: wait for the next run
                        tries = client.max_attempts
                        said = result.error.rstrip(".")  # httpx's messages end with one
                        result.error = f"{said}; gave up after {tries} attempts, the next sync tries again"
                    elif isinstance(exc, FatalError):
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
                    result.warnings = run.warnings
                    result.throttled, result.note = run.stats.throttled, run.note
                    result.ended_at = utcnow_iso()
                    parts.record_run(repo.db, run_id, result)

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
                        now = utcnow_iso()
                        skipped = StreamResult(
                            name,
                            "skipped",
                            error=f"{', '.join(failed)} did not finish",
                            started_at=now,
                            ended_at=now,
                        )
                        results[name] = skipped
                        # In sync_runs too: `status` and the schedule read the run from there.
                        await writer.write(lambda repo: parts.record_run(repo.db, run_id, skipped))
                        if progress and not fatal:  # say so: not synced is not silence
                            progress.finish(skipped)
                    else:
                        await run_one(name)
                finally:
                    finished[name].set()

            # A failure no stream catches (its bookkeeping write on a full disk) cancels the
            # others and waits for them: left to asyncio.run's shutdown, a window whose write
            # failed meanwhile logged "unhandled exception during asyncio.run() shutdown" and
            # its traceback, under --quiet too.
            await gather_or_cancel(*(run_when_ready(n) for n in names))
            if any(r.rows for r in results.values()) and not stop.is_set():
                # Keep the report rollups current here, so the first report after a big
                # sync answers at once instead of catching up.
                await writer.run(
                    lambda repo: parts.ensure_rollups(repo.db, conversion=options.conversion_metric)
                )
    finally:
        if pools is not None:
            pools.close()
        if writer is not None:
            writer.close()
    if fatal:
        raise fatal[0]
    return [results[n] for n in names if n in results]


def load_parts() -> ModuleType:
    """`klaviyo_etl.sync.parts`: the streams, the writer and the database layer.

    Loaded by name, not imported at the top, so the clock request goes out first and these
    imports (~0.1 s: sqlite-utils, the migrations, the parsers, every stream) run on the
    thread that opens the database while it is out (issue 12: start-up)."""
    return importlib.import_module("klaviyo_etl.sync.parts")


async def _read_server_clock(client: KlaviyoClient) -> RequestStats:
    """One small request, so the client knows Klaviyo's clock; warn when ours differs.

    If it fails the run goes on with our clock (the streams then meet the same error, if
    it is not transient, and report it as usual)."""
    stats = RequestStats()
    try:
        await client.get(CLOCK_PATH, CLOCK_PARAMS, stats=stats)
    except FatalError:
        return stats  # a rejected key: every stream meets it and the run says it once
    except KlaviyoEtlError as exc:
        if not (client.stop is not None and client.stop.is_set()):  # a stop: the streams say it
            log.warning("could not read Klaviyo's clock (%s); using this machine's", exc)
        return stats
    offset = client.clock_offset
    if offset is None:
        log.warning("Klaviyo sent no Date header; using this machine's clock")
    elif abs(offset) > CLOCK_TOLERANCE:
        way = "behind" if offset < dt.timedelta(0) else "ahead of"
        log.warning(
            "Klaviyo's clock is %s %s this machine's; using Klaviyo's for watermarks",
            humanize_age(abs(offset.total_seconds())),
            way,
        )
    return stats


def make_client(settings: Settings, limiter: RateLimiter | None = None, **kwargs: Any):
    kwargs.setdefault("max_attempts", settings.retries + 1)
    kwargs.setdefault("timeout", settings.request_timeout)
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
    stop = stop or threading.Event()
    factory = client_factory or make_client(settings, stop=stop)
    if client_factory is None:
        settings.require_api_key()  # a missing key is a usage error before the lock is taken
    run_id = uuid.uuid4().hex[:12]
    tune_malloc()  # flat resident memory over a long load (see sync/memory.py)
    try:
        with database_lock(settings.db_path), fewer_collections():
            opened: list[sqlite_utils.Database] = []

            def open_db() -> sqlite_utils.Database:
                opened.append(load_parts().open_database(settings.db_path))
                return opened[0]

            try:
                results = asyncio.run(_run_async(settings, options, open_db, run_id, progress, stop, factory))
            finally:
                for db in opened:
                    db.close()
    finally:
        release_free_memory()  # the heap kept for the pages, given back (see sync/memory.py)
    return SyncResult(run_id, results)
