import asyncio

import pytest

from klaviyo_etl.endpoints import RateLimit
from klaviyo_etl.ratelimit import Bucket, RateLimiter, first_int, retry_after


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_burst_then_waits_one_second():
    clock = FakeClock()
    bucket = Bucket(RateLimit(burst_per_s=3, steady_per_min=60, tier="S"), headroom=1.0, clock=clock)
    for _ in range(3):
        assert bucket.delay() == 0
        bucket.sent.append(clock())
    assert bucket.delay() == pytest.approx(1.0 + bucket.margin)
    clock.t += 1.0 + bucket.margin
    assert bucket.delay() == 0


def test_bucket_steady_window_paces_a_minute():
    clock = FakeClock()
    bucket = Bucket(RateLimit(burst_per_s=10, steady_per_min=15, tier="XS"), headroom=1.0, clock=clock)
    for i in range(15):
        clock.t = 1000 + i * 1.0  # one per second never trips the burst window
        assert bucket.delay() == 0
        bucket.sent.append(clock())
    clock.t = 1015.0
    # the 16th must wait until the first of the last 15 leaves the 60 s window
    assert bucket.delay() == pytest.approx(45.0 + bucket.margin)


def test_headroom_keeps_below_documented_limit():
    bucket = Bucket(RateLimit(burst_per_s=350, steady_per_min=3500, tier="XL"), headroom=0.9)
    assert bucket.burst == 350 and bucket.steady == 3150  # the burst keeps no headroom


def test_acquire_never_exceeds_burst_in_real_time():
    async def go() -> list[float]:
        limiter = RateLimiter(headroom=1.0)
        limit = RateLimit(burst_per_s=5, steady_per_min=600, tier="M")
        await asyncio.gather(*(limiter.acquire("k", limit) for _ in range(12)))
        return list(limiter.buckets["k"].sent)

    sent = asyncio.run(go())
    # any 1-second window holds at most 5 sends
    for i, t in enumerate(sent):
        assert sum(1 for u in sent[i:] if u < t + 1.0 - 1e-9) <= 5
    assert sent[-1] - sent[0] >= 2.0 - 1e-3  # 12 sends at 5/s need two extra seconds


def test_observe_retry_after_and_exhausted_budget_pause_the_bucket():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    limit = RateLimit(burst_per_s=10, steady_per_min=150, tier="M")
    limiter.bucket("k", limit)
    limiter.observe("k", {"retry-after": "7"}, 429)
    assert limiter.buckets["k"].delay() == 7.0
    clock.t += 7
    limiter.observe("k", {"ratelimit-remaining": "0", "ratelimit-reset": "3"}, 200)
    assert limiter.buckets["k"].delay() == 3.0


def test_header_parsing():
    assert first_int("3, 3;w=1, 60;w=60") == 3
    assert first_int("junk") is None
    assert retry_after({"retry-after": "2.5"}) == 2.5
    assert retry_after({}) is None
