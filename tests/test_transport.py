"""The client's transport (httpx over our asyncio network backend) against real loopback servers:
bodies of many pieces, keep-alive, a server that goes away, timeouts, TLS."""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpcore
import httpx
import pytest
import trustme
from httpcore._async.http11 import AsyncHTTP11Connection

from klaviyo_etl.client import KlaviyoClient
from klaviyo_etl.errors import TransientError, Unreachable
from klaviyo_etl.ratelimit import RateLimiter
from klaviyo_etl.transport import MAX_PIECES, READ_SIZE, AsyncioBackend, Pool, Transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A raw HTTP server on loopback; yields its base URL."""
    srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        srv.close()
        await srv.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def head(length: int, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n{extra}\r\n".encode()


def body_of(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def client_for(url: str, **kwargs) -> KlaviyoClient:
    kwargs.setdefault("backoff_initial", 0.001)
    kwargs.setdefault("backoff_max", 0.01)
    return KlaviyoClient("pk_test_abcd", base_url=url, limiter=RateLimiter(headroom=1.0), **kwargs)


def test_the_client_uses_our_transport_over_our_backend():
    """httpx 0.28 takes no network backend: if an upgrade renames the pool, this fails first."""
    client = KlaviyoClient("pk_test_abcd", base_url="http://127.0.0.1:1")
    transport = client.http._transport
    assert isinstance(transport, Transport)
    assert isinstance(transport._pool._network_backend, AsyncioBackend)


async def test_a_body_of_many_pieces_arrives_whole_over_one_kept_alive_connection():
    payload = body_of(3 * 1024 * 1024 + 17)  # many reads, more than MAX_PIECES of them
    connections = 0

    async def handler(reader, writer):
        nonlocal connections
        connections += 1
        for _ in range(2):
            await read_request(reader)
            writer.write(head(len(payload)) + payload)
            await writer.drain()
        writer.close()

    async with server(handler) as url, client_for(url) as client:
        first = await client.request("GET", "/api/a", parse=bytes)
        second = await client.request("GET", "/api/b", parse=bytes)
    assert first == payload and second == payload
    assert connections == 1


async def test_a_slow_reader_pauses_the_socket_and_still_reads_every_byte():
    payload = body_of((MAX_PIECES * 4) * READ_SIZE)

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(head(len(payload)) + payload)
        await writer.drain()
        writer.close()

    async with server(handler) as url, httpx.AsyncClient(transport=Transport(verify=False)) as http:
        async with http.stream("GET", url) as response:
            parts = []
            async for part in response.aiter_raw():
                parts.append(part)
                await asyncio.sleep(0.001)  # let the socket run ahead of us
    assert b"".join(parts) == payload
    assert max(len(p) for p in parts) <= READ_SIZE
    # Whole pieces, not cut to the 64 KiB httpcore asks for: a page in fewer iterations.
    assert max(len(p) for p in parts) > AsyncHTTP11Connection.READ_NUM_BYTES


async def test_a_body_cut_short_is_a_transient_error_and_is_fetched_again():
    payload = b'{"ok": true}'
    calls = 0

    async def handler(reader, writer):
        nonlocal calls
        calls += 1
        await read_request(reader)
        if calls == 1:
            writer.write(head(len(payload) * 10) + payload)  # promises more than it sends
        else:
            writer.write(head(len(payload)) + payload)
        await writer.drain()
        writer.close()

    async with server(handler) as url, client_for(url) as client:
        assert await client.get("/api/x") == {"ok": True}
    assert calls == 2
    assert client.stats.retries == 1


async def test_a_server_that_closes_an_idle_connection_gets_a_new_one():
    connections = 0

    async def handler(reader, writer):
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(head(2, "Content-Type: application/json\r\n") + b"{}")
        await writer.drain()
        writer.close()  # no keep-alive, but without saying so

    async with server(handler) as url, client_for(url) as client:
        assert await client.get("/api/x") == {}
        await asyncio.sleep(0.05)  # the close reaches us while the connection is idle
        assert await client.get("/api/y") == {}
    assert connections == 2
    assert client.stats.retries == 0


async def test_a_silent_server_times_out_as_a_read_timeout():
    async def handler(reader, writer):
        await read_request(reader)
        await asyncio.sleep(5)

    async with server(handler) as url, httpx.AsyncClient(transport=Transport(verify=False)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(url, timeout=0.1)


async def test_a_refused_connection_is_unreachable_and_a_dropped_one_transient():
    async with server(lambda r, w: asyncio.sleep(0)) as url:
        pass  # the port is free again
    async with client_for(url, max_attempts=1) as client:
        with pytest.raises(Unreachable):
            await client.get("/api/x")

    async def drop(reader, writer):
        await read_request(reader)
        writer.close()

    async with server(drop) as url, client_for(url, max_attempts=2) as client:
        client.answered = True  # it has answered before: a drop is worth another try
        with pytest.raises(TransientError):
            await client.get("/api/x")
        assert client.stats.requests == 2


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


async def test_tls_reads_a_body_of_many_pieces(authority):
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(served)
    payload = body_of(1024 * 1024 + 5)

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(head(len(payload)) + payload)
        await writer.drain()
        writer.close()

    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    async with server(handler, served) as url, httpx.AsyncClient(transport=Transport(verify=trusted)) as http:
        response = await http.get(url)
    assert response.content == payload


class FakeConnection:
    """What the pool asks of a connection, counted: its state never changes here."""

    def __init__(self, state: str, origin: str = "a", calls: list[str] | None = None):
        self.state, self.origin, self.calls = state, origin, calls if calls is not None else []

    def is_closed(self) -> bool:
        return self.state == "closed"

    def has_expired(self) -> bool:
        return self.state == "expired"

    def is_idle(self) -> bool:
        self.calls.append("is_idle")
        return self.state in ("idle", "expired")

    def is_available(self) -> bool:
        return self.state == "idle"

    def can_handle_request(self, origin: str) -> bool:
        return origin == self.origin


class FakeRequest:
    def __init__(self, queued: bool, origin: str = "a"):
        self.queued, self.request, self.connection = (
            queued,
            SimpleNamespace(url=SimpleNamespace(origin=origin)),
            None,
        )

    def is_queued(self) -> bool:
        return self.queued

    def assign_to_connection(self, connection) -> None:
        self.connection = connection


def pool_state(pool: httpcore.AsyncConnectionPool, seed: int) -> tuple[list, list]:
    """A random pool: connections in every state, queued and running requests, two origins."""
    rng = random.Random(seed)
    states = ["closed", "expired", "idle", "busy"]
    connections = [FakeConnection(rng.choice(states), rng.choice("ab")) for _ in range(rng.randint(0, 8))]
    requests = [FakeRequest(rng.random() < 0.7, rng.choice("ab")) for _ in range(rng.randint(0, 5))]
    pool._connections = list(connections)
    pool._requests = list(requests)
    pool._max_connections = rng.randint(1, 9)
    pool._max_keepalive_connections = rng.randint(0, 9)
    pool.create_connection = lambda origin: FakeConnection("new", origin)  # type: ignore[method-assign]
    return connections, requests


def outcome(pool, connections, requests, closing) -> tuple:
    """The pool's decisions, by position in the state it started from."""

    def name(c) -> str:
        return f"old{connections.index(c)}" if c in connections else f"new:{c.origin}"

    return (
        [name(c) for c in pool._connections],
        [name(c) for c in closing],
        [None if r.connection is None else name(r.connection) for r in requests],
    )


def test_our_pool_hands_out_connections_as_httpcores_does():
    """With a request to place, ours decides as httpcore 1.0's own pass does, in any state:
    the same connections dropped, closed and created, the same connection for each queued
    request. With none, it leaves an expired connection for the next request (not asking
    each idle one whether the server closed it), and otherwise decides the same."""
    ours = Pool(network_backend=AsyncioBackend())
    theirs = Pool(network_backend=AsyncioBackend())
    compared = 0
    for seed in range(3000):
        connections, requests = pool_state(ours, seed)
        mine = outcome(ours, connections, requests, ours._assign_requests_to_connections())
        connections, requests = pool_state(theirs, seed)
        if not any(r.queued for r in requests):
            for c in connections:  # httpcore's pass then differs only by the expired ones
                if c.state == "expired":
                    c.state = "idle"
        closing = httpcore.AsyncConnectionPool._assign_requests_to_connections(theirs)
        assert mine == outcome(theirs, connections, requests, closing), seed
        compared += any(r.queued for r in requests)
    assert compared > 1000


def test_a_pass_over_idle_connections_asks_each_once():
    """Under the rate limit most connections wait idle between windows, and the pass runs at
    every request and every answer: httpcore's counts the connections once for every idle
    one (400 questions for 20 connections)."""
    calls: list[str] = []
    client = KlaviyoClient("pk_test_abcd", base_url="http://127.0.0.1:1")
    pool = client.http._transport._pool
    pool._connections = [FakeConnection("idle", "a", calls) for _ in range(20)]
    pool._requests = [FakeRequest(True)]
    pool._assign_requests_to_connections()
    assert len(calls) <= 2 * 20


def test_a_pass_that_places_no_request_asks_no_connection_whether_it_was_closed():
    """A request ending runs the pass too: under the rate limit, with most of 20 connections
    idle, httpcore's `poll`ed each of them at every answer."""
    asked: list[str] = []

    class Counted(FakeConnection):
        def has_expired(self) -> bool:
            asked.append(self.state)
            return super().has_expired()

    client = KlaviyoClient("pk_test_abcd", base_url="http://127.0.0.1:1")
    pool = client.http._transport._pool
    pool._connections = [Counted("idle") for _ in range(20)]
    pool._requests = [FakeRequest(False)]
    pool._assign_requests_to_connections()
    assert asked == []
    pool._requests = [FakeRequest(True)]
    pool._assign_requests_to_connections()
    assert len(asked) == 20


def test_httpcore_still_has_the_pass_our_pool_replaces():
    """If httpcore renames it, ours no longer runs (slower, not wrong): this says so."""
    assert callable(getattr(httpcore.AsyncConnectionPool, "_assign_requests_to_connections", None))
    assert "_assign_requests_to_connections" in Pool.__dict__
