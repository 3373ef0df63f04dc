"""Client behaviour against an in-process transport: pagination, errors, retries, pacing."""

import json

import httpx
import pytest

from klaviyo_etl.client import KlaviyoClient, _error_detail
from klaviyo_etl.errors import (
    ApiError,
    AuthError,
    BadRequest,
    FatalError,
    NotFound,
    RevisionRetired,
    TransientError,
    Unreachable,
)
from klaviyo_etl.models import Page
from klaviyo_etl.ratelimit import RateLimiter

KEY = "pk_test_0123456789abcdef"


def envelope(ids, next_url=None):
    return {
        "data": [{"type": "metric", "id": i, "attributes": {"name": f"m{i}"}} for i in ids],
        "links": {"self": "https://a.klaviyo.com/api/metrics", "next": next_url},
    }


def make_client(handler, **kwargs) -> KlaviyoClient:
    kwargs.setdefault("backoff_initial", 0.001)
    kwargs.setdefault("backoff_max", 0.01)
    return KlaviyoClient(
        KEY,
        base_url="http://sandbox.test",
        transport=httpx.MockTransport(handler),
        limiter=kwargs.pop("limiter", RateLimiter(headroom=1.0)),
        **kwargs,
    )


async def collect(client, path="/api/metrics", params=None):
    out = []
    async with client:
        async for page in client.pages(path, params, parse=Page.parse_json):
            out.extend(r.id for r in page.data)
    return out


async def test_sends_klaviyo_headers_and_follows_next_against_base_url():
    seen = []

    def handler(request: httpx.Request):
        seen.append(request)
        cursor = request.url.params.get("page[cursor]")
        if cursor is None:
            # the next link names another host: the client must not send the key there
            return httpx.Response(
                200, json=envelope(["a", "b"], "https://elsewhere.example/api/metrics?page%5Bcursor%5D=2")
            )
        return httpx.Response(200, json=envelope(["c"]))

    ids = await collect(make_client(handler))
    assert ids == ["a", "b", "c"]
    assert [r.url.host for r in seen] == ["sandbox.test", "sandbox.test"]
    first = seen[0]
    assert first.headers["authorization"] == f"Klaviyo-API-Key {KEY}"
    assert first.headers["revision"] == "2026-07-15"
    assert first.headers["accept"] == "application/vnd.api+json"


async def test_a_base_url_with_a_path_prefixes_every_request_and_next_link():
    seen = []

    def handler(request: httpx.Request):
        seen.append(str(request.url))
        if request.url.params.get("page[cursor]") is None:
            return httpx.Response(
                200, json=envelope(["a"], "https://a.klaviyo.com/api/metrics/?page%5Bcursor%5D=x%2By")
            )
        return httpx.Response(200, json=envelope(["b"]))

    client = KlaviyoClient(
        KEY,
        base_url="http://proxy.test/klaviyo/",
        transport=httpx.MockTransport(handler),
        limiter=RateLimiter(headroom=1.0),
    )
    assert await collect(client, "/api/metrics", {"filter": "equals(name,'a b')"}) == ["a", "b"]
    assert seen == [
        "http://proxy.test/klaviyo/api/metrics?filter=equals%28name%2C%27a+b%27%29",
        "http://proxy.test/klaviyo/api/metrics/?page%5Bcursor%5D=x%2By",
    ]


async def test_pages_are_lazy():
    calls = []

    def handler(request):
        calls.append(request)
        n = len(calls)
        return httpx.Response(
            200, json=envelope([str(n)], f"http://sandbox.test/api/metrics?page%5Bcursor%5D={n}")
        )

    async with make_client(handler) as client:
        async for _page in client.pages("/api/metrics", parse=Page.parse_json):
            break
    assert len(calls) == 1


@pytest.mark.parametrize(
    "status,exc,text",
    [
        (400, BadRequest, "400: bad request"),
        (401, AuthError, "401: the API key pk_…cdef was rejected — check KLAVIYO_API_KEY"),
        (403, AuthError, "403: the API key lacks a required scope"),
        (404, NotFound, "404: not found"),
        (410, RevisionRetired, "410: API revision 2026-07-15 is retired"),
    ],
)
async def test_client_errors_are_typed_one_liners_and_not_retried(status, exc, text):
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(status, json={"errors": [{"status": status, "detail": "bad filter"}]})

    with pytest.raises(exc) as info:
        await collect(make_client(handler))
    assert str(info.value).startswith(text)
    assert "\n" not in str(info.value)
    assert KEY not in str(info.value)
    assert len(calls) == 1


@pytest.mark.parametrize("fault", ["500", "502", "503", "drop", "truncate"])
async def test_transient_faults_are_retried(fault):
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) < 3:
            if fault == "drop":
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            if fault == "truncate":
                return httpx.Response(200, content=b'{"data": [{"type": "met')
            return httpx.Response(int(fault), json={"errors": [{"detail": "boom"}]})
        return httpx.Response(200, json=envelope(["x"]))

    client = make_client(handler)
    assert await collect(client) == ["x"]
    assert client.stats.retries == 2 and client.stats.requests == 3


async def test_gives_up_after_max_attempts():
    def handler(request):
        return httpx.Response(503, json={"errors": [{"detail": "down"}]})

    with pytest.raises(TransientError, match="503"):
        await collect(make_client(handler, max_attempts=3))


async def test_429_honours_retry_after(monkeypatch):
    calls = []
    waits = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(
                429, headers={"Retry-After": "2"}, json={"errors": [{"detail": "slow down"}]}
            )
        return httpx.Response(200, json=envelope(["ok"]))

    import asyncio

    real_sleep = asyncio.sleep

    async def fake_sleep(seconds, *a, **k):
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    client = make_client(handler)
    assert await collect(client) == ["ok"]
    assert client.stats.throttled == 1
    # tenacity waited exactly Retry-After, and the limiter paused the bucket as well
    assert 2 in [round(w, 3) for w in waits]


async def test_error_detail_from_jsonapi_body():
    def handler(request):
        body = {
            "errors": [
                {
                    "id": "x",
                    "status": 400,
                    "code": "invalid",
                    "title": "Invalid input.",
                    "detail": "'foo' is not a valid field for the resource 'metric'.",
                    "source": {"parameter": "filter"},
                }
            ]
        }
        return httpx.Response(400, content=json.dumps(body).encode())

    with pytest.raises(BadRequest, match="'foo' is not a valid field"):
        await collect(make_client(handler), params={"filter": "equals(foo,1)"})


@pytest.mark.parametrize(
    "error,shown",
    [
        ({"status": 400, "detail": "d", "title": "t", "code": "c"}, "d"),
        ({"status": "400", "detail": None, "title": "t"}, "t"),
        ({"status": True, "code": "c", "meta": {"x": 1}}, "c"),
        ({"status": 400.0, "detail": ""}, ""),
        ({}, ""),
        # Not an error object as JSON:API writes one (what the pydantic model of one
        # rejected): the start of the body is shown instead.
        ({"status": 1.5, "detail": "d"}, None),
        ({"status": [400], "detail": "d"}, None),
        ({"detail": 5}, None),
        ({"detail": True}, None),
        ({"code": 1.0, "detail": "d"}, None),
        ({"detail": ["d"]}, None),
        ("d", None),
        (None, None),
    ],
)
def test_the_error_detail_is_the_first_error_objects_detail_title_or_code(error, shown):
    body = json.dumps({"errors": [error]}).encode()
    assert _error_detail(body) == (body.decode() if shown is None else shown)


def test_a_body_that_is_no_jsonapi_error_shows_its_start():
    assert _error_detail(b"<html>bad gateway</html>") == "<html>bad gateway</html>"
    assert _error_detail(b'{"errors": []}') == '{"errors": []}'
    assert _error_detail(b"[1]") == "[1]"
    assert _error_detail(b"x" * 300) == "x" * 200


async def test_a_spent_daily_budget_fails_fast_instead_of_waiting_hours():
    from klaviyo_etl.errors import ApiError

    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(
            429, headers={"Retry-After": "7200"}, json={"errors": [{"detail": "daily limit"}]}
        )

    with pytest.raises(ApiError, match=r"429: rate limit .* resets in 2.0 h"):
        await collect(make_client(handler))
    assert len(calls) == 1


def test_predictive_analytics_use_the_lower_profiles_limit():
    client = KlaviyoClient(KEY)
    key, limit = client._limit_for("GET", "/api/profiles", {"additional-fields[profile]": "subscriptions"})
    assert (limit.burst_per_s, limit.steady_per_min) == (75, 750)
    key2, limit2 = client._limit_for(
        "GET",
        "/api/profiles?additional-fields%5Bprofile%5D=subscriptions%2Cpredictive_analytics&page%5Bcursor%5D=x",
    )
    assert (limit2.burst_per_s, limit2.steady_per_min) == (10, 150) and key2 != key


@pytest.mark.parametrize("status,fatal", [(401, True), (410, True), (403, False), (404, False), (400, False)])
async def test_a_rejected_key_and_a_retired_revision_stop_the_whole_run(status, fatal):
    def handler(request):
        return httpx.Response(status, json={"errors": [{"status": status, "detail": "no"}]})

    with pytest.raises(ApiError) as info:
        await collect(make_client(handler))
    assert isinstance(info.value, FatalError) is fatal
    assert not isinstance(info.value, TransientError)


async def test_a_refused_first_connection_fails_at_once_and_names_the_url():
    calls = []

    def handler(request):
        calls.append(request)
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(Unreachable) as info:
        await collect(make_client(handler))
    assert "http://sandbox.test" in str(info.value) and "Connection refused" in str(info.value)
    assert isinstance(info.value, FatalError) and len(calls) == 1


async def test_a_refused_connection_after_an_answer_is_retried():
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 2:
            raise httpx.ConnectError("[Errno 111] Connection refused")  # dropped mid-run
        cursor = request.url.params.get("page[cursor]")
        return httpx.Response(
            200, json=envelope([f"p{len(calls)}"], None if cursor else "/api/metrics?page%5Bcursor%5D=2")
        )

    client = make_client(handler)
    assert await collect(client) == ["p1", "p3"]
    assert client.stats.retries == 1


async def test_a_429_holds_every_worker_until_retry_after_then_lets_one_through_at_a_time():
    import asyncio
    import time

    state = {"in_flight": 0, "throttled_at": None}
    sends: list[tuple[float, int]] = []  # (send time, requests in flight with it)

    async def handler(request):
        state["in_flight"] += 1
        sends.append((time.monotonic(), state["in_flight"]))
        try:
            await asyncio.sleep(0.02)
            if state["throttled_at"] is None and len(sends) >= 3:
                state["throttled_at"] = time.monotonic()
                return httpx.Response(429, headers={"Retry-After": "1"}, json={"errors": []})
            return httpx.Response(200, json=envelope(["ok"]))
        finally:
            state["in_flight"] -= 1

    client = make_client(handler, limiter=RateLimiter())

    async def worker():
        for _ in range(3):
            await client.get("/api/metrics")

    async with client:
        await asyncio.gather(*(worker() for _ in range(6)))
    throttled_at = state["throttled_at"]
    later = [(t, n) for t, n in sends if t > throttled_at]
    assert later, sends
    # nobody sent while the 429's Retry-After ran, and afterwards one request at a time
    assert all(t >= throttled_at + 1.0 for t, _ in later), [round(t - throttled_at, 3) for t, _ in later]
    assert max(n for _, n in later) == 1, later


async def test_a_refused_first_connection_leaves_no_request_in_flight():
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return httpx.Response(200, json=envelope(["ok"]))

    client = make_client(handler)
    async with client:
        with pytest.raises(Unreachable):
            await client.get("/api/metrics")
        assert client.limiter.buckets and all(b.in_flight == 0 for b in client.limiter.buckets.values())
        assert not client.answered
        assert (await client.get("/api/metrics"))["data"][0]["id"] == "ok"
    assert client.answered and len(calls) == 2


async def test_a_429_pauses_the_bucket_and_its_date_still_sets_klaviyos_clock():
    import datetime as dt
    import email.utils
    import time

    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    sends: list[float] = []

    def handler(request):
        sends.append(time.monotonic())
        headers = {"Date": email.utils.format_datetime(ahead, usegmt=True)}
        if len(sends) == 1:
            return httpx.Response(429, headers={**headers, "Retry-After": "1"}, json={"errors": []})
        return httpx.Response(200, headers=headers, json=envelope(["ok"]))

    client = make_client(handler)
    async with client:
        assert (await client.get("/api/metrics"))["data"][0]["id"] == "ok"
    assert len(sends) == 2 and sends[1] - sends[0] >= 1.0  # the retry waited out Retry-After
    (bucket,) = client.limiter.buckets.values()
    assert bucket.throttled_at is not None and bucket.in_flight == 0
    assert client.stats.throttled == 1
    assert abs(client.clock_offset - dt.timedelta(hours=1)) < dt.timedelta(seconds=5)


class _Chunked(httpx.AsyncByteStream):
    """A body that arrives in 64 KiB chunks, as from a socket."""

    def __init__(self, body: bytes):
        self.body = body

    async def __aiter__(self):
        for start in range(0, len(self.body), 65536):
            yield self.body[start : start + 65536]


async def test_a_body_is_handed_on_whole_and_not_kept_on_the_response():
    # A response and its stream refer to each other: a body kept on the response would
    # stay in memory, a page at a time, until the cycle collector ran (issue 12).
    body = json.dumps(envelope([f"m{i:05d}" for i in range(5000)])).encode()
    responses = []

    def handler(request: httpx.Request):
        responses.append(httpx.Response(200, stream=_Chunked(body)))
        return responses[-1]

    async with make_client(handler) as client:
        assert await client.request("GET", "/api/metrics", parse=lambda b: b) == body
        assert (await client.get("/api/metrics"))["data"][0]["id"] == "m00000"
    assert len(body) > 65536 * 2 and len(responses) == 2
    for response in responses:
        assert response.is_closed
        with pytest.raises(httpx.ResponseNotRead):
            response.content  # noqa: B018  # read from the stream, never stored on it


async def test_each_slot_is_released_with_the_time_its_answer_came_back_and_a_failure_without():
    """The rate limiter frees a slot a second after its answer (see ratelimit.py): the client
    tells it when the headers came back, on the limiter's clock; a request that got no answer
    holds its slot until the failure is known."""
    ticks = iter(range(1000, 2000))
    limiter = RateLimiter(headroom=1.0, clock=lambda: float(next(ticks)))
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 2:
            raise httpx.ReadTimeout("timed out")
        return httpx.Response(200, json=envelope(["ok"]))

    async with make_client(handler, limiter=limiter) as client:
        await client.get("/api/metrics")
        await client.get("/api/metrics")  # a timeout, then an answer on the retry
    bucket = next(iter(limiter.buckets.values()))
    # Three slots, each over: two at their answers' headers, the timeout at its failure.
    assert bucket.slots == 3 and not bucket.pending and len(bucket.over) == 3


async def test_a_stop_cuts_a_retry_wait_short_and_sends_nothing_more():
    import asyncio
    import threading
    import time

    stop = threading.Event()
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(429, headers={"Retry-After": "30"}, json={"errors": [{"detail": "slow down"}]})

    client = make_client(handler, stop=stop)
    asyncio.get_running_loop().call_later(0.2, stop.set)  # SIGTERM during the 30 s wait
    started = time.monotonic()
    with pytest.raises(TransientError, match="stopped before retrying"):
        await collect(client)
    assert time.monotonic() - started < 5
    assert len(calls) <= 2  # the attempt that waited, and at most one sent as the stop came


async def _stopped_after(client, seconds, path="/api/metrics"):
    """`client.get(path)` with its stop set after `seconds`: the error raised, and how long it took."""
    import asyncio
    import time

    asyncio.get_running_loop().call_later(seconds, client.stop.set)  # SIGINT/SIGTERM
    started = time.monotonic()
    async with client:
        with pytest.raises(TransientError) as raised:
            await asyncio.wait_for(client.get(path), timeout=10)
    return raised.value, time.monotonic() - started


async def test_a_stop_ends_a_request_that_hangs_at_once():
    # It waited for the answer up to the request timeout (60 s), then stopped.
    import asyncio
    import threading

    calls = []

    async def hang(request):
        calls.append(request)
        await asyncio.sleep(3600)

    client = make_client(hang, stop=threading.Event())
    error, took = await _stopped_after(client, 0.2)
    assert took < 0.6 and "stopped while waiting" in str(error)
    assert len(calls) == 1  # not sent again
    bucket = next(iter(client.limiter.buckets.values()))
    assert bucket.in_flight == 0  # its slot is given back


async def test_a_stop_ends_the_rate_limiters_wait_before_a_first_attempt():
    # The limiter's pause (a 429's Retry-After on another worker) ran out before the stop counted.
    import threading

    calls = []
    client = make_client(
        lambda r: calls.append(r) or httpx.Response(200, json=envelope([])), stop=threading.Event()
    )
    key, limit = client._limit_for("GET", "/api/metrics")
    client.limiter.bucket(key, limit).pause(30)
    error, took = await _stopped_after(client, 0.2)
    assert took < 0.6 and "stopped while waiting" in str(error)
    assert calls == []


async def test_a_request_after_the_stop_is_not_sent():
    import threading

    calls = []
    stop = threading.Event()
    stop.set()
    client = make_client(lambda r: calls.append(r) or httpx.Response(200, json=envelope([])), stop=stop)
    with pytest.raises(TransientError, match="stopped before sending"):
        async with client:
            await client.get("/api/metrics")
    assert calls == []


async def test_a_client_with_a_stop_answers_as_before_and_leaves_no_task_behind():
    import asyncio
    import threading

    client = make_client(lambda r: httpx.Response(200, json=envelope(["a"])), stop=threading.Event())
    async with client:
        assert (await client.get("/api/metrics"))["data"][0]["id"] == "a"
        assert not client._waiting and not client._cut
    await asyncio.sleep(0)
    assert client._watcher is not None and client._watcher.done()


async def test_an_error_on_a_next_page_names_its_path_without_the_cursor():
    def handler(request):
        if "cursor" in str(request.url):
            return httpx.Response(503, json={"errors": [{"detail": "down"}]})
        return httpx.Response(
            200, json=envelope(["a"], "https://a.klaviyo.com/api/metrics?page%5Bcursor%5D=eyJzIjoxfQ")
        )

    with pytest.raises(TransientError) as failed:
        await collect(make_client(handler, max_attempts=2))
    assert str(failed.value) == "503: Klaviyo server error (GET /api/metrics)"


def test_the_burst_of_an_endpoint_is_the_documented_one_until_an_answer_states_a_smaller():
    client = KlaviyoClient("pk_test", base_url="http://127.0.0.1:9")
    key, limit = client._limit_for("GET", "/api/events")
    assert client.burst("GET", "/api/events") == int(limit.burst_per_s)
    client.limiter.bucket(key, limit).learn(int(limit.steady_per_min // 10))  # limits cut tenfold
    assert client.burst("GET", "/api/events") == int(limit.burst_per_s // 10)
