"""The client's HTTP transport: httpx's, over a network backend that reads with plain asyncio.

httpcore reads a response through anyio by default; for a ~1 MB page of events, reading
the body was half of a request's time on the event loop (issue 12), ~16 reads of 64 KiB:
- asyncio's transport receives up to 256 KiB at a time and anyio hands httpcore 64 KiB
  slices of it, copying the rest of the piece after each slice. Where glibc's mmap
  threshold is 128 KiB (as a sync once fixed it, `sync/memory.py`), each copy of 128 KiB
  or more is a fresh mapping whose pages fault in one by one while the GIL is held;
- each read enters a cancel scope (`fail_after`) and a checkpoint, and pauses and resumes
  the socket's reader (two `epoll_ctl` calls) around every wait.
Here the socket is read straight into one reused buffer of `READ_SIZE` (`asyncio.
BufferedProtocol`), each read hands httpcore one such piece (a small copy, from the heap),
and a read that must wait sets one timer on one future. The socket is paused only when
unread pieces pile up.
Measured: the client alone reading 205 such pages from the sandbox, 3.8 -> 2.6 ms CPU per
page; a first load of 200,000 events under `py-spy --gil`, the event loop's GIL time -41 %.

Everything above the network stream is httpx's and httpcore's own: HTTP/1.1 (h11),
timeouts as `httpcore` exceptions that httpx maps as usual, proxies from the environment
(mounted beside this transport, over httpcore's own backend), TLS (asyncio's `start_tls`)
and the `handle_async_request` that recorders such as vcrpy patch. The pool is httpcore's
too, but for how it hands requests to connections (`Pool`): under the rate limit most of
the connections sit idle between windows, and httpcore's pass over them, run at every
request and every answer, cost ~84 us a pass at 20 idle connections (issue 12: a first
load of profiles keeps 20 in flight).
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import typing
from collections import deque

import httpcore
import httpx

# A piece of a response, where httpcore would read 64 KiB at a time. Each piece costs a
# `recv`, a turn of the event loop and one of h11's and httpx's iterations, so a 1 MB page in
# 9 pieces instead of 16 costs less (the client alone: 2.2 -> 1.9 ms of CPU a page). Under
# 128 KiB with a bytes object's header: glibc's default mmap threshold, where each piece
# would be a fresh mapping outside a sync (`sync/memory.py` raises it for one).
READ_SIZE = 120 * 1024
# Unread pieces (of READ_SIZE at most) before the socket is paused until httpcore reads.
MAX_PIECES = 8


class _Protocol(asyncio.BufferedProtocol):
    """Receives into one reused buffer and queues each piece as bytes for `read`."""

    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(READ_SIZE))
        self.pieces: deque[bytes] = deque()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[bool] | None = None  # a `read` waiting for a piece
        self.drained: asyncio.Future[bool] | None = None  # while writing is paused
        self.eof = False
        self.error: Exception | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.pieces.append(bytes(self.buffer[:nbytes]))
        if len(self.pieces) >= MAX_PIECES and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close the transport: HTTP/1.1 has nothing more to send after

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(True)
        self.drained = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(True)


async def _wait(future: asyncio.Future[bool], timeout: float | None) -> bool:
    """Wait for `future` (set True by the protocol); False if `timeout` seconds pass first."""
    if timeout is None:
        return await future
    timer = asyncio.get_running_loop().call_later(timeout, _expire, future)
    try:
        return await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection, for httpcore: `read` returns one received piece (b"" at the end).

    A piece is handed whole, up to `READ_SIZE`, whatever the `max_bytes` httpcore asks for
    (its fixed 64 KiB read size, which h11 does not need): cut in two, a piece would cost
    httpcore, h11 and httpx two iterations instead of one."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self.transport = transport
        self.protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        p = self.protocol
        if not p.pieces and not p.eof:
            p.waiter = asyncio.get_running_loop().create_future()
            try:
                if not await _wait(p.waiter, timeout):
                    raise httpcore.ReadTimeout("timed out reading the response")
            finally:
                p.waiter = None
        if p.pieces:
            piece = p.pieces.popleft()
            if p.paused and len(p.pieces) < MAX_PIECES // 2:
                p.paused = False
                self.transport.resume_reading()
            return piece
        if p.error is not None:
            raise httpcore.ReadError(str(p.error) or type(p.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        p = self.protocol
        if self.transport.is_closing() or p.error is not None:
            raise httpcore.WriteError(str(p.error) if p.error else "the connection is closed")
        self.transport.write(buffer)
        if p.drained is not None:
            if not await _wait(p.drained, timeout):
                raise httpcore.WriteTimeout("timed out sending the request")
            if p.error is not None:
                raise httpcore.WriteError(str(p.error))

    async def aclose(self) -> None:
        self.transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            # `asyncio.timeout`, not `wait_for`, which in Python 3.11 drops a cancel that comes
            # in the turn its wait ends (see `Bucket.acquire`).
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(
                    self.transport, self.protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self.transport.close()
            raise httpcore.ConnectTimeout("timed out during the TLS handshake") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self.transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if tls is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self.protocol.transport = tls  # type: ignore[assignment]
        return AsyncioStream(tls, self.protocol)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self.transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self.transport.get_extra_info("sockname")
        if info == "server_addr":
            return self.transport.get_extra_info("peername")
        if info == "socket":
            return self.transport.get_extra_info("socket")
        if info == "is_readable":
            # An idle keep-alive connection that is readable was closed (or spoken to) by
            # the server: httpcore then drops it rather than send a request on it.
            p = self.protocol
            return bool(p.pieces) or p.eof or _readable(self.transport.get_extra_info("socket"))
        return None


def _readable(sock: socket.socket | None) -> bool:
    """Whether the socket has something to read now (as httpcore's own check asks)."""
    if sock is None or sock.fileno() == -1:
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class Pool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool, handing queued requests to connections in one pass.

    httpcore runs `_assign_requests_to_connections` whenever a request starts or ends. Its
    pass drops closed and expired connections, closes idle ones beyond the keep-alive
    count, then gives each queued request a connection: an available one, else a new one
    while under the maximum, else one made in place of an idle one. The same here, with
    three costs cut:
    - httpcore counts the connections once for every idle connection (building a list each
      time: quadratic in the connections) where the count is simply their number;
    - it builds the lists of available and idle connections for every queued request where
      one pass finds the first of each (which is all it uses);
    - it asks every idle connection whether the server closed it (a `poll` of its socket)
      in every pass, also in those that hand out nothing (a request ending). Here only a
      pass with a request to place asks: a connection the server closed is never handed
      out, and is dropped at the next request rather than at the next answer.
    Measured at 20 idle connections: 84 -> 26 us a pass; in a traced profiles first load the
    `poll`s were ~27 a request, ~18 us each on this busy machine. If httpcore renames the
    method, its own runs instead: slower, not wrong (tests/test_transport.py checks that
    ours is the one that runs).
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        connections = self._connections
        queued = [request for request in self._requests if request.is_queued()]
        for connection in list(connections):
            if connection.is_closed():
                connections.remove(connection)
            elif queued and connection.has_expired():
                connections.remove(connection)
                closing.append(connection)
            elif connection.is_idle() and len(connections) > self._max_keepalive_connections:
                connections.remove(connection)
                closing.append(connection)
        for pool_request in queued:
            origin = pool_request.request.url.origin
            available = idle = None
            for connection in connections:
                if connection.can_handle_request(origin) and connection.is_available():
                    available = connection
                    break
                if idle is None and connection.is_idle():
                    idle = connection
            if available is not None:
                pool_request.assign_to_connection(available)
                continue
            if len(connections) >= self._max_connections:
                if idle is None:
                    continue  # stays queued until a connection frees
                connections.remove(idle)
                closing.append(idle)
            connection = self.create_connection(origin)
            connections.append(connection)
            pool_request.assign_to_connection(connection)
        return closing


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend over asyncio's own transports (see the module docstring)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):  # not `wait_for` (see `start_tls`)
                transport, protocol = await loop.create_connection(
                    _Protocol,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    # Several addresses (IPv6 and IPv4) are tried as anyio tries them: the next
                    # after 250 ms, so one that drops packets does not hold up the rest.
                    happy_eyeballs_delay=0.25,
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)  # type: ignore[arg-type]

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - the client never asks for one
        raise httpcore.ConnectError("unix sockets are not supported by this transport")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Transport(httpx.AsyncHTTPTransport):
    """httpx's transport with the pool's network backend replaced by `AsyncioBackend`."""

    def __init__(
        self, *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits = httpx.Limits()
    ) -> None:
        # Not `super().__init__`: httpx 0.28 takes no backend, and its pool would load the CA
        # bundle a second time. The pool is built as httpx builds it, with our backend.
        self._pool = Pool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )
