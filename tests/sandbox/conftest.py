"""A seeded sandbox served once per module; tests that mutate data or change the config build
their own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sandbox_helpers import REVISION

from klaviyo_etl.sandbox import SandboxConfig, SandboxData, SandboxServer, serve

NOW = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)


def make_config(**overrides) -> SandboxConfig:
    return SandboxConfig(**{"seed": 11, "now": NOW, **overrides})


def make_client(server: SandboxServer, **headers: str) -> httpx.Client:
    base = {
        "Authorization": f"Klaviyo-API-Key {server.config.api_key}",
        "revision": REVISION,
        "accept": "application/vnd.api+json",
    }
    return httpx.Client(base_url=server.url, headers={**base, **headers}, timeout=30)


@pytest.fixture(scope="module")
def data() -> SandboxData:
    return SandboxData.generate(make_config())


@pytest.fixture(scope="module")
def server(data: SandboxData) -> Iterator[SandboxServer]:
    with serve(data, data.config) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    with make_client(server) as c:
        yield c


@pytest.fixture
def fresh() -> Iterator[tuple[SandboxData, SandboxServer, httpx.Client]]:
    """A private sandbox a test may mutate or reconfigure."""
    config = make_config()
    data = SandboxData.generate(config)
    with serve(data, config) as running, make_client(running) as c:
        yield data, running, c
