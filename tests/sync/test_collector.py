"""The cycle collector's settings during a sync (`klaviyo_etl.sync.collector`)."""

from __future__ import annotations

import gc

import pytest

from klaviyo_etl.sync.collector import YOUNG, fewer_collections
from klaviyo_etl.sync.engine import SyncOptions, run_sync
from tests.helpers.sync import settings_for


@pytest.fixture
def collector():
    """The test's own collector settings, whatever the block under test leaves behind."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_the_young_generation_is_collected_less_often_inside_and_as_before_after(collector):
    gc.set_threshold(700, 10, 10)
    with fewer_collections():
        assert gc.get_threshold() == (YOUNG, 10, 10)
        assert gc.get_freeze_count() > 0  # what was alive at the start is out of the walks
        assert gc.isenabled()  # a cycle is still collected
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_a_programs_own_freeze_and_larger_threshold_are_kept(collector):
    gc.set_threshold(50_000, 10, 10)
    gc.freeze()
    frozen = gc.get_freeze_count()
    with fewer_collections():
        assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_freeze_count() >= frozen  # not thawed: the program froze them


def test_the_settings_are_restored_when_the_block_fails(collector):
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("a sync failed")
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


class Thresholds:
    """A `Progress` that notes the collector's threshold whenever a stream reports."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def start(self, stream: str) -> None:
        self.seen.add(gc.get_threshold()[0])

    def advance(self, stream, rows, pages, requests, covered=None) -> None:
        self.seen.add(gc.get_threshold()[0])

    def finish(self, result) -> None:
        self.seen.add(gc.get_threshold()[0])


def test_a_sync_runs_with_fewer_collections_and_leaves_the_settings_as_they_were(
    sandbox, tmp_path, collector
):
    server, _data, config = sandbox
    gc.set_threshold(700, 10, 10)
    progress = Thresholds()
    result = run_sync(
        settings_for(server, config, tmp_path / "k.db"),
        SyncOptions(streams=["metrics", "events"]),
        progress=progress,
    )
    assert result.ok
    assert progress.seen == {YOUNG}
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
