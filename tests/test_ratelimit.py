import asyncio

import pytest

from klaviyo_etl.endpoints import RateLimit
from klaviyo_etl.ratelimit import Bucket, RateLimiter, first_int, retry_after, steady_limit


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


def test_a_burst_slot_is_free_a_second_after_its_answer_when_that_is_sooner_than_the_margin():
    """The server counted a request before it answered: one second after the answer, no
    window can hold both. Unanswered slots (or slow answers) keep the margin."""
    clock = FakeClock()
    bucket = Bucket(RateLimit(burst_per_s=3, steady_per_min=60, tier="S"), headroom=1.0, clock=clock)
    bucket.learn(60)  # the probe is over: requests may overlap
    claims = [asyncio.run(bucket.acquire()) for _ in range(3)]
    assert [c.slot for c in claims] == [0, 1, 2]
    assert bucket.delay() == pytest.approx(1.0 + bucket.margin)
    bucket.release(claims[0].slot, clock() + 0.03)  # a fast answer
    bucket.release(claims[1].slot, clock() + 0.5)  # slower than the margin: changes nothing
    bucket.release(claims[2].slot, None)  # no answer (a dropped connection)
    assert bucket.delay() == pytest.approx(1.03)
    clock.t += 1.03
    assert bucket.delay() == 0
    bucket.sent.append(clock())  # the freed slot is taken again
    assert bucket.delay() == pytest.approx(bucket.margin - 0.03)
    clock.t += bucket.margin - 0.03
    assert bucket.delay() == 0


def test_the_answers_of_slots_that_left_the_steady_window_are_forgotten():
    clock = FakeClock()
    bucket = Bucket(RateLimit(burst_per_s=3, steady_per_min=60, tier="S"), headroom=1.0, clock=clock)
    for _ in range(5):
        claim = asyncio.run(bucket.acquire())
        bucket.release(claim.slot, clock() + 0.01)
        clock.t += 30
    # sent at 1000, 1030, ... 1120: the first two left the window when the fifth was claimed
    assert list(bucket.sent) == [1060, 1090, 1120] and bucket.dropped == 2
    assert sorted(bucket.answered) == [2, 3, 4]
    assert asyncio.run(bucket.acquire()).slot == 5 and sorted(bucket.answered) == [3, 4]


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


def test_acquire_with_quick_answers_never_exceeds_burst_between_answer_and_send():
    """Workers that release each slot with its answer time: a slot is reused no sooner than
    a second after that answer, and the run is faster than with the margin alone."""

    async def go(answer_s: float) -> tuple[list[float], list[float]]:
        limiter = RateLimiter(headroom=1.0)
        limit = RateLimit(burst_per_s=5, steady_per_min=600, tier="M")
        answers: list[float] = []

        async def one() -> None:
            claim = await limiter.acquire("k", limit)
            await asyncio.sleep(answer_s)
            answers.append(limiter.clock())
            limiter.release("k", claim.slot, answers[-1])

        await asyncio.gather(*(one() for _ in range(11)))
        return list(limiter.buckets["k"].sent), answers

    sent, answers = asyncio.run(go(0.02))
    for i in range(5, 11):  # the i-th send reuses the slot of the (i-5)-th
        assert sent[i] >= min(sent[i - 5] + 1.0 + Bucket.margin, answers[i - 5] + 1.0) - 1e-3
    assert sent[-1] - sent[0] < 2 * (1.0 + Bucket.margin) - 0.1


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


def test_steady_limit_reads_klaviyos_bare_count_or_the_sixty_second_entry():
    assert steady_limit("350") == 350
    assert steady_limit("3, 3;w=1, 60;w=60") == 60
    assert steady_limit("3;w=1") is None  # only the burst window: nothing to learn
    assert steady_limit("3, 60") is None  # a list without windows: which is which?
    assert steady_limit(None) is None and steady_limit("junk") is None


def test_an_answer_stating_a_smaller_steady_count_shrinks_the_burst_in_proportion():
    documented = RateLimit(burst_per_s=350, steady_per_min=3500, tier="XL")
    bucket = Bucket(documented, headroom=0.9)
    bucket.learn(350)  # limits cut tenfold
    assert bucket.burst == 35
    # A count that is a documented tier's steady takes that tier's burst if it is smaller.
    tier_m = Bucket(documented, headroom=1.0)
    tier_m.learn(150)  # M: 10/s, 150/min (in proportion it would be 15)
    assert tier_m.burst == 10


def test_what_is_left_of_the_steady_window_holds_the_bucket_when_requests_in_flight_may_spend_it():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    limit = RateLimit(burst_per_s=10, steady_per_min=150, tier="M")
    bucket = limiter.bucket("k", limit)
    bucket.in_flight = 3  # this answer's request and two others
    limiter.observe("k", {"ratelimit-limit": "150", "ratelimit-remaining": "3", "ratelimit-reset": "20"}, 200)
    assert bucket.delay() == 0  # three left, two of them for the others: one more may go
    limiter.observe("k", {"ratelimit-limit": "150", "ratelimit-remaining": "2", "ratelimit-reset": "20"}, 200)
    assert bucket.delay() == pytest.approx(20.0)


def test_an_answer_stating_the_documented_or_a_larger_count_changes_nothing_but_the_probe():
    for count in (3500, 5000, 0):
        bucket = Bucket(RateLimit(burst_per_s=350, steady_per_min=3500, tier="XL"), headroom=1.0)
        bucket.learn(count)
        assert (bucket.burst, bucket.confirmed) == (350, True)


def test_a_new_bucket_is_one_at_a_time_until_an_answer_states_the_limit():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    bucket = limiter.bucket("k", RateLimit(burst_per_s=75, steady_per_min=750, tier="L"))
    assert bucket.one_at_a_time() == pytest.approx(bucket.probe_s)
    limiter.observe("k", {"ratelimit-limit": "750", "ratelimit-remaining": "749"}, 200)
    assert bucket.one_at_a_time() == 0
    # Without the header the probe runs its course.
    silent = limiter.bucket("s", RateLimit(burst_per_s=75, steady_per_min=750, tier="L"))
    limiter.observe("s", {}, 200)
    assert silent.one_at_a_time() == pytest.approx(silent.probe_s)
    # A 429 makes it serial again, whatever the headers said before.
    limiter.observe("k", {"retry-after": "1"}, 429)
    assert bucket.one_at_a_time() == pytest.approx(bucket.caution_s)


def simulate(bucket: Bucket, clock: FakeClock, *, requests: int, workers: int, answer_s: float, headers):
    """Workers that send as soon as the bucket lets them (its `delay` and `one_at_a_time`,
    as `acquire` reads them) and get their answer `answer_s` later, with `headers`.
    Returns the send times."""
    ready = [clock.t] * workers
    answers: list[float] = []  # times at which requests in flight are answered
    sent: list[float] = []
    while len(sent) < requests:
        i = min(range(workers), key=ready.__getitem__)
        clock.t = ready[i]
        for done in [a for a in answers if a <= clock.t]:
            answers.remove(done)
            if headers:
                bucket.learn(headers)
            bucket.release()
        if (d := bucket.delay()) > 0:
            ready[i] = clock.t + d
        elif bucket.in_flight and bucket.one_at_a_time() > 0:
            ready[i] = min(answers)
        else:
            bucket.sent.append(clock.t)
            bucket.in_flight += 1
            sent.append(clock.t)
            answers.append(clock.t + answer_s)
            ready[i] = clock.t + answer_s
    return sent


@pytest.mark.parametrize(
    "burst,steady,workers,answer_s",
    # events at the tenfold-cut limits (pages of 1,000); profiles at the L tier (of 100)
    [(35, 350, 8, 0.1), (75, 750, 8, 0.05)],
)
def test_a_fresh_bucket_whose_first_answer_states_the_limit_keeps_pace_with_the_ideal(
    burst, steady, workers, answer_s
):
    """200 pages with the streams' workers: the last answer comes within the time the windows
    allow (the ideal of `make bench`, 200 / burst) and the margin, instead of after 1.5 s of
    one request at a time first."""
    ideal = 200 / burst
    clock = FakeClock()
    start = clock.t
    told = Bucket(RateLimit(burst_per_s=burst, steady_per_min=steady, tier="L"), clock=clock)
    sent = simulate(told, clock, requests=200, workers=workers, answer_s=answer_s, headers=steady)
    assert sent[-1] + answer_s - start <= ideal * (1 + told.margin)
    # any 1-second window holds at most `burst` sends (with the margin, none at all early)
    assert all(
        sum(1 for u in sent[i:] if u < t + 1.0 + told.margin - 1e-9) <= burst for i, t in enumerate(sent)
    )
    clock = FakeClock()
    silent = Bucket(RateLimit(burst_per_s=burst, steady_per_min=steady, tier="L"), clock=clock)
    slow = simulate(silent, clock, requests=200, workers=workers, answer_s=answer_s, headers=None)
    assert slow[-1] - sent[-1] > 0.5  # what the serial probe cost
