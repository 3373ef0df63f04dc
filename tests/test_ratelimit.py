import asyncio
import math

import pytest

from klaviyo_etl.endpoints import RateLimit
from klaviyo_etl.ratelimit import Bucket, RateLimiter, first_int, retry_after, steady_limit


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_burst_then_waits_one_second_after_the_answers():
    clock = FakeClock()
    bucket = Bucket(RateLimit(burst_per_s=3, steady_per_min=60, tier="S"), headroom=1.0, clock=clock)
    bucket.learn(60)  # the probe is over: requests may overlap
    slots = []
    for _ in range(3):
        assert bucket.delay() == 0
        slots.append(bucket.take())
    assert bucket.delay() == math.inf  # only an answer can free a slot
    clock.t += 0.2
    for slot in slots:
        bucket.release(slot, clock())
    assert bucket.delay() == pytest.approx(1.0)
    clock.t += 1.0
    assert bucket.delay() == 0


def test_a_slot_is_free_a_second_after_its_answer_and_held_while_the_answer_is_out():
    """The server counted a request before it answered: one second after the answer, no
    fixed window can hold both it and the next, however slow the answer was. A request that
    failed holds its slot until a second after the failure was known."""
    clock = FakeClock()
    bucket = Bucket(RateLimit(burst_per_s=3, steady_per_min=60, tier="S"), headroom=1.0, clock=clock)
    bucket.learn(60)
    claims = [asyncio.run(bucket.acquire()) for _ in range(3)]
    assert [c.slot for c in claims] == [0, 1, 2]
    clock.t += 0.03
    bucket.release(claims[0].slot, clock())  # a fast answer
    assert bucket.delay() == pytest.approx(1.0)
    clock.t += 0.47
    bucket.release(claims[1].slot, clock() - 0.01)  # its headers came back 10 ms ago
    clock.t += 0.5
    bucket.release(claims[2].slot, None)  # a dropped connection, known now
    assert bucket.over == [1000.03, 1000.49, 1001.0]
    assert bucket.delay() == pytest.approx(0.03)
    clock.t += 0.03
    assert bucket.delay() == 0
    bucket.take()  # the freed slot is taken again; the next frees at the slow answer + 1 s
    assert bucket.delay() == pytest.approx(0.46)


def test_slots_over_for_longer_than_the_steady_window_are_forgotten():
    clock = FakeClock()
    bucket = Bucket(RateLimit(burst_per_s=3, steady_per_min=60, tier="S"), headroom=1.0, clock=clock)
    for _ in range(5):
        claim = asyncio.run(bucket.acquire())
        bucket.release(claim.slot, clock() + 0.01)
        clock.t += 30
    # over at 1000.01, 1030.01, ... 1120.01; at 1150 those before 1090 have left the window
    assert bucket.delay() == 0
    assert bucket.over == [1090.01, 1120.01] and not bucket.pending


def test_bucket_steady_window_paces_a_minute():
    clock = FakeClock()
    bucket = Bucket(RateLimit(burst_per_s=10, steady_per_min=15, tier="XS"), headroom=1.0, clock=clock)
    bucket.learn(15)
    for i in range(15):
        clock.t = 1000 + i * 1.0  # one per second never trips the burst window
        assert bucket.delay() == 0
        bucket.release(bucket.take(), clock() + 0.1)
    clock.t = 1015.0
    # the 16th must wait until the first of the last 15 has been over for 60 s
    assert bucket.delay() == pytest.approx(45.1)


def test_headroom_keeps_below_documented_limit():
    bucket = Bucket(RateLimit(burst_per_s=350, steady_per_min=3500, tier="XL"), headroom=0.9)
    assert bucket.burst == 350 and bucket.steady == 3150  # the burst keeps no headroom


async def run_workers(limiter: RateLimiter, limit: RateLimit, requests: int, answer_s: float):
    """`requests` sent at once through `limiter`, each answered `answer_s` after it was
    sent: (send time, answer time) of each, in the order sent."""
    times: list[tuple[float, float]] = []

    async def one() -> None:
        claim = await limiter.acquire("k", limit)
        sent = limiter.clock()
        await asyncio.sleep(answer_s)
        times.append((sent, limiter.clock()))
        limiter.release("k", claim.slot, times[-1][1])

    await asyncio.gather(*(one() for _ in range(requests)))
    return sorted(times)


def fits_one_window(times: list[tuple[float, float]], burst: int) -> bool:
    """Whether `burst` + 1 of these requests may have reached the server within one second:
    each arrived at some time between its send and its answer, so some fixed window can hold
    them all when the latest send is less than a second after the earliest answer."""
    return any(
        max(sent for sent, _ in group) < min(answer for _, answer in group) + 1.0 - 1e-9
        for i in range(len(times) - burst)
        for group in [times[i : i + burst + 1]]
    )


def test_acquire_never_exceeds_burst_in_real_time():
    limit = RateLimit(burst_per_s=5, steady_per_min=600, tier="M")
    limiter = RateLimiter(headroom=1.0)
    limiter.bucket("k", limit).learn(600)
    times = asyncio.run(run_workers(limiter, limit, 12, 0.0))
    sent = [t for t, _ in times]
    # any 1-second window holds at most 5 sends
    for i, t in enumerate(sent):
        assert sum(1 for u in sent[i:] if u < t + 1.0 - 1e-9) <= 5
    assert sent[-1] - sent[0] >= 2.0 - 1e-3  # 12 sends at 5/s need two extra seconds


def test_answers_slower_than_the_old_margin_never_let_a_window_hold_more_than_the_burst():
    """Answers 0.25 s after the send: a request may reach Klaviyo any time in between, so a
    slot freed 0.1 s after its second (the former margin) let four requests of a burst of
    three land in one fixed window; freed a second after each answer, none can."""
    limit = RateLimit(burst_per_s=3, steady_per_min=600, tier="M")
    limiter = RateLimiter(headroom=1.0)
    limiter.bucket("k", limit).learn(600)
    times = asyncio.run(run_workers(limiter, limit, 7, 0.25))
    assert not fits_one_window(times, 3)
    assert times[-1][0] - times[0][0] < 2 * 1.25 + 0.2  # and no slower than that needs


def test_quick_answers_free_their_slots_a_second_after_the_answer():
    limit = RateLimit(burst_per_s=5, steady_per_min=600, tier="M")
    limiter = RateLimiter(headroom=1.0)
    limiter.bucket("k", limit).learn(600)
    times = asyncio.run(run_workers(limiter, limit, 11, 0.02))
    assert not fits_one_window(times, 5)
    for i in range(5, 11):  # the i-th send reuses the slot of the (i-5)-th
        assert times[i][0] >= times[i - 5][1] + 1.0 - 1e-3
    assert times[-1][0] - times[0][0] < 2 * 1.02 + 0.1


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
    answers: dict[int, float] = {}  # slot -> when the request in flight is answered
    sent: list[float] = []
    while len(sent) < requests:
        i = min(range(workers), key=ready.__getitem__)
        clock.t = ready[i]
        for slot, done in sorted(answers.items(), key=lambda item: item[1]):
            if done <= clock.t:
                del answers[slot]
                if headers:
                    bucket.learn(headers)
                bucket.release(slot, done)
        if (d := bucket.delay()) > 0:
            ready[i] = clock.t + d if d < math.inf else min(answers.values())
        elif bucket.in_flight and bucket.one_at_a_time() > 0:
            ready[i] = min(answers.values())
        else:
            answers[bucket.take()] = clock.t + answer_s
            sent.append(clock.t)
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
    allow (the ideal of `make bench`, 200 / burst) and an answer's time a window, instead of
    after 1.5 s of one request at a time first."""
    ideal = 200 / burst
    clock = FakeClock()
    start = clock.t
    told = Bucket(RateLimit(burst_per_s=burst, steady_per_min=steady, tier="L"), clock=clock)
    sent = simulate(told, clock, requests=200, workers=workers, answer_s=answer_s, headers=steady)
    assert sent[-1] + answer_s - start <= ideal * (1 + answer_s)
    # a slot is taken again a second after its answer: any 1 s + answer_s holds `burst` sends
    assert all(sum(1 for u in sent[i:] if u < t + 1.0 + answer_s - 1e-9) <= burst for i, t in enumerate(sent))
    clock = FakeClock()
    silent = Bucket(RateLimit(burst_per_s=burst, steady_per_min=steady, tier="L"), clock=clock)
    slow = simulate(silent, clock, requests=200, workers=workers, answer_s=answer_s, headers=None)
    assert slow[-1] - sent[-1] > 0.5  # what the serial probe cost


def test_a_cancel_in_the_turn_the_request_in_flight_is_answered_ends_the_waiting_acquire():
    """A worker waiting for the one request in flight (a new bucket's probe) is cancelled in
    the turn that request is answered: a sibling failed on that answer (a 400). The cancel
    must end its wait. Python 3.11's `asyncio.wait_for` returned the answer and dropped the
    cancel: the worker went on alone, then waited for ever for the failed window, deaf to
    SIGTERM (`sync events --since 0999-06-01`, killed by hand after 11 min)."""

    async def cancel_after(turns: int) -> bool:
        """Whether the cancel was kept (True) or dropped (False); True too when the acquire
        was over before the cancel."""
        bucket = Bucket(RateLimit(burst_per_s=3, steady_per_min=60, tier="S"), headroom=1.0)
        first = await bucket.acquire()
        waiting = asyncio.ensure_future(bucket.acquire())
        await asyncio.sleep(0)
        bucket.release(first.slot)
        for _ in range(turns):
            await asyncio.sleep(0)
        if not waiting.cancel():
            return True  # already over: nothing to cancel
        try:
            await waiting
        except asyncio.CancelledError:
            return True
        return False

    async def every_turn() -> list[bool]:
        return [await cancel_after(turns) for turns in range(6)]

    assert all(asyncio.run(every_turn()))
