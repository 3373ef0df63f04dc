"""HTTP behaviour: auth, revisions, routing, rate limits, faults, latency and concurrency."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from klaviyo_etl.sandbox import SandboxData
from tests.helpers.sandbox import ACCOUNT, REVISION, errors_of, make_client


def test_missing_or_wrong_key_is_401(server) -> None:
    for headers in (
        {},
        {"Authorization": "Klaviyo-API-Key pk_wrong"},
        {"Authorization": f"Bearer {server.config.api_key}"},
    ):
        with httpx.Client(base_url=server.url, headers={"revision": REVISION, **headers}) as c:
            response = c.get("/api/metrics")
        assert response.status_code == 401
        assert errors_of("GET /api/metrics", response.json(), "4XX") == []
        assert response.json()["errors"][0]["code"] in ("not_authenticated", "authentication_failed")


@pytest.mark.parametrize(
    ("revision", "status"),
    [
        (None, 400),
        ("2026/07/15", 400),
        ("July 2026", 400),
        ("2026-02-30", 400),
        ("2022-10-17", 410),
        ("2023-02-22", 200),
        ("2024-10-15.pre", 200),
        (REVISION, 200),
    ],
)
def test_revision_header(server, revision: str | None, status: int) -> None:
    with make_client(server) as c:
        if revision is None:
            del c.headers["revision"]
        else:
            c.headers["revision"] = revision
        response = c.get("/api/metrics")
    assert response.status_code == status
    if status != 200:
        assert response.json()["errors"][0]["source"] == {"parameter": "revision"}


def test_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    assert client.get("/api/not-a-thing").status_code == 404
    assert client.get("/api/lists/nope").status_code == 404
    assert client.get("/api/flows/nope/flow-actions").status_code == 404
    assert client.post("/api/profiles", json={}).status_code == 405
    assert client.get("/api/campaign-values-reports").status_code == 405


def test_detail_routes(client: httpx.Client, data: SandboxData) -> None:
    list_id = data.list_ids[0]
    body = client.get(f"/api/lists/{list_id}", params={"additional-fields[list]": "profile_count"}).json()
    assert body["data"]["attributes"]["profile_count"] == len(data.members[list_id])
    plain = client.get(f"/api/lists/{list_id}").json()
    assert "profile_count" not in plain["data"]["attributes"]


def _rate_limited_server(sandbox_factory, scale: float):
    return sandbox_factory("default", **ACCOUNT, rate_limits=True, rate_limit_scale=scale)


def test_burst_limit_gives_429_with_retry_after_then_recovers(sandbox_factory) -> None:
    # flows: S tier -> 1 per second, 3 per 3 s
    with _rate_limited_server(sandbox_factory, 0.05) as sb, make_client(sb.server) as c:
        ok = c.get("/api/flows")
        assert ok.status_code == 200
        assert int(ok.headers["RateLimit-Limit"]) == 3
        assert int(ok.headers["RateLimit-Remaining"]) == 2
        assert 0 <= int(ok.headers["RateLimit-Reset"]) <= 3
        throttled = c.get("/api/flows")
        assert throttled.status_code == 429
        retry_after = int(throttled.headers["Retry-After"])
        assert 1 <= retry_after <= 3
        assert "RateLimit-Remaining" not in throttled.headers
        error = throttled.json()["errors"][0]
        assert error["status"] == 429 and error["code"] == "throttled"
        assert c.get("/api/profiles").status_code == 200  # other endpoints have own buckets
        time.sleep(retry_after)
        assert c.get("/api/flows").status_code == 200
        assert sb.server.stats.throttled == 1


def test_requests_that_arrive_at_a_throttled_bucket_before_retry_after_are_counted_early(
    sandbox_factory,
) -> None:
    with _rate_limited_server(sandbox_factory, 0.05) as sb, make_client(sb.server) as c:
        assert c.get("/api/flows").status_code == 200
        throttled = c.get("/api/flows")
        assert throttled.status_code == 429
        assert sb.server.stats.early == 0
        assert c.get("/api/profiles").status_code == 200  # another bucket: not early
        time.sleep(0.2)
        again = c.get("/api/flows")  # sent before Retry-After: early (and throttled again)
        assert again.status_code == 429
        assert sb.server.stats.early == 1
        time.sleep(int(again.headers["Retry-After"]) + 0.1)
        c.get("/api/flows")  # after Retry-After: not early, whatever the answer
        assert sb.server.stats.snapshot()["early"] == 1


def test_reporting_limits_are_one_per_second_and_two_per_minute(sandbox_factory) -> None:
    with _rate_limited_server(sandbox_factory, 1.0) as sb, make_client(sb.server) as c:
        placed = sb.data.metric_ids[sb.data.metric_named("Placed Order", "Shopify")]
        body = {
            "data": {
                "type": "campaign-values-report",
                "attributes": {
                    "statistics": ["recipients"],
                    "timeframe": {"key": "last_30_days"},
                    "conversion_metric_id": placed,
                },
            }
        }
        first = c.post("/api/campaign-values-reports", json=body)
        burst = c.post("/api/campaign-values-reports", json=body)
        time.sleep(1.05)
        second = c.post("/api/campaign-values-reports", json=body)
        time.sleep(1.05)
        steady = c.post("/api/campaign-values-reports", json=body)
        other = c.post(
            "/api/flow-values-reports",
            json={"data": {"type": "flow-values-report", "attributes": body["data"]["attributes"]}},
        )
    assert first.status_code == 200
    assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == ("2", "1")
    assert burst.status_code == 429 and burst.headers["Retry-After"] == "1"
    assert second.status_code == 200 and second.headers["RateLimit-Remaining"] == "0"
    assert steady.status_code == 429
    assert 50 <= int(steady.headers["Retry-After"]) <= 60  # the minute window, not the second
    assert other.status_code == 200  # flow reports count separately


def test_rate_limits_can_be_switched_on_at_runtime(fresh) -> None:
    _data, server, c = fresh
    assert all(c.get("/api/tag-groups").status_code == 200 for _ in range(5))
    assert "RateLimit-Limit" not in c.get("/api/tag-groups").headers
    server.config.rate_limits = True
    server.config.rate_limit_scale = 0.05
    statuses = [c.get("/api/tag-groups").status_code for _ in range(3)]
    assert statuses[0] == 200 and 429 in statuses


def test_force_429_storm(fresh) -> None:
    _data, server, c = fresh
    server.force_429(3)
    responses = [c.get("/api/metrics") for _ in range(4)]
    assert [r.status_code for r in responses] == [429, 429, 429, 200]
    assert all(r.headers["Retry-After"] == "1" for r in responses[:3])
    assert server.stats.throttled == 3
    assert server.stats.by_status[200] == 1


def _outcome(c: httpx.Client) -> str:
    """The status code, or 'transport' for a dropped connection or a short body."""
    try:
        return str(c.get("/api/lists").status_code)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return "transport"


def test_faults_happen_at_about_the_configured_rate(fresh) -> None:
    _data, server, c = fresh
    server.config.fault_rate = 0.25
    outcomes = Counter(_outcome(c) for _ in range(400))
    failures = 400 - outcomes["200"]
    assert 60 <= failures <= 140, outcomes
    assert outcomes["500"] and outcomes["502"] and outcomes["503"], outcomes
    assert outcomes["transport"] > 20, outcomes
    assert server.stats.faults == failures
    assert set(server.stats.faults_by_kind) == {"500", "502", "503", "drop", "truncate"}
    server.config.fault_rate = 0.0
    assert all(_outcome(c) == "200" for _ in range(20))


def test_truncated_body_is_detected_by_the_client(fresh) -> None:
    _data, server, c = fresh
    server.config.fault_rate = 1.0
    kinds = set()
    for _ in range(60):
        try:
            response = c.get("/api/profiles")
            kinds.add(response.status_code)
        except httpx.RemoteProtocolError as exc:
            kinds.add(type(exc).__name__)
    assert kinds <= {500, 502, 503, "RemoteProtocolError"} and "RemoteProtocolError" in kinds
    assert server.stats.faults == 60


def test_latency_is_added_per_request(fresh) -> None:
    _data, server, c = fresh
    server.config.latency_ms = 80
    start = time.perf_counter()
    for _ in range(3):
        assert c.get("/api/tags").status_code == 200
    assert time.perf_counter() - start >= 0.24


def test_serves_over_100_requests_per_second_concurrently(fresh) -> None:
    data, server, _c = fresh
    server.config.latency_ms = 20
    paths = ["/api/events", "/api/profiles", "/api/metrics", "/api/lists"]

    def worker(n: int) -> list[int]:
        with make_client(server) as c:
            return [c.get(paths[(n + k) % len(paths)]).status_code for k in range(25)]

    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        statuses = [s for batch in pool.map(worker, range(16)) for s in batch]
    elapsed = time.perf_counter() - start
    assert statuses == [200] * 400
    assert 400 / elapsed > 100, f"{400 / elapsed:.0f} req/s"
    assert server.stats.requests == 400


def test_a_client_that_dies_mid_connection_leaves_no_traceback_on_the_console(server, capfd) -> None:
    import socket
    import struct

    for send_request in (False, True):  # reset while idle, and while its request is being read
        conn = socket.create_connection((server.host, server.port))
        if send_request:
            conn.sendall(b"GET /api/metrics HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.1)
        # A killed sync's socket: closed with a reset, not a FIN (SO_LINGER 0).
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    time.sleep(0.5)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err
    with httpx.Client(base_url=server.url) as c:  # and it keeps serving
        assert c.get("/api/metrics").status_code == 401
