"""Several accounts synced at once, in one process and one event loop.

Klaviyo's rate limits are per account, so accounts run side by side: each has its own client
(and so its own rate limiter), its own database, writer thread and lock, and its own stop
event, so that one account's rejected key (401) or retired revision (410) stops that account
only. What they share is the process: one cap on requests in flight across every account
(`MAX_IN_FLIGHT`, a semaphore around each client's transport, held until the body is read),
one pool of parser processes, and one progress display that names the account on each line.

One event loop rather than a thread per account: the work is waiting on the network, the
parsing that costs CPU already goes to the shared process pool, and one loop keeps the cap a
plain asyncio semaphore.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import sqlite_utils

from klaviyo_etl.db.database import open_database
from klaviyo_etl.db.lock import database_lock
from klaviyo_etl.errors import KlaviyoEtlError, UsageError
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import SyncResult, _run_async, make_client
from klaviyo_etl.sync.names import resolve
from klaviyo_etl.sync.options import Progress, SyncOptions
from klaviyo_etl.sync.run import ParserPools
from klaviyo_etl.transport import Transport

log = logging.getLogger(__name__)

# Requests in flight across every account of one process (one client alone allows 32).
MAX_IN_FLIGHT = 64
# Connections each account's client keeps, as one client does by default.
ACCOUNT_CONNECTIONS = 32


@dataclass(frozen=True)
class AccountSync:
    """One account's part of a run: its name, settings (key, database, URL) and options."""

    name: str
    settings: Settings
    options: SyncOptions


@dataclass
class AccountResult:
    """How one account's sync ended: its streams, or the error that stopped it."""

    name: str
    result: SyncResult | None = None
    error: str | None = None
    usage_error: bool = False  # failed before anything ran, on a usage or config error

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return 2 if self.usage_error else 1
        return self.result.exit_code if self.result else 1


def exit_code(results: list[AccountResult]) -> int:
    """1 if any account failed (2 if every one failed on a usage or config error before it
    ran); 130 if stopped; else 0."""
    if results and all(r.usage_error for r in results):
        return 2
    if any(not r.ok and (r.error is not None or r.exit_code == 1) for r in results):
        return 1
    return max((r.exit_code for r in results), default=0)


class LinkedStop(threading.Event):
    """An account's stop event: set on its own (its key was rejected) or by the run's (a signal)."""

    def __init__(self, parent: threading.Event):
        super().__init__()
        self.parent = parent

    def is_set(self) -> bool:
        return super().is_set() or self.parent.is_set()


class _SharedPools(ParserPools):
    """One parser pool for every account; an account's run ending leaves it open."""

    def close(self) -> None:
        return None

    def shutdown(self) -> None:
        super().close()


class _Releasing(httpx.AsyncByteStream):
    """A response body that gives its slot back once read and closed."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]):
        self.inner, self.release = inner, release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.release()


class CappedTransport(httpx.AsyncBaseTransport):
    """An account's transport: each request holds one of the process's slots until its body
    is read, so however many accounts run, at most `MAX_IN_FLIGHT` requests are in flight."""

    def __init__(self, slots: asyncio.Semaphore, connections: int = ACCOUNT_CONNECTIONS):
        self.slots = slots
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.inner = Transport(limits=limits)  # the client's own (see klaviyo_etl.transport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.slots.acquire()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.slots.release()

        try:
            response = await self.inner.handle_async_request(request)
        except BaseException:
            release()
            raise
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Releasing(response.stream, release),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def run_accounts(
    jobs: list[AccountSync],
    *,
    progress: Callable[[str], Progress | None] | None = None,
    stop: threading.Event | None = None,
    max_in_flight: int = MAX_IN_FLIGHT,
) -> list[AccountResult]:
    """Sync every account at once; each account's result, in the order given.

    `progress(name)` gives the display an account reports to (None: none). One account
    failing (a rejected key, a locked database) is its result's `error`; the others go on.
    """
    for job in jobs:
        resolve(job.options.streams)  # bad stream names fail before anything runs
    return asyncio.run(_run_all(jobs, progress, stop or threading.Event(), max_in_flight))


async def _run_all(
    jobs: list[AccountSync],
    progress: Callable[[str], Progress | None] | None,
    stop: threading.Event,
    max_in_flight: int,
) -> list[AccountResult]:
    slots = asyncio.Semaphore(max_in_flight)
    # the accounts share one config's [sync] parse_workers: 0 is one parse thread for all
    pools = _SharedPools(workers=max((job.options.parse_workers for job in jobs), default=0))
    try:
        return list(
            await asyncio.gather(
                *(_run_one(job, progress(job.name) if progress else None, stop, slots, pools) for job in jobs)
            )
        )
    finally:
        pools.shutdown()


async def _run_one(
    job: AccountSync,
    progress: Progress | None,
    stop: threading.Event,
    slots: asyncio.Semaphore,
    pools: ParserPools,
) -> AccountResult:
    outcome = AccountResult(job.name)
    try:
        job.settings.require_api_key()
    except UsageError as exc:
        outcome.error, outcome.usage_error = str(exc), True
        return outcome
    run_id = uuid.uuid4().hex[:12]
    account_stop = LinkedStop(stop)
    factory = make_client(job.settings, transport=CappedTransport(slots), stop=account_stop)
    try:
        with contextlib.ExitStack() as held:
            held.enter_context(database_lock(job.settings.db_path))

            def open_db() -> sqlite_utils.Database:
                db = open_database(job.settings.db_path)
                held.callback(db.close)
                return db

            streams = await _run_async(
                job.settings, job.options, open_db, run_id, progress, account_stop, factory, pools=pools
            )
        outcome.result = SyncResult(run_id, streams)
    except KlaviyoEtlError as exc:  # the key, the revision, the lock: this account only
        log.debug("account %s failed", job.name, exc_info=True)
        outcome.error = str(exc)
    except Exception as exc:  # a bug must not take the other accounts down either
        log.debug("account %s failed", job.name, exc_info=True)
        outcome.error = f"unexpected {type(exc).__name__}: {exc}"
    return outcome
