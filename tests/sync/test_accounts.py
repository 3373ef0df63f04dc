"""Several accounts synced at once in one process (`klaviyo_etl.sync.accounts`): each with
its own client, database and stop, under one cap on requests in flight."""

from __future__ import annotations

import asyncio
import time

import httpx

from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.accounts import AccountResult, AccountSync, CappedTransport, exit_code, run_accounts
from klaviyo_etl.sync.engine import SyncOptions, SyncResult
from klaviyo_etl.sync.options import StreamResult
from tests.helpers.sync import live_ids


class Counting(httpx.AsyncBaseTransport):
    """Counts the requests of every account between their start and the end of their body."""

    def __init__(self, inner: httpx.AsyncBaseTransport, tally: dict[str, int]):
        self.inner, self.tally = inner, tally

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.tally["active"] += 1
        self.tally["most"] = max(self.tally["most"], self.tally["active"])
        try:
            response = await self.inner.handle_async_request(request)
            body = await response.aread()
        finally:
            self.tally["active"] -= 1
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_the_process_cap_bounds_the_requests_in_flight_of_every_account(sandbox_factory):
    with sandbox_factory("tiny", latency_ms=100) as sandbox:

        async def burst() -> tuple[list[int], int]:
            slots = asyncio.Semaphore(2)
            transports = [CappedTransport(slots), CappedTransport(slots)]  # two accounts
            tally = {"active": 0, "most": 0}
            for transport in transports:
                transport.inner = Counting(transport.inner, tally)
            headers = {"Authorization": f"Klaviyo-API-Key {sandbox.config.api_key}", "revision": "2026-07-15"}
            clients = [
                httpx.AsyncClient(base_url=sandbox.server.url, transport=t, headers=headers)
                for t in transports
            ]
            try:
                responses = await asyncio.gather(*(clients[i % 2].get("/api/tags") for i in range(8)))
            finally:
                for client in clients:
                    await client.aclose()
            return [r.status_code for r in responses], tally["most"]

        started = time.monotonic()
        statuses, most = asyncio.run(burst())
        elapsed = time.monotonic() - started
    assert statuses == [200] * 8
    assert most <= 2
    assert elapsed >= 0.35  # 8 requests of 100 ms, two at a time: four rounds, not one


def test_a_rejected_key_ends_that_account_only(sandbox_factory, tmp_path):
    with sandbox_factory("tiny") as sandbox:
        url = sandbox.server.url
        jobs = [
            AccountSync(
                "good", Settings(tmp_path / "good.db", sandbox.config.api_key, url), SyncOptions(["tags"])
            ),
            AccountSync("bad", Settings(tmp_path / "bad.db", "pk_revoked", url), SyncOptions(["tags"])),
            AccountSync("keyless", Settings(tmp_path / "none.db", None, url), SyncOptions(["tags"])),
        ]
        good, bad, keyless = run_accounts(jobs)
    assert good.ok and [s.status for s in good.result.streams] == ["ok"]
    assert live_ids(tmp_path / "good.db", "tags") == sandbox.data.ids("tag")
    assert bad.error.startswith("401") and not bad.ok
    assert keyless.usage_error and "no API key" in keyless.error
    assert not (tmp_path / "none.db").exists()
    assert exit_code([good, bad, keyless]) == 1


def test_the_exit_code_is_1_if_any_account_failed_and_2_only_if_none_could_start():
    ok = AccountResult("a", SyncResult("r1", [StreamResult("tags", "ok")]))
    stopped = AccountResult("b", SyncResult("r2", [StreamResult("tags", "stopped")]))
    failed_stream = AccountResult("c", SyncResult("r3", [StreamResult("tags", "failed")]))
    keyless = AccountResult("d", error="no API key", usage_error=True)
    assert exit_code([ok]) == 0
    assert exit_code([ok, stopped]) == 130
    assert exit_code([ok, failed_stream]) == 1
    assert exit_code([ok, keyless]) == 1
    assert exit_code([keyless, keyless]) == 2
