"""Pacing requests under Klaviyo's per-endpoint rate limits.

Klaviyo limits each endpoint with two fixed windows (a 1 s burst and a 60 s steady rate, by
tier; see sandbox/LIVE_BEHAVIOUR.md §6), without saying where a window starts. Proactive: a
request waits until both windows have room, counted as sliding windows over the time each
request may have reached the server (below); no placement of the fixed windows can refuse
what they allow, so a well-behaved run sees no 429s.
Adaptive: `RateLimit-*` headers and `Retry-After` pause the bucket when the server knows
better (other clients on the same key, a stricter limit than documented).

A 429 is news for every worker of the bucket, not only for the one that got it: the pause
holds them all, and for `caution_s` afterwards the bucket lets one request at a time be in
flight (so no worker sends while another's 429 is on its way back) and halves its burst
(so the workers stop racing for a window the server has shown to be smaller). A new bucket
starts the same way, one request at a time, so that a limit smaller than documented shows
itself by a single 429 rather than by a herd of parallel requests landing on a throttled
endpoint. Without this, parallel workers kept sending to an endpoint before its
`Retry-After` had passed (the sandbox counts such "early" requests).

The new bucket's probe ends with the first answer that states the limit: Klaviyo's
`RateLimit-Limit` gives the steady window's count on every answer but a 429. A count
under the documented one (a smaller tier, or limits cut for a test) shrinks the burst in
the same proportion, or to the tier with that steady count if it is smaller, before any
parallel request goes out; a count that agrees lets the workers spend the burst at once.
The steady window is paced by `RateLimit-Remaining`: when the requests in flight may
spend what is left, the bucket waits for `RateLimit-Reset`.
Only when no answer states the limit does the probe last `probe_s` (issue 12: the serial
1.5 s cost a 2.7 s first load of profiles a third of its time).

A slot of either window is free again one window's length after its request was over: after
its answer's headers came back, or after it failed (issue 12). The server counts a request
between our sending it and its answer, so a request sent a second after the answer of the
one whose slot it takes can never share a fixed burst window with it, wherever the server
puts the windows and however long either request took on the way; until its answer is in,
a request holds its slot. This needs no guess of the network's delay: the former margin
(a slot free 0.1 s after its second, answer or not) was load-bearing at the sandbox's
latency (at 0, a first load of 200,000 events at the cut limits met a 429 in every run, and
the caution after it doubled the run), and a request that reached Klaviyo more than the
margin after it was sent, over a slow or uneven network, could share a window with one
sent up to a second later. The price is the answer's time once a window: at the sandbox's
60 ms it is within the noise, at an even 250 ms (which the margin happened to survive) a
first load of events took 1-4 % longer and one of profiles 6-15 % (`make bench
--latency-ms 250`, 2 alternated pairs).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from klaviyo_etl.endpoints import RateLimit, contract

Clock = Callable[[], float]


class Claim(NamedTuple):
    """A claimed slot: the seconds spent waiting for it, and its number in the bucket (what
    `release` is told, with the time its answer came back)."""

    waited: float
    slot: int


class Bucket:
    """One endpoint's requests in flight and when those of the last 60 s were over."""

    # How long a 429 keeps the bucket cautious (one request in flight, half the burst): the
    # steady window, after which the server's count has surely started afresh.
    caution_s = 60.0
    # How long a new bucket sends one request at a time if no answer states the limit: one
    # burst window and a half.
    probe_s = 1.5

    def __init__(self, limit: RateLimit, *, headroom: float = 0.9, clock: Clock = time.monotonic):
        # The burst window keeps no headroom: its slots are freed by the answers (see the
        # module docstring), and 10 % headroom cost 10 % of every first load.
        self.limit = limit
        self.headroom = headroom
        self.burst = max(1, int(limit.burst_per_s))
        self.steady = _with_headroom(limit.steady_per_min, headroom)
        self.confirmed = False  # an answer has stated the server's limit (see `learn`)
        self.clock = clock
        # The slots of the requests in flight; when those of the last 60 s were over
        # (answered or failed), ascending.
        self.pending: set[int] = set()
        self.over: list[float] = []
        self.slots = 0  # slots claimed so far: the next one's number
        self.paused_until = 0.0
        self.lock = asyncio.Lock()
        self.answer = asyncio.Event()  # set by every `release`: a slot may be free again
        self.throttled_at: float | None = None  # the last 429
        self.created_at = clock()
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def cautious(self) -> bool:
        """Whether a recent 429 holds the bucket to one request in flight and half its burst."""
        return self.throttled_at is not None and self.clock() - self.throttled_at < self.caution_s

    def one_at_a_time(self) -> float:
        """Seconds during which a request must wait for the one in flight (after a 429, or
        while the bucket is new); 0 when requests may overlap."""
        now = self.clock()
        ends = [] if self.confirmed else [self.created_at + self.probe_s]
        if self.throttled_at is not None:
            ends.append(self.throttled_at + self.caution_s)
        return max(0.0, max(ends, default=now) - now)

    def delay(self) -> float:
        """Seconds until one more request fits both windows (0 if it fits now; `math.inf` if
        only an answer still out can free a slot)."""
        now = self.clock()
        gone = bisect.bisect_right(self.over, now - 60)
        if gone:
            del self.over[:gone]
        burst = max(1, self.burst // 2) if self.cautious() else self.burst
        return max(
            0.0,
            self.paused_until - now,
            self.window_wait(now, burst, 1.0),
            self.window_wait(now, self.steady, 60.0),
        )

    def window_wait(self, now: float, count: int, length: float) -> float:
        """Seconds until a window of `length` s holding `count` requests has a free slot: each
        request holds one from when it is sent until `length` after it was over."""
        recent = bisect.bisect_right(self.over, now - length)  # `over[recent:]` still hold one
        busy = len(self.pending) + len(self.over) - recent
        if busy < count:
            return 0.0
        freed = recent + busy - count  # the slot that frees first enough of them
        return self.over[freed] + length - now if freed < len(self.over) else math.inf

    async def acquire(self) -> Claim:
        """Wait for a slot and claim it.

        Every claim must be matched by `release()` once its response (or failure) is in.
        """
        waited = 0.0
        async with self.lock:
            while True:
                start = self.clock()
                if math.isinf(d := self.delay()):
                    self.answer.clear()
                    await self.answer.wait()
                    waited += self.clock() - start
                elif d > 0:
                    await asyncio.sleep(d)
                    waited += d
                elif self.in_flight and (serial := self.one_at_a_time()) > 0:
                    # `asyncio.timeout`, not `wait_for`: in Python 3.11 `wait_for` drops a
                    # cancel that comes in the turn its wait ends, and the cancelled worker
                    # read on, then waited for ever for a window a failed sibling left.
                    try:
                        async with asyncio.timeout(serial):
                            await self.idle.wait()
                    except TimeoutError:
                        pass  # the caution is over: requests may overlap again
                    waited += self.clock() - start
                else:
                    break
            return Claim(waited, self.take())

    def take(self) -> int:
        """Claim a slot now (what `acquire` does once one is free): its number."""
        slot = self.slots
        self.slots += 1
        self.pending.add(slot)
        self.in_flight += 1
        self.idle.clear()
        return slot

    def release(self, slot: int, answered_at: float | None = None) -> None:
        """A claimed request is answered (or failed): it is no longer in flight. `answered_at`
        (on this bucket's clock) is when its answer's headers came back; None if none did,
        and then its slot counts from now, when the failure is known."""
        if slot in self.pending:
            self.pending.discard(slot)
            bisect.insort(self.over, self.clock() if answered_at is None else answered_at)
        self.in_flight = max(0, self.in_flight - 1)
        if not self.in_flight:
            self.idle.set()
        self.answer.set()

    def learn(self, steady_per_min: int) -> None:
        """The server's steady count (`RateLimit-Limit`): the probe is over, and a count under
        the documented one shrinks the burst (never grows it). The steady window itself is
        paced by what the answers say is left of it (`budget`): its length is not stated."""
        self.confirmed = True
        documented = self.limit.steady_per_min
        if not 0 < steady_per_min < documented:
            return
        burst = math.floor(self.limit.burst_per_s * steady_per_min / documented)
        tier = tier_burst(steady_per_min)
        self.burst = min(self.burst, max(1, burst if tier is None else min(burst, tier)))

    def budget(self, remaining: int, reset: float) -> None:
        """An answer says `remaining` requests are left in the steady window for `reset` s:
        if the other requests in flight may spend them, wait for the window to reset."""
        others = max(0, self.in_flight - 1)  # read before this request's `release`
        if remaining <= others and reset > 0:
            self.pause(reset)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    def throttled(self, retry_after: float) -> None:
        """A 429: pause every worker until `retry_after` has passed, and turn cautious."""
        self.throttled_at = self.clock()
        self.pause(retry_after)


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

    async def acquire(self, key: str, limit: RateLimit) -> Claim:
        return await self.bucket(key, limit).acquire()

    def release(self, key: str, slot: int, answered_at: float | None = None) -> None:
        if key in self.buckets:
            self.buckets[key].release(slot, answered_at)

    def observe(self, key: str, headers: Mapping[str, str], status: int) -> None:
        """Adapt to what the server says about the remaining budget."""
        bucket = self.buckets.get(key)
        if bucket is None:
            return
        if status == 429:
            bucket.throttled(retry_after(headers) or 1.0)
            return
        if (steady := steady_limit(headers.get("ratelimit-limit"))) is not None:
            bucket.learn(steady)
        remaining = first_int(headers.get("ratelimit-remaining"))
        reset = first_int(headers.get("ratelimit-reset"))
        if remaining is not None and reset:
            bucket.budget(remaining, float(reset))


def _with_headroom(limit: float, headroom: float) -> int:
    """Keep a margin below the documented limit, unless the margin would be under one request
    (2/min must stay 2/min, not 1)."""
    return max(1, int(limit) - int(limit * (1 - headroom) + 1e-9))


def tier_burst(steady_per_min: float) -> int | None:
    """The burst of the documented tier with this steady count (None if no tier has it)."""
    for burst, steady in contract().rate_limit_tiers.values():
        if steady == steady_per_min:
            return int(burst)
    return None


def steady_limit(value: str | None) -> int | None:
    """The steady window's count from `RateLimit-Limit`: Klaviyo's bare number, or the
    `;w=60` entry of a list like `3, 3;w=1, 60;w=60` (None if the value names no such window)."""
    if not value:
        return None
    entries = [e.strip() for e in value.split(",")]
    windowed = [e for e in entries if ";w=" in e.replace(" ", "")]
    if not windowed:
        return first_int(value) if len(entries) == 1 else None
    for entry in windowed:
        count, _, params = entry.partition(";")
        if params.replace(" ", "") == "w=60":
            return first_int(count)
    return None


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
