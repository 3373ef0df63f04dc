"""The sandbox's rate limiter: Klaviyo's fixed windows (LIVE_BEHAVIOUR.md §6), on a fake clock."""

from __future__ import annotations

from klaviyo_etl.sandbox.ratelimit import RateLimiter, limits_for


def _limiter() -> tuple[RateLimiter, list[float], list]:
    now = [0.0]
    return RateLimiter(clock=lambda: now[0]), now, [("b", limits_for(3, 60, None, 1.0))]


def test_the_burst_window_is_fixed_a_full_burst_passes_as_soon_as_it_ends() -> None:
    limiter, now, buckets = _limiter()
    for t in (0.0, 0.5, 0.9):  # a burst spread over its window
        now[0] = t
        assert limiter.check(buckets).allowed
    # A sliding window would still hold 0.5 and 0.9 at 1.0 and refuse two of these three.
    now[0] = 1.0
    assert [limiter.check(buckets).allowed for _ in range(3)] == [True, True, True]


def test_a_request_over_the_burst_is_refused_until_its_window_ends() -> None:
    limiter, now, buckets = _limiter()
    for _ in range(3):
        assert limiter.check(buckets).allowed
    now[0] = 0.4
    refused = limiter.check(buckets)
    assert not refused.allowed and refused.retry_after == 1  # 0.6 s left, in whole seconds
    assert limiter.is_early(["b"], 0.5)
    assert not limiter.is_early(["b"], 1.4)
