"""Fixtures every test folder may use: the sandbox factory and the tiny account."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from klaviyo_etl.sandbox import SandboxData, serve
from tests.helpers.sandbox import Sandbox, sandbox_config
from tests.helpers.tiny_account import build_tiny_db

SandboxFactory = Callable[..., AbstractContextManager[Sandbox]]


@pytest.fixture(scope="session")
def sandbox_factory() -> SandboxFactory:
    """Start a generated account on loopback: `with sandbox_factory("tiny", seed=3) as sb:`.

    The preset ("tiny", "small" or "default", see `tests/helpers/sandbox.py: PRESETS`) sets the
    size; keyword arguments override any `SandboxConfig` field. Each call generates its own
    data and server, so a test may mutate the data or change the config (latency, faults)
    while it runs; the server stops when the `with` block ends. Session-scoped so that module
    fixtures can start their sandbox with it too.
    """

    @contextmanager
    def start(preset: str = "small", **overrides: Any) -> Iterator[Sandbox]:
        config = sandbox_config(preset, **overrides)
        data = SandboxData.generate(config)
        with serve(data, config) as server:
            yield Sandbox(server, data, config)

    return start


@pytest.fixture
def tiny_db(tmp_path):
    """The hand-checkable account of `tests/helpers/tiny_account.py`, open."""
    db = build_tiny_db(tmp_path / "tiny.db")
    yield db
    db.close()


@pytest.fixture
def tiny_db_path(tmp_path):
    """The same account as a closed file, for the CLI."""
    path = tmp_path / "tiny.db"
    build_tiny_db(path).close()
    return path
