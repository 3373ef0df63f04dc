"""The sandbox's HTTP front: auth, revisions, rate limits, faults and latency around `Api`.

Runs the stdlib `ThreadingHTTPServer` on a background thread, one daemon thread per
connection, HTTP/1.1 keep-alive, so a pooled client can drive it at hundreds of requests a
second. Everything a real Klaviyo would do to a client that is not careful (401, 410, 429
with Retry-After, 5xx, dropped connections, short bodies, slow answers, 403 for a key
lacking a scope) can be switched on through the live `SandboxConfig`. `SandboxStats` counts
what a test may assert on, among them the "early" requests that reached a bucket before its
last 429's `Retry-After`.
"""

from __future__ import annotations

import gc
import json
import logging
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from klaviyo_etl.endpoints import Endpoint, ReportEndpoint, contract
from klaviyo_etl.sandbox.api import Api
from klaviyo_etl.sandbox.config import SandboxConfig
from klaviyo_etl.sandbox.data import SandboxData
from klaviyo_etl.sandbox.ratelimit import Limit, RateLimiter, limits_for
from klaviyo_etl.sandbox.render import encode_json
from klaviyo_etl.sandbox.wire import ApiError, Request, error_body

log = logging.getLogger(__name__)
JSONAPI = "application/vnd.api+json"
REVISION_FORMAT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(\.[A-Za-z0-9_-]+)?$")
OLDEST_REVISION = date(2023, 1, 1)
FAULT_KINDS = ("500", "502", "503", "drop", "truncate")
# Routes served but not in the list-endpoint digest: (burst/s, steady/min), and the stricter
# limit that applies when the response must count members.
DETAIL_LIMITS = {"list": (75, 750), "segment": (75, 750)}
PROFILE_COUNT_LIMITS = (1, 15)


class SandboxStats:
    """Request counters, safe to read while the server runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.by_status: Counter[int] = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.throttled = 0  # 429 answers
        self.faults = 0  # injected 5xx, drops and truncations
        self.faults_by_kind: Counter[str] = Counter()
        self.early = 0  # requests that arrived at a bucket before its last 429's Retry-After

    def record_early(self) -> None:
        with self.lock:
            self.early += 1

    def record(self, endpoint: str, status: int | None, fault: str | None = None) -> None:
        with self.lock:
            self.requests += 1
            self.by_endpoint[endpoint] += 1
            if status is not None:
                self.by_status[status] += 1
                if status == 429:
                    self.throttled += 1
            if fault:
                self.faults += 1
                self.faults_by_kind[fault] += 1

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "requests": self.requests,
                "by_status": dict(self.by_status),
                "by_endpoint": dict(self.by_endpoint),
                "throttled": self.throttled,
                "faults": self.faults,
                "faults_by_kind": dict(self.faults_by_kind),
                "early": self.early,
            }

    def __repr__(self) -> str:
        return f"SandboxStats({self.snapshot()})"


def _secondary_limits() -> dict[str, list[dict]]:
    raw = json.loads(resources.files("klaviyo_etl").joinpath("spec/endpoints.json").read_text())
    return {e["path"]: e.get("secondary_rate_limits") or [] for e in raw["list_endpoints"]}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    sandbox: SandboxServer

    def handle_error(self, request, client_address) -> None:
        """A client gone mid-connection (a killed or stopped sync) is no error of ours: the
        stdlib would print a traceback to the console for each such connection."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """A running sandbox. Use as a context manager, or call `stop()`."""

    def __init__(self, data: SandboxData, config: SandboxConfig, host: str = "127.0.0.1", port: int = 0):
        self.data = data
        self.config = config
        self.stats = SandboxStats()
        self.api = Api(data)
        self.limiter = RateLimiter()
        self._secondary = _secondary_limits()
        self._lock = threading.Lock()
        self._forced_429 = 0
        self._forced_retry_after = 1
        self._fault_rng = random.Random(config.seed ^ 0x5EED)
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.sandbox = self
        self._thread: threading.Thread | None = None
        bound_host, bound_port = self._httpd.server_address[:2]
        self.host = host
        self.port = bound_port
        display_host = host if host not in ("0.0.0.0", "") else "127.0.0.1"
        self.url = f"http://{display_host}:{bound_port}"
        del bound_host

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"klaviyo-sandbox:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve on the calling thread until `KeyboardInterrupt` (the CLI's mode).

        The process is the sandbox's own, so the generated account is frozen out of the
        garbage collector first: every full collection would walk all of its records again,
        though none of them is garbage (profile pages at 20,000 profiles: ~10 % of their CPU).
        The index the profiles windows are cut from is built first (`Api.warm`).
        """
        self.api.warm()
        gc.freeze()
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- knobs -----------------------------------------------------------------------------------

    def force_429(self, n: int, retry_after: int = 1) -> None:
        """Answer the next `n` requests with 429 and `Retry-After: retry_after`."""
        with self._lock:
            self._forced_429 = n
            self._forced_retry_after = retry_after

    def _take_forced_429(self) -> int | None:
        with self._lock:
            if self._forced_429 > 0:
                self._forced_429 -= 1
                return self._forced_retry_after
            return None

    def _draw_fault(self) -> str | None:
        rate = self.config.fault_rate
        if rate <= 0:
            return None
        with self._lock:
            if self._fault_rng.random() >= rate:
                return None
            return self._fault_rng.choice(FAULT_KINDS)

    def _buckets(
        self, method: str, path: str, query: dict[str, list[str]]
    ) -> tuple[str, list[tuple[str, list[Limit]]]]:
        """The endpoint key and the rate-limit buckets a request counts against."""
        scale = self.config.rate_limit_scale
        endpoint = contract().endpoint(method, path)
        if isinstance(endpoint, Endpoint):
            rl = endpoint.rate_limit
            buckets = [(endpoint.key, limits_for(rl.burst_per_s, rl.steady_per_min, rl.daily, scale))]
            for extra in self._secondary.get(endpoint.path, []):
                name, _, value = extra["param"].partition("=")
                if value in (query.get(name, [""])[0].split(",")):
                    buckets.append(
                        (
                            f"{endpoint.key} {extra['param']}",
                            limits_for(extra["burst_per_s"], extra["steady_per_min"], None, scale),
                        )
                    )
            return endpoint.key, buckets
        if isinstance(endpoint, ReportEndpoint):
            rl = endpoint.rate_limit
            return endpoint.key, [
                (endpoint.key, limits_for(rl.burst_per_s, rl.steady_per_min, rl.daily, scale))
            ]
        m = re.match(r"^/api/(lists|segments)/[^/]+/?$", path)
        if m:
            kind = m.group(1)[:-1]
            key = f"GET /api/{m.group(1)}/{{id}}"
            burst, steady = DETAIL_LIMITS[kind]
            buckets = [(key, limits_for(burst, steady, None, scale))]
            if "profile_count" in query.get(f"additional-fields[{kind}]", [""])[0].split(","):
                buckets.append((f"{key} profile_count", limits_for(*PROFILE_COUNT_LIMITS, None, scale)))
            return key, buckets
        return f"{method} {path}", []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall
    server: _HTTPServer
    server_version = "klaviyo-sandbox"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: tests and benchmarks make thousands of requests

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header, from the sandbox's clock (which a test may set apart from ours)."""
        return super().date_time_string(self.server.sandbox.data.clock() if timestamp is None else timestamp)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- request flow -----------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        sandbox = self.server.sandbox
        arrived = sandbox.limiter.clock()
        config = sandbox.config
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if config.latency_ms > 0:
            time.sleep(config.latency_ms / 1000)
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        endpoint_key, buckets = sandbox._buckets(method, path, query)
        names = [name for name, _ in buckets] or [endpoint_key]
        if sandbox.limiter.is_early(names, arrived):
            sandbox.stats.record_early()

        retry_after = sandbox._take_forced_429()
        if retry_after is not None:
            sandbox.limiter.close(names, retry_after)
            self._throttled(endpoint_key, retry_after)
            return
        problem = (
            self._check_auth(config) or self._check_revision() or self._check_scopes(config, method, path)
        )
        if problem is not None:
            self._send(endpoint_key, problem.status, problem.body())
            return
        try:
            sandbox.api.match(method, path)
        except ApiError as exc:
            self._send(endpoint_key, exc.status, exc.body())
            return
        decision = None
        if config.rate_limits and buckets:
            decision = sandbox.limiter.check(buckets)
            if not decision.allowed:
                self._throttled(endpoint_key, decision.retry_after)
                return
        fault = sandbox._draw_fault()
        if fault in ("500", "502", "503"):
            status = int(fault)
            titles = {500: "A server error occurred.", 502: "Bad gateway.", 503: "Service unavailable."}
            self._send(
                endpoint_key,
                status,
                error_body(status, "error", titles[status], "Injected sandbox fault."),
                fault=fault,
            )
            return
        if fault == "drop":
            sandbox.stats.record(endpoint_key, None, fault)
            self.close_connection = True
            return
        host = self.headers.get("Host") or f"{sandbox.host}:{sandbox.port}"
        request = Request(method, path, query, body, f"http://{host}")
        try:
            status, payload = sandbox.api.respond(request)
        except ApiError as exc:
            status, payload = exc.status, exc.body()
        except Exception as exc:  # a sandbox bug: answer like Klaviyo's 500, keep serving
            log.exception("sandbox failed on %s %s", method, self.path)
            status = 500
            payload = error_body(500, "error", "A server error occurred.", f"{type(exc).__name__}: {exc}")
        headers = {}
        if decision is not None and decision.limit and 200 <= status < 300:
            headers = {
                "RateLimit-Limit": str(decision.limit),
                "RateLimit-Remaining": str(decision.remaining),
                "RateLimit-Reset": str(decision.reset),
            }
        self._send(endpoint_key, status, payload, headers=headers, truncate=fault == "truncate", fault=fault)

    def _check_auth(self, config: SandboxConfig) -> ApiError | None:
        header = self.headers.get("Authorization")
        if not header:
            return ApiError(
                401,
                "not_authenticated",
                "Authentication credentials were not provided.",
                "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.",
            )
        scheme, _, key = header.partition(" ")
        if scheme != "Klaviyo-API-Key" or key.strip() != config.api_key:
            return ApiError(
                401,
                "authentication_failed",
                "Incorrect authentication credentials.",
                "Incorrect authentication credentials.",
            )
        return None

    def _check_scopes(self, config: SandboxConfig, method: str, path: str) -> ApiError | None:
        """403 when the key lacks a scope the endpoint needs (`SandboxConfig.missing_scopes`)."""
        endpoint = contract().endpoint(method, path) if config.missing_scopes else None
        if endpoint is None or not set(endpoint.scopes) & set(config.missing_scopes):
            return None
        return ApiError(
            403,
            "permission_denied",
            "You do not have permission to perform this action.",
            "You do not have permission to perform this action.",
        )

    def _check_revision(self) -> ApiError | None:
        revision = self.headers.get("revision")
        if not revision:
            return ApiError(
                400,
                "invalid",
                "Invalid input.",
                "The 'revision' header is required (format: YYYY-MM-DD[.suffix]).",
                parameter="revision",
            )
        m = REVISION_FORMAT.match(revision.strip())
        try:
            when = date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
        except ValueError:
            when = None
        if when is None:
            return ApiError(
                400,
                "invalid",
                "Invalid input.",
                f"Invalid revision '{revision}' (format: YYYY-MM-DD[.suffix]).",
                parameter="revision",
            )
        if when < OLDEST_REVISION:
            return ApiError(
                410,
                "gone",
                "Revision retired.",
                f"Revision {revision} is no longer supported; use a newer revision.",
                parameter="revision",
            )
        return None

    # -- responses ------------------------------------------------------------------------------

    def _throttled(self, endpoint_key: str, retry_after: int) -> None:
        body = error_body(
            429,
            "throttled",
            "Request was throttled.",
            f"Request was throttled. Expected available in {retry_after} second"
            f"{'s' if retry_after != 1 else ''}.",
        )
        self._send(endpoint_key, 429, body, headers={"Retry-After": str(retry_after)})

    def _send(
        self,
        endpoint_key: str,
        status: int,
        payload: dict | bytes,
        *,
        headers: dict[str, str] | None = None,
        truncate: bool = False,
        fault: str | None = None,
    ) -> None:
        raw = payload if isinstance(payload, bytes) else encode_json(payload)
        self.server.sandbox.stats.record(endpoint_key, None if truncate else status, fault)
        try:
            self.send_response(status)
            self.send_header("Content-Type", JSONAPI)
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            if truncate:
                self.wfile.write(raw[: max(1, len(raw) // 2)])
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def serve(
    data: SandboxData, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> SandboxServer:
    """Start serving `data` on a background thread; port 0 picks a free port.

    `config` is kept by reference: changing its fault_rate, latency_ms, rate_limits or
    rate_limit_scale affects the running server. Defaults to the config the data was
    generated from.
    """
    return SandboxServer(data, config or data.config, host, port).start()
