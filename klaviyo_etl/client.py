"""The Klaviyo API client: one object owns the connection pool, headers, pacing and retries.

Streams say *what* to fetch (path and params); this module decides *how*: it paces each
request through the rate limiter, retries what is transient, turns the rest into typed
errors with one-line messages, and yields pages lazily so memory stays flat.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, stop_when_event_set
from tenacity.wait import wait_exponential_jitter

from klaviyo_etl import __version__
from klaviyo_etl.endpoints import REVISION, RateLimit, contract
from klaviyo_etl.errors import (
    ApiError,
    AuthError,
    BadRequest,
    KeyRejected,
    NotFound,
    RateLimited,
    RevisionRetired,
    TransientError,
    Unreachable,
)
from klaviyo_etl.ratelimit import RateLimiter, retry_after
from klaviyo_etl.settings import mask_key
from klaviyo_etl.transport import Transport

log = logging.getLogger(__name__)
T = TypeVar("T")


def _json(body: bytes) -> dict[str, Any]:
    return json.loads(body) if body else {}


# Endpoints missing from the digest (id routes) get the most conservative documented tier.
FALLBACK_LIMIT = RateLimit(burst_per_s=1, steady_per_min=15, tier="XS")
# Profiles with `additional-fields[profile]=predictive_analytics`: 10/s burst, 150/m steady.
PREDICTIVE_LIMIT = RateLimit(burst_per_s=10, steady_per_min=150, tier="M")


@dataclass
class RequestStats:
    """What one stream cost: the numbers `sync_runs` records."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    waited_s: float = 0.0

    def add(self, other: RequestStats) -> None:
        """Count `other`'s requests with these (the clock request counts with the first stream)."""
        self.requests += other.requests
        self.retries += other.retries
        self.throttled += other.throttled
        self.waited_s += other.waited_s


class _RateLimitWait:
    """tenacity wait: honour Retry-After on 429s, exponential jitter otherwise."""

    def __init__(self, initial: float, maximum: float):
        self.backoff = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)

    def __call__(self, retry_state) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return exc.retry_after
        return self.backoff(retry_state)


class KlaviyoClient:
    """Async client for Klaviyo's JSON:API. Use as `async with KlaviyoClient(...) as client:`."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://a.klaviyo.com",
        revision: str = REVISION,
        limiter: RateLimiter | None = None,
        max_attempts: int = 8,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        timeout: float = 60.0,
        max_connections: int = 32,
        max_retry_after: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
        stop: threading.Event | None = None,
    ):
        self.api_key = api_key
        # Set (SIGINT/SIGTERM): no more retries, and a retry's wait ends at once; the last
        # error is raised, and the stream stops. Else a stop during server trouble waited
        # out every retry (~1 min, or a Retry-After of up to `max_retry_after`).
        self.stop = stop
        # The tasks waiting for the limiter or for an answer, and those a stop cancelled: it
        # ends each wait at once (`_unless_stopped`), not after the limiter's pause or the
        # request `timeout` (60 s by default).
        self._waiting: set[asyncio.Task] = set()
        self._cut: set[asyncio.Task] = set()
        self._watcher: asyncio.Task | None = None
        self.base_url = base_url.rstrip("/")
        self.revision = revision
        self.limiter = limiter or RateLimiter()
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.wait = _RateLimitWait(backoff_initial, backoff_max)
        self.contract = contract()
        self.stats = RequestStats()
        # Until the server has answered once, a refused connection means a wrong URL or a server
        # that is down, not a dropped connection: it stops the run at once instead of retrying.
        self.answered = False
        # Klaviyo's clock minus ours, from the `Date` header of the latest response (None:
        # no response yet). Watermarks and filters use Klaviyo's time, never ours alone.
        self.clock_offset: dt.timedelta | None = None
        # Every request goes to the base URL (see `pages`), so a plain-http one (the sandbox,
        # a local proxy) never speaks TLS: skip loading the CA bundle (~3 MB, ~40 ms).
        verify = not self.base_url.startswith("http://")
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Klaviyo-API-Key {api_key}",
                "revision": revision,
                "accept": "application/vnd.api+json",
                "user-agent": f"klaviyo-etl/{__version__}",
            },
            timeout=timeout,
            limits=limits,
            # httpx's transport over a cheaper network backend (see `klaviyo_etl.transport`).
            transport=transport or Transport(verify=verify, limits=limits),
            verify=verify,
        )

    async def __aenter__(self) -> KlaviyoClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await self.http.aclose()

    def __repr__(self) -> str:
        return f"KlaviyoClient({self.base_url!r}, key={mask_key(self.api_key)})"

    # -- requests -----------------------------------------------------------------------

    def _limit_for(
        self, method: str, path: str, params: Mapping[str, Any] | None = None
    ) -> tuple[str, RateLimit]:
        query = path.split("?", 1)[1] if "?" in path else ""
        path = path.split("?", 1)[0]
        endpoint = self.contract.endpoint(method, path)
        if endpoint is None:
            return f"{method} {path}", FALLBACK_LIMIT
        if "predictive_analytics" in query + str(params or ""):
            # Klaviyo lowers the profile endpoints' limit when predictive analytics are asked for.
            return endpoint.key + " predictive", PREDICTIVE_LIMIT
        return endpoint.key, endpoint.rate_limit

    def burst(self, method: str, path: str) -> int:
        """How many requests to `path` one burst window lets out now: as the answers stated
        it (a smaller tier, limits cut for a test), else as documented."""
        key, limit = self._limit_for(method, path)
        bucket = self.limiter.buckets.get(key)
        return bucket.burst if bucket is not None else max(1, int(limit.burst_per_s))

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        stats: RequestStats | None = None,
        parse: Callable[[bytes], T] = _json,
        executor: Executor | None = None,
    ) -> T:
        """Send one request with pacing and retries; return the body as `parse` reads it.

        Parsing happens inside the retry loop: a body cut short on the wire fails to parse
        and is fetched again like any other transient failure.
        """
        stats = stats or RequestStats()
        key, limit = self._limit_for(method, path, params)
        shown = path.split("?", 1)[0]  # a next link's cursor and filter: not for messages
        # JSON:API bodies go out as application/vnd.api+json, the only type the spec declares.
        content = json.dumps(json_body, separators=(",", ":")).encode() if json_body is not None else None
        headers = {"content-type": "application/vnd.api+json"} if content is not None else None
        attempt = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.max_attempts)
            if self.stop is None
            else stop_after_attempt(self.max_attempts) | stop_when_event_set(self.stop),
            wait=self.wait,
            sleep=self._sleep,
            reraise=True,
        )
        async for try_ in retrying:
            with try_:
                attempt += 1
                if self.stop is not None and self.stop.is_set():
                    # Stopped (during the wait): neither the limiter's pause nor a request more.
                    raise TransientError(
                        f"{method} {shown}: stopped before {'retrying' if attempt > 1 else 'sending'}"
                    )
                if attempt > 1:
                    stats.retries += 1
                    self.stats.retries += 1
                claim = await self._unless_stopped(self.limiter.acquire(key, limit), method, shown)
                stats.waited_s += claim.waited
                stats.requests += 1
                self.stats.requests += 1
                answered_at = None
                try:
                    sent = self._send(method, path, params, content, headers)
                    response, body, answered_at = await self._unless_stopped(sent, method, shown)
                    # Before release: the next worker must see this answer's 429, if it is one.
                    self.limiter.observe(key, response.headers, response.status_code)
                except httpx.ConnectError as exc:
                    if not self.answered:
                        raise Unreachable(f"cannot connect to {self.base_url}: {exc}") from exc
                    raise TransientError(f"{method} {shown}: {type(exc).__name__}: {exc}") from exc
                except (httpx.TransportError, httpx.DecodingError) as exc:
                    raise TransientError(f"{method} {shown}: {type(exc).__name__}: {exc}") from exc
                finally:
                    # A slot is free a window after its answer's headers came back (ratelimit.py).
                    self.limiter.release(key, claim.slot, answered_at)
                self.answered = True
                self._observe_clock(response.headers)
                if response.status_code == 429:
                    stats.throttled += 1
                    self.stats.throttled += 1
                self._raise_for_status(method, path, response, body)
                try:
                    if executor is not None:
                        loop = asyncio.get_running_loop()
                        return await loop.run_in_executor(executor, parse, body)
                    return parse(body)
                except ValueError as exc:  # a body cut short on the wire (ValidationError too)
                    raise TransientError(f"{method} {shown}: truncated or invalid JSON body") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _unless_stopped(self, waiting: Awaitable[T], method: str, shown: str) -> T:
        """Await `waiting` (the limiter's slot, or an answer), or raise TransientError as soon as
        the stop is set: else a request that hangs held a stopped run for the whole request
        timeout, and a paused limiter for its pause. No task or thread a request: one watcher
        per client cancels the waiting tasks, and only its own cancel becomes the error, as
        `asyncio.timeout` does (~0.4 us a wait, a fifth of what `asyncio.timeout` costs)."""
        if self.stop is None:
            return await waiting
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch_stop())
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        self._waiting.add(task)
        try:
            return await waiting
        except asyncio.CancelledError:
            if task not in self._cut or task.uncancel() > cancelling:
                raise  # a cancel of someone else's too (the run ending, a failing sibling)
            raise TransientError(f"{method} {shown}: stopped while waiting") from None
        finally:
            self._waiting.discard(task)
            self._cut.discard(task)

    async def _watch_stop(self) -> None:
        """Once the stop is set (checked every 0.1 s, as `_sleep` does), cancel every task
        waiting for the limiter or an answer, until the client closes (a request that starts
        after the stop is refused before it waits: `request`)."""
        assert self.stop is not None
        while True:
            if self.stop.is_set():
                while self._waiting:
                    task = self._waiting.pop()
                    self._cut.add(task)
                    task.cancel()
            await asyncio.sleep(0.1)

    async def _sleep(self, seconds: float) -> None:
        """A retry's wait, cut short when the stop is set (checked every 0.1 s)."""
        if self.stop is None:
            await asyncio.sleep(seconds)
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while not self.stop.is_set() and (left := end - loop.time()) > 0:
            await asyncio.sleep(min(left, 0.1))

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[httpx.Response, bytes, float]:
        """One request, its whole body (decoded, as `aread` gives it) and when its headers came
        back (on the rate limiter's clock).

        The body is read from the stream rather than by `aread`, which keeps it on the
        response: a response and its stream refer to each other, so each ~1 MB page would
        stay in memory until the cycle collector ran (issue 12)."""
        # The whole URL, parsed once: from a relative path httpx parses it, then the URL merged
        # with the base again (~40 us a request, with a next link's long cursor). Same URL.
        url: httpx.URL | str = httpx.URL(self.base_url + path) if path.startswith("/") else path
        request = self.http.build_request(method, url, params=params, content=content, headers=headers)
        response = await self.http.send(request, stream=True)
        answered_at = self.limiter.clock()
        try:
            return response, b"".join([part async for part in response.aiter_bytes()]), answered_at
        finally:
            await response.aclose()

    def _observe_clock(self, headers: Mapping[str, str]) -> None:
        server = server_date(headers)
        if server is not None:
            # The header has whole seconds: half a second is the expected error.
            self.clock_offset = server - dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=500)

    def server_now(self) -> dt.datetime:
        """Klaviyo's time now, as its latest `Date` header says (our clock before any)."""
        return dt.datetime.now(dt.UTC) + (self.clock_offset or dt.timedelta(0))

    def _raise_for_status(self, method: str, path: str, response: httpx.Response, body: bytes) -> None:
        status = response.status_code
        if status < 300:
            return
        detail = _error_detail(body)
        where = f" ({method} {path.split('?', 1)[0]})"
        if status == 429:
            wait = retry_after(response.headers)
            if wait is not None and wait > self.max_retry_after:
                # A daily budget (the Reporting API's 225/day) is spent: waiting hours inside
                # one run would hold the lock and stall cron, so this stream gives up instead.
                raise ApiError(
                    429,
                    f"rate limit{where} resets in {wait / 3600:.1f} h; not waiting in this run",
                    path=path,
                    detail=detail,
                )
            raise RateLimited(f"429: rate limited{where}", status=429, retry_after=wait)
        if status >= 500:
            raise TransientError(f"{status}: Klaviyo server error{where}", status=status)
        if status == 401:
            raise KeyRejected(
                401,
                f"the API key {mask_key(self.api_key)} was rejected — check KLAVIYO_API_KEY",
                path=path,
                detail=detail,
            )
        if status == 403:
            raise AuthError(
                403, f"the API key lacks a required scope{where}: {detail}", path=path, detail=detail
            )
        if status == 404:
            raise NotFound(404, f"not found{where}", path=path, detail=detail)
        if status == 410:
            raise RevisionRetired(
                410,
                f"API revision {self.revision} is retired — upgrade klaviyo-etl or pass a newer --revision",
                path=path,
                detail=detail,
            )
        if status == 400:
            raise BadRequest(400, f"bad request{where}: {detail}", path=path, detail=detail)
        raise ApiError(status, f"unexpected response{where}: {detail}", path=path, detail=detail)

    async def get(
        self, path: str, params: Mapping[str, Any] | None = None, *, stats: RequestStats | None = None
    ) -> dict[str, Any]:
        return await self.request("GET", path, params=params, stats=stats)

    async def post(self, path: str, body: Any, *, stats: RequestStats | None = None) -> dict:
        return await self.request("POST", path, json_body=body, stats=stats)

    async def pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        stats: RequestStats | None = None,
        parse: Callable[[bytes], Any],
        executor: Executor | None = None,
    ) -> AsyncIterator[Any]:
        """Yield pages lazily, following `links.next` against our own base URL.

        The next link's host is ignored on purpose: the key is only ever sent to the
        configured base URL, and a proxy or the sandbox works the same way.
        `parse` turns each body into a page with `.links.next` (`klaviyo_etl.models.Page.
        parse_json`, or a leaner one for bulk loads), on another thread or process via
        `executor`. (Not a default here: the models' pydantic would load before a sync's
        first request, issue 12.)
        """
        while True:
            page = await self.request("GET", path, params=params, stats=stats, parse=parse, executor=executor)
            yield page
            if not page.links.next:
                return
            path, params = _relative(page.links.next), None


def server_date(headers: Mapping[str, str]) -> dt.datetime | None:
    """The `Date` response header as an aware datetime (None if missing or unreadable)."""
    value = headers.get("date")
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _error_detail(body: bytes) -> str:
    """The first JSON:API error's detail (else its title, else its code); the body's start
    when that error is not one."""
    try:
        errors = json.loads(body).get("errors") or []
        item = errors[0]
        if _is_error_object(item):
            return item.get("detail") or item.get("title") or item.get("code") or ""
    except (ValueError, AttributeError, IndexError, TypeError):
        pass
    return body[:200].decode("utf-8", "replace").strip()


def _is_error_object(item: Any) -> bool:
    """A JSON:API error object as we read one: `status` a number or text, `code`, `title` and
    `detail` text, each optional; other members allowed."""
    if not isinstance(item, dict):
        return False
    status = item.get("status")
    if not (
        status is None or isinstance(status, int | str) or (type(status) is float and status.is_integer())
    ):
        return False
    return all(item.get(key) is None or isinstance(item[key], str) for key in ("code", "title", "detail"))
