"""Klaviyo's rate limiting: fixed burst (1 s) and steady (60 s) windows per endpoint.

Klaviyo counts per account and endpoint in fixed windows and answers 429 with `Retry-After`
when either window is full; successful answers carry `RateLimit-Limit`, `RateLimit-Remaining`
and `RateLimit-Reset` describing the steady window. Reporting endpoints add a daily window.

`scale` multiplies the allowed counts (at least 1 per window); 1.0 reproduces the real limits
exactly. Below 1 it also shortens the steady and daily windows by the same factor (never under
1 s) so that a throttled test waits a second or two rather than a minute: scaled-down limits
are therefore dominated by the (scaled) burst window, which is what tests of 429 handling need.
The steady and daily windows are exercised at scale 1.0 (reporting: 2 per minute).

A 429 closes its bucket until its `Retry-After` has passed. A request that arrives at a closed
bucket is "early" (`SandboxStats.early`): a careful client, all of its workers together, sends
none, and the tests assert the count stays 0. The interval starts when the 429 is decided, so
a request that had arrived before then is not counted; one sent alongside the throttled
request but arriving after the decision is, which is why a client keeps one request at a time
in flight on a bucket whose real limit it does not know yet.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    count: int
    window_s: float
    name: str  # burst | steady | daily


@dataclass
class Decision:
    allowed: bool
    retry_after: int = 0  # seconds, when not allowed
    limit: int = 0  # steady-window figures for the RateLimit-* headers
    remaining: int = 0
    reset: int = 0


def limits_for(burst_per_s: float, steady_per_min: float, daily: int | None, scale: float) -> list[Limit]:
    shrink = min(1.0, scale)
    limits = [
        Limit(max(1, math.floor(burst_per_s * scale)), 1.0, "burst"),
        Limit(max(1, math.floor(steady_per_min * scale)), max(1.0, 60.0 * shrink), "steady"),
    ]
    if daily:
        limits.append(Limit(max(1, math.floor(daily * scale)), max(1.0, 86_400.0 * shrink), "daily"))
    return limits


class RateLimiter:
    """Fixed-window counters keyed by (bucket, window name)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.lock = threading.Lock()
        # (bucket, window name) -> (window start, count)
        self.windows: dict[tuple[str, str], tuple[float, int]] = {}
        # bucket -> (throttled from, throttled until): the last 429's Retry-After interval
        self.closed: dict[str, tuple[float, float]] = {}

    def reset(self) -> None:
        with self.lock:
            self.windows.clear()
            self.closed.clear()

    def is_early(self, buckets: list[str], at: float) -> bool:
        """Whether a request that arrived at `at` found one of `buckets` closed by a 429."""
        with self.lock:
            return any(start <= at < end for start, end in (self.closed.get(b, (0.0, 0.0)) for b in buckets))

    def close(self, buckets: list[str], retry_after: float) -> None:
        """A 429 with `retry_after` was decided now for `buckets`."""
        with self.lock:
            self._close(buckets, retry_after, self.clock())

    def _close(self, buckets: list[str], retry_after: float, now: float) -> None:
        for bucket in buckets:
            start, end = self.closed.get(bucket, (now, now))
            if now > end:
                start = now
            self.closed[bucket] = (start, max(end, now + retry_after))

    def check(self, buckets: list[tuple[str, list[Limit]]]) -> Decision:
        """Count one request against every bucket, or refuse it without counting."""
        with self.lock:
            now = self.clock()
            states = []
            wait = 0.0
            full: list[str] = []
            for bucket, limits in buckets:
                for limit in limits:
                    key = (bucket, limit.name)
                    start, count = self.windows.get(key, (now, 0))
                    if now - start >= limit.window_s:
                        start, count = now, 0
                    states.append((key, limit, start, count))
                    if count >= limit.count:
                        wait = max(wait, start + limit.window_s - now)
                        full.append(bucket)
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                self._close(full, retry_after, now)
                return Decision(False, retry_after=retry_after)
            steady = None
            for key, limit, start, count in states:
                self.windows[key] = (start, count + 1)
                if limit.name == "steady" and steady is None:
                    steady = (limit, start, count + 1)
            if steady is None:
                return Decision(True)
            limit, start, used = steady
            return Decision(
                True,
                limit=limit.count,
                remaining=max(0, limit.count - used),
                reset=max(0, math.ceil(start + limit.window_s - now)),
            )
