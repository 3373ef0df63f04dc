"""A small sandbox account served on loopback for the sync tests."""

import pytest


@pytest.fixture
def sandbox(sandbox_factory):
    with sandbox_factory("small") as running:
        yield running.server, running.data, running.config
