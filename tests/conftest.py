"""Fixtures every test folder may use: the sandbox factory and the tiny account."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from klaviyo_etl.check import CHECK_STREAMS
from klaviyo_etl.sandbox import SandboxData, serve
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import SyncOptions, run_sync
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


@pytest.fixture(scope="session")
def check_account(sandbox_factory, tmp_path_factory):
    """A running sandbox and a database synced from it with what `klaviyo-etl check` reads,
    shared by the check tests of the library and of the CLI (copy the file before changing it;
    put back any config a test changes)."""
    path = tmp_path_factory.mktemp("check") / "synced.db"
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    with sandbox_factory("small", seed=5, now=now) as sb:
        settings = Settings(db_path=path, api_key=sb.config.api_key, base_url=sb.server.url)
        result = run_sync(settings, SyncOptions(streams=CHECK_STREAMS))
        assert result.ok, [(s.stream, s.error) for s in result.streams]
        yield sb, path


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
