"""Pacing requests under Klaviyo's per-endpoint rate limits.

Klaviyo limits each endpoint with two windows (a 1 s burst and a 60 s steady rate, by tier).
Proactive: a request waits until both sliding windows have room, so a well-behaved run
sees no 429s. Adaptive: `RateLimit-*` headers and `Retry-After` pause the bucket when the
server knows better (other clients on the same key, a stricter limit than documented).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping

from klaviyo_etl.endpoints import RateLimit

Clock = Callable[[], float]


class Bucket:
    """Sliding-window log for one endpoint: send times of the last 60 s."""

    # Requests reach the server a little after we send them, unevenly: a window we think
    # has emptied may not have on the server's clock yet.
    margin = 0.1

    def __init__(self, limit: RateLimit, *, headroom: float = 0.9, clock: Clock = time.monotonic):
        # The burst window keeps no headroom: `margin` already covers the skew, and an
        # overshoot costs one 1 s pause, while 10 % headroom cost 10 % of every first load.
        self.burst = max(1, int(limit.burst_per_s))
        self.steady = _with_headroom(limit.steady_per_min, headroom)
        self.clock = clock
        self.sent: deque[float] = deque()
        self.paused_until = 0.0
        self.lock = asyncio.Lock()

    def delay(self) -> float:
        """Seconds until one more request fits both windows (0 if it fits now)."""
        now = self.clock()
        while self.sent and self.sent[0] <= now - 60 - self.margin:
            self.sent.popleft()
        waits = [self.paused_until - now]
        if len(self.sent) >= self.steady:
            waits.append(self.sent[-self.steady] + 60 + self.margin - now)
        if len(self.sent) >= self.burst:
            waits.append(self.sent[-self.burst] + 1 + self.margin - now)
        return max(0.0, *waits)

    async def acquire(self) -> float:
        """Wait for a slot and claim it; returns the seconds spent waiting."""
        waited = 0.0
        async with self.lock:
            while (d := self.delay()) > 0:
                await asyncio.sleep(d)
                waited += d
            self.sent.append(self.clock())
        return waited

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)


class RateLimiter:
    """One bucket per endpoint, created on first use from the contract's limits."""

    def __init__(self, *, headroom: float = 0.9, clock: Clock = time.monotonic):
        self.headroom = headroom
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}

    def bucket(self, key: str, limit: RateLimit) -> Bucket:
        if key not in self.buckets:
            self.buckets[key] = Bucket(limit, headroom=self.headroom, clock=self.clock)
        return self.buckets[key]

    async def acquire(self, key: str, limit: RateLimit) -> float:
        return await self.bucket(key, limit).acquire()

    def observe(self, key: str, headers: Mapping[str, str], status: int) -> None:
        """Adapt to what the server says about the remaining budget."""
        bucket = self.buckets.get(key)
        if bucket is None:
            return
        if status == 429:
            bucket.pause(retry_after(headers) or 1.0)
            return
        remaining = first_int(headers.get("ratelimit-remaining"))
        reset = first_int(headers.get("ratelimit-reset"))
        if remaining == 0 and reset:
            bucket.pause(float(reset))


def _with_headroom(limit: float, headroom: float) -> int:
    """Keep a margin below the documented limit, unless the margin would be under one request
    (2/min must stay 2/min, not 1)."""
    return max(1, int(limit) - int(limit * (1 - headroom) + 1e-9))


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def first_int(value: str | None) -> int | None:
    """`RateLimit-*` values may be lists like `3, 3;w=1, 60;w=60`: the first number counts."""
    if not value:
        return None
    try:
        return int(value.split(",")[0].split(";")[0].strip())
    except ValueError:
        return None
