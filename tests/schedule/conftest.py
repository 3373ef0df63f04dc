"""Fixtures for the scheduler tests; the fakes themselves live in tests/helpers/schedule.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from klaviyo_etl.db import open_database
from tests.helpers.schedule import FakeClock


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "k.db"
    open_database(path).close()
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config path in tmp_path, also exported as KLAVIYO_ETL_CONFIG."""
    path = tmp_path / "config.toml"
    monkeypatch.setenv("KLAVIYO_ETL_CONFIG", str(path))
    return path
