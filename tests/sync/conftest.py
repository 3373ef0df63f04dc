"""A small sandbox account served on loopback for the sync tests."""

import pytest
from sync_helpers import small_config

from klaviyo_etl.sandbox import SandboxData, serve


@pytest.fixture
def sandbox():
    config = small_config()
    data = SandboxData.generate(config)
    with serve(data, config) as server:
        yield server, data, config
