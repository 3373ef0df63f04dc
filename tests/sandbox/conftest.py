"""A seeded sandbox served once per module; tests that mutate data or change the config build
their own."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from klaviyo_etl.sandbox import SandboxData, SandboxServer
from tests.helpers.sandbox import ACCOUNT, Sandbox, make_client


@pytest.fixture(scope="module")
def sandbox(sandbox_factory) -> Iterator[Sandbox]:
    with sandbox_factory("default", **ACCOUNT) as running:
        yield running


@pytest.fixture(scope="module")
def data(sandbox: Sandbox) -> SandboxData:
    return sandbox.data


@pytest.fixture(scope="module")
def server(sandbox: Sandbox) -> SandboxServer:
    return sandbox.server


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    with make_client(server) as c:
        yield c


@pytest.fixture
def fresh(sandbox_factory) -> Iterator[tuple[SandboxData, SandboxServer, httpx.Client]]:
    """A private sandbox a test may mutate or reconfigure."""
    with sandbox_factory("default", **ACCOUNT) as running, make_client(running.server) as c:
        yield running.data, running.server, c
