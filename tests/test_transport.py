"""The client's transport (httpx over our asyncio network backend) against real loopback servers:
bodies of many pieces, keep-alive, a server that goes away, timeouts, TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
import trustme

from klaviyo_etl.client import KlaviyoClient
from klaviyo_etl.errors import TransientError, Unreachable
from klaviyo_etl.ratelimit import RateLimiter
from klaviyo_etl.transport import MAX_PIECES, READ_SIZE, AsyncioBackend, Transport

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
