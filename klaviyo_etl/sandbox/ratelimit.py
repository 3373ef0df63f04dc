"""Klaviyo's rate limiting: fixed burst (1 s) and steady (60 s) windows per endpoint.

Klaviyo counts per account and endpoint in fixed windows and answers 429 with `Retry-After`
when either window is full; successful answers carry `RateLimit-Limit`, `RateLimit-Remaining`
and `RateLimit-Reset` describing the steady window. Reporting endpoints add a daily window.

`scale` multiplies the allowed counts (at least 1 per window); 1.0 reproduces the real limits
exactly. Below 1 it also shortens the steady and daily windows by the same factor (never under
1 s) so that a throttled test waits a second or two rather than a minute: scaled-down limits
are therefore dominated by the (scaled) burst window, which is what tests of 429 handling need.
The steady and daily windows are exercised at scale 1.0 (reporting: 2 per minute).
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

    def reset(self) -> None:
        with self.lock:
            self.windows.clear()

    def check(self, buckets: list[tuple[str, list[Limit]]]) -> Decision:
        """Count one request against every bucket, or refuse it without counting."""
        with self.lock:
            now = self.clock()
            states = []
            wait = 0.0
            for bucket, limits in buckets:
                for limit in limits:
                    key = (bucket, limit.name)
                    start, count = self.windows.get(key, (now, 0))
                    if now - start >= limit.window_s:
                        start, count = now, 0
                    states.append((key, limit, start, count))
                    if count >= limit.count:
                        wait = max(wait, start + limit.window_s - now)
            if wait > 0:
                return Decision(False, retry_after=max(1, math.ceil(wait)))
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
