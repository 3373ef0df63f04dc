"""Window planning and the watermark a set of windows allows: no server, no database."""

from __future__ import annotations

import datetime as dt
import gc
import json
import sqlite3
import threading
import time

import pytest

from klaviyo_etl.client import KlaviyoClient
from klaviyo_etl.db.repositories import EARLY_INDEXES, Repository
from klaviyo_etl.sync import parts
from klaviyo_etl.sync.engine import SyncOptions, run_sync
from klaviyo_etl.sync.streams import ProfileStream, WindowedStream, build_streams, windowed
from klaviyo_etl.sync.streams.windowed import (
    SETTLE,
    Window,
    busiest_window,
    iso_mark,
    late_window,
    pages_left,
    plan_windows,
    rows_left,
    split_window,
    windows_covered,
    windows_watermark,
)
from tests.helpers.sync import live_ids, settings_for

T0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def test_a_span_no_longer_than_the_minimum_window_is_one_window():
    windows = plan_windows(T0, T0 + 6 * HOUR, min_window=6 * HOUR, concurrency=8)
    assert [(w.lo, w.hi) for w in windows] == [(T0, T0 + 6 * HOUR)]
    assert windows[0].progress == T0 and not windows[0].done


def test_windows_are_equal_contiguous_and_cover_the_span():
    windows = plan_windows(T0, T0 + 4 * DAY, min_window=6 * HOUR, concurrency=8)
    assert len(windows) == 16
    assert windows[0].lo == T0 and windows[-1].hi == T0 + 4 * DAY
    assert all(a.hi == b.lo for a, b in zip(windows, windows[1:], strict=False))
    assert {w.hi - w.lo for w in windows} == {6 * HOUR}
    assert all(w.progress == w.lo for w in windows)


@pytest.mark.parametrize("concurrency,expected", [(1, 8), (2, 16), (8, 64), (100, 256)])
def test_a_long_span_is_capped_at_eight_windows_a_worker_and_256(concurrency, expected):
    windows = plan_windows(T0, T0 + 400 * DAY, min_window=HOUR, concurrency=concurrency)
    assert len(windows) == expected
    assert windows[-1].hi == T0 + 400 * DAY


def test_a_span_not_a_multiple_of_the_minimum_rounds_the_count_down():
    windows = plan_windows(T0, T0 + 10 * HOUR, min_window=4 * HOUR, concurrency=8)
    assert len(windows) == 2 and windows[0].hi == T0 + 5 * HOUR


def test_the_watermark_is_the_lowest_progress_of_an_unfinished_window():
    windows = [Window(T0 + i * DAY, T0 + (i + 1) * DAY, T0 + i * DAY) for i in range(3)]
    hi = T0 + 10 * DAY
    assert windows_watermark(windows, hi) == "2026-05-01T00:00:00+00:00"
    windows[0].progress = T0 + 5 * HOUR
    assert windows_watermark(windows, hi) == "2026-05-01T05:00:00+00:00"
    # A later window finishing first does not move it: the first is still open.
    windows[2].done = True
    assert windows_watermark(windows, hi) == "2026-05-01T05:00:00+00:00"
    windows[0].done = True
    assert windows_watermark(windows, hi) == "2026-05-02T00:00:00+00:00"


def test_the_watermark_of_finished_windows_is_the_end_but_never_past_hi():
    windows = [Window(T0, T0 + DAY, T0 + DAY, done=True), Window(T0 + DAY, T0 + 2 * DAY, T0, done=True)]
    assert windows_watermark(windows, T0 + 10 * DAY) == iso_mark(T0 + 2 * DAY)
    assert windows_watermark(windows, T0 + 3 * HOUR) == "2026-05-01T03:00:00+00:00"


def test_marks_are_stored_in_utc_to_the_second():
    other_zone = dt.datetime(2026, 5, 1, 12, 30, 15, 999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert iso_mark(other_zone) == "2026-05-01T10:30:15+00:00"


def test_a_window_asks_for_its_range_ascending_in_the_largest_pages():
    events = build_streams()["events"]
    assert isinstance(events, WindowedStream)
    assert events.params(T0, T0 + DAY) == {
        "filter": "and(greater-or-equal(datetime,2026-05-01T00:00:00Z),less-than(datetime,2026-05-02T00:00:00Z))",
        "sort": "datetime",
        "page[size]": events.endpoint.page_size_max,
    }
    # The last window is open-ended.
    assert events.params(T0, None)["filter"] == "greater-or-equal(datetime,2026-05-01T00:00:00Z)"


def test_profile_windows_ask_for_subscriptions_and_predictive_analytics_only_when_asked():
    profiles = build_streams()["profiles"]
    assert isinstance(profiles, ProfileStream)
    plain = profiles.params(T0, None)
    assert plain["additional-fields[profile]"] == "subscriptions"
    # profiles only filter `updated` with greater-than: `> lo - 1s`
    assert plain["filter"] == "greater-than(updated,2026-04-30T23:59:59Z)"
    assert plain["sort"] == "updated"
    predictive = profiles.params(T0, None, predictive=True)
    assert predictive["additional-fields[profile]"] == "subscriptions,predictive_analytics"


def test_the_earliest_request_asks_for_one_row_and_one_field():
    events = build_streams()["events"]
    assert events.earliest_params() == {"sort": "datetime", "fields[event]": "datetime", "page[size]": 1}


def test_windows_covered_counts_done_windows_whole_and_open_ones_to_their_progress():
    t0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    windows = plan_windows(t0, t0 + 4 * hour, min_window=hour, concurrency=1)
    assert windows_covered(windows) == (0.0, 4 * 3600.0)
    windows[0].done = True
    windows[1].progress = windows[1].lo + dt.timedelta(minutes=30)
    windows[3].progress = windows[3].hi + hour  # the open-ended last window reads past hi
    assert windows_covered(windows) == ((60 + 30 + 60) * 60.0, 4 * 3600.0)


class RecordingProgress:
    """A Progress that keeps what each stream reported, through the seam the CLI uses."""

    def __init__(self):
        self.covered: dict[str, list] = {}

    def start(self, stream):
        self.covered[stream] = []

    def advance(self, stream, rows, pages, requests, covered=None):
        self.covered[stream].append(covered)

    def finish(self, result):
        pass


def test_events_and_profiles_report_how_much_of_their_range_is_read(sandbox, tmp_path):
    server, _data, config = sandbox
    progress = RecordingProgress()
    options = SyncOptions(streams=["metrics", "events", "profiles", "tags"])
    result = run_sync(settings_for(server, config, tmp_path / "k.db"), options, progress=progress)
    assert result.ok
    for stream in ("events", "profiles"):
        seen = [c for c in progress.covered[stream] if c is not None]  # none before the plan
        assert len(seen) > 1, stream
        done = [c[0] / c[1] for c in seen]
        assert done == sorted(done) and done[-1] == pytest.approx(1.0) and done[0] >= 0, stream
    assert all(c is None for c in progress.covered["tags"])


def test_the_events_stream_plans_one_window_a_worker():
    # Each window ends on a partial page (issue 12): a 200-page first load took 210 requests
    # in 16 windows, the most 6 bursts at 35/s hold, and 206 in 10 (streams/__init__.py)
    events = build_streams()["events"]
    assert isinstance(events, WindowedStream)
    windows = events.plan(T0, T0 + 120 * DAY)
    assert len(windows) == events.concurrency == 10
    assert len(plan_windows(T0, T0 + 400 * DAY, min_window=HOUR, concurrency=8, per_worker=2)) == 16


def test_the_last_planned_window_is_open_ended():
    windows = plan_windows(T0, T0 + 4 * DAY, min_window=6 * HOUR, concurrency=2)
    assert [w.open_ended for w in windows] == [False] * (len(windows) - 1) + [True]


def test_rows_left_are_estimated_from_the_density_read_so_far():
    w = Window(T0, T0 + 10 * HOUR, T0)
    assert rows_left(w) == 0  # nothing read yet: unknown, never split
    w.progress, w.rows = T0 + 2 * HOUR, 500
    assert rows_left(w) == pytest.approx(2000)  # 8 more hours at 250 an hour
    w.done = True
    assert rows_left(w) == 0


def test_an_idle_worker_splits_the_busiest_window_in_the_middle_of_what_is_left():
    quiet = Window(T0, T0 + DAY, T0 + 12 * HOUR, rows=100)
    busy = Window(T0 + DAY, T0 + 2 * DAY, T0 + DAY + 4 * HOUR, open_ended=True, rows=4000)
    windows = [quiet, busy]
    assert busiest_window(windows) is busy
    new = split_window(busy, min_rows=2000)
    assert new is not None
    # The busy window keeps the lower half of its rest and gives up its open end.
    assert (busy.lo, busy.hi, busy.open_ended) == (T0 + DAY, T0 + DAY + 14 * HOUR, False)
    assert (new.lo, new.hi, new.progress, new.open_ended) == (busy.hi, T0 + 2 * DAY, busy.hi, True)
    assert new.rows == 0 and not new.done


def test_a_split_leaves_the_covered_range_and_the_watermark_where_they_were():
    busy = Window(T0, T0 + DAY, T0 + 6 * HOUR, open_ended=True, rows=6000)
    done = Window(T0 + DAY, T0 + 2 * DAY, T0 + 2 * DAY, done=True)
    windows = [busy, done]
    before = (windows_covered(windows), windows_watermark(windows, T0 + 3 * DAY))
    windows.append(split_window(busy, min_rows=100))
    assert (windows_covered(windows), windows_watermark(windows, T0 + 3 * DAY)) == before
    # The new window finishing first holds nothing back and moves nothing on.
    windows[-1].progress, windows[-1].done = windows[-1].hi, True
    assert windows_watermark(windows, T0 + 3 * DAY) == iso_mark(T0 + 6 * HOUR)
    busy.progress, busy.done = busy.hi, True
    assert windows_watermark(windows, T0 + 3 * DAY) == iso_mark(T0 + 2 * DAY)


def test_a_window_with_little_left_or_under_two_seconds_left_is_not_split():
    w = Window(T0, T0 + DAY, T0 + 12 * HOUR, rows=1000)  # ~1000 left
    assert split_window(w, min_rows=2000) is None and w.hi == T0 + DAY
    tight = Window(T0, T0 + 10 * HOUR, T0 + 10 * HOUR - dt.timedelta(seconds=1), rows=10**9)
    assert split_window(tight, min_rows=1) is None and tight.hi == T0 + 10 * HOUR


def test_the_split_point_is_a_whole_second_so_the_filters_meet_exactly():
    w = Window(T0, T0 + dt.timedelta(seconds=7), T0 + dt.timedelta(seconds=2), rows=10**6)
    new = split_window(w, min_rows=1)
    assert new is not None and w.hi == new.lo == T0 + dt.timedelta(seconds=4)
    assert new.lo.microsecond == 0


def test_skewed_profiles_are_split_for_idle_workers_and_every_one_arrives(
    sandbox_factory, tmp_path, monkeypatch
):
    """Most profiles sit in the newest window: idle workers split it, and every row is stored."""
    splits = []

    def counting_split(w, *, min_rows):
        new = split_window(w, min_rows=min_rows)
        splits.extend([new] if new else [])
        return new

    monkeypatch.setattr(windowed, "split_window", counting_split)
    with sandbox_factory("small", profiles=3000, latency_ms=5) as sb:
        db_path = tmp_path / "k.db"
        result = run_sync(settings_for(sb.server, sb.config, db_path), SyncOptions(streams=["profiles"]))
        assert result.ok, [(s.stream, s.error) for s in result.streams]
        assert live_ids(db_path, "profiles") == sb.data.ids("profile")
    assert splits


def test_a_window_asks_for_its_next_page_while_the_one_before_is_written(
    sandbox_factory, tmp_path, monkeypatch
):
    """With one worker, the request for the next page goes out while the page before it is
    still being written (issue 12: the writer's time per page no longer adds to each page's
    round trip). Before, the worker waited for each page's commit before asking for more."""
    sent: list[str] = []
    held, overlapped = threading.Event(), threading.Event()
    send, write_rows, build = KlaviyoClient._send, Repository.write_rows, parts.build_streams

    async def counting_send(self, method, path, *args, **kwargs):
        sent.append(str(path))
        return await send(self, method, path, *args, **kwargs)

    def waiting_write_rows(self, rows, bulk=None):
        if "events" in rows and not held.is_set():
            # The first page of the first window: hold its write until a next page (a cursor)
            # has been asked for, which one worker can only do for this window.
            held.set()
            deadline = time.monotonic() + 5
            while not any("cursor" in path for path in sent) and time.monotonic() < deadline:
                time.sleep(0.005)
            if any("cursor" in path for path in sent):
                overlapped.set()
        return write_rows(self, rows, bulk=bulk)

    def one_worker():
        streams = build()
        streams["events"].concurrency = 1
        return streams

    monkeypatch.setattr(KlaviyoClient, "_send", counting_send)
    monkeypatch.setattr(Repository, "write_rows", waiting_write_rows)
    monkeypatch.setattr(parts, "build_streams", one_worker)
    with sandbox_factory("small", latency_ms=5) as sb:  # two windows of several pages
        db_path = tmp_path / "k.db"
        result = run_sync(settings_for(sb.server, sb.config, db_path), SyncOptions(streams=["events"]))
        assert result.ok, [(s.stream, s.error) for s in result.streams]
        assert live_ids(db_path, "events") == sb.data.ids("event")
    assert overlapped.is_set()


def test_a_windowed_stream_starts_from_an_oldest_row_read_before_it_was_built_and_no_other_does():
    # The engine reads it beside the clock on a new database (sync/first_row.py).
    streams = build_streams()
    streams["events"].use_first_row(T0)
    assert streams["events"].first == [T0]
    streams["profiles"].use_first_row(None)  # no rows: the stream has nothing to read
    assert streams["profiles"].first == [None]
    with pytest.raises(TypeError, match="tags stream"):
        streams["tags"].use_first_row(T0)


def test_the_late_window_is_the_stretch_that_became_a_week_old_since_the_last_run():
    """LIVE_BEHAVIOUR.md §10: each run reads once more what is now SETTLE old, from the mark
    the last run left, and no further than its own windows' start."""
    started = T0 + 30 * DAY
    lo = started - 3 * DAY  # the lookback's start
    last = iso_mark(started - HOUR - SETTLE)  # the run an hour before
    w = late_window(last, lo, started)
    assert (w.lo, w.hi, w.progress, w.open_ended) == (started - HOUR - SETTLE, started - SETTLE, w.lo, False)
    assert late_window(None, lo, started) is None  # no mark yet: a file from before, or a first run
    assert late_window(iso_mark(started - SETTLE), lo, started) is None  # nothing new is a week old
    long_lookback = started - 10 * DAY  # a lookback past SETTLE re-reads it all anyway
    assert late_window(last, long_lookback, started) is None


def test_no_more_windows_are_planned_than_the_pages_expected():
    assert len(plan_windows(T0, T0 + 4 * DAY, min_window=6 * HOUR, concurrency=10, per_worker=1)) == 10
    assert len(plan_windows(T0, T0 + 4 * DAY, min_window=6 * HOUR, concurrency=10, pages=3)) == 3
    assert len(plan_windows(T0, T0 + 4 * DAY, min_window=6 * HOUR, concurrency=10, pages=0)) == 1


def settled_mark(path) -> str:
    with sqlite3.connect(path) as conn:
        (extra,) = conn.execute("select extra from sync_state where stream = 'events'").fetchone()
    return json.loads(extra)[windowed.SETTLED]


@pytest.mark.parametrize("pause", [0.0, 1.1])
def test_an_incremental_run_plans_its_windows_from_the_rows_stored(sandbox, tmp_path, pause):
    # Its lookback held 140 events (one page) and took 11 requests, one window a worker: each
    # window is a request of its own however few rows it holds.
    server, data, config = sandbox
    settings = settings_for(server, config, tmp_path / "k.db")
    first = run_sync(settings, SyncOptions(streams=["events"])).streams[0]
    before = settled_mark(settings.db_path)
    time.sleep(pause)
    second = run_sync(settings, SyncOptions(streams=["events"])).streams[0]
    assert first.requests >= 10 and 0 < second.rows <= 1000
    # Runs start on whole seconds of Klaviyo's clock: a run in a later second than the last
    # also reads the second that has just become SETTLE old (`late_window`), one request more.
    late = settled_mark(settings.db_path) > before
    assert late or not pause  # with no pause, the two runs may start in the same second
    assert second.requests == 2 + late  # the clock's request, its one window, the late one


def test_pages_left_are_estimated_once_half_the_time_range_is_read():
    windows = [Window(T0, T0 + 10 * HOUR, T0), Window(T0 + 10 * HOUR, T0 + 20 * HOUR, T0 + 10 * HOUR)]
    windows[0].progress = T0 + 6 * HOUR
    assert pages_left(windows, 6) is None  # 6 of 20 hours read: too soon to tell
    windows[0].done = True
    windows[1].progress = T0 + 15 * HOUR
    assert pages_left(windows, 30) == pytest.approx(10)  # 15 hours in 30 pages: 5 hours more


def test_a_first_load_writes_its_rows_as_rows_expected_new_and_a_later_run_upserts(
    sandbox, tmp_path, monkeypatch
):
    # A bulk load's pages skip the upsert's update path unless a row was stored already
    # (`Repository._store`); a run into a table with rows upserts as ever.
    server, data, config = sandbox
    settings = settings_for(server, config, tmp_path / "k.db")
    seen: list[str | None] = []
    write_rows = Repository.write_rows
    monkeypatch.setattr(
        Repository,
        "write_rows",
        lambda self, rows, bulk=None: seen.append(bulk) or write_rows(self, rows, bulk=bulk),
    )
    run_sync(settings, SyncOptions(streams=["events"]))
    assert len(seen) > 1 and set(seen) == {"events"}
    seen.clear()
    run_sync(settings, SyncOptions(streams=["events"]))
    assert seen and set(seen) == {None}


def test_a_first_load_builds_its_early_index_before_its_last_burst(sandbox_factory, tmp_path, monkeypatch):
    """The index on (metric, time) is built while the last burst's pages are still to come,
    the others after the last page (issue 12: the load's end waits for fewer builds)."""
    builds: list[tuple[str, tuple[str, ...] | None, int]] = []
    restore = Repository.restore_indexes

    def noting(self, table, names=None):
        builds.append((table, names, self.db.execute(f"SELECT count(*) FROM [{table}]").fetchone()[0]))
        return restore(self, table, names)

    monkeypatch.setattr(Repository, "restore_indexes", noting)
    # 7 requests a burst for ~13 pages: two bursts and a bit.
    with sandbox_factory("small", events=12_000, rate_limits=True, rate_limit_scale=0.02, latency_ms=5) as sb:
        db_path = tmp_path / "k.db"
        result = run_sync(settings_for(sb.server, sb.config, db_path), SyncOptions(streams=["events"]))
        assert result.ok, [(s.stream, s.error) for s in result.streams]
        total = len(sb.data.ids("event"))
    assert [(table, names) for table, names, _stored in builds] == [
        ("events", EARLY_INDEXES["events"]),
        ("events", None),
    ]
    early, last = builds[0][2], builds[1][2]
    assert total / 2 <= early < total and last == total
    with sqlite3.connect(db_path) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'events'")}
        deferred = conn.execute("SELECT count(*) FROM _deferred_indexes").fetchone()[0]
    assert {"idx_events_metric_id_datetime", "idx_events_profile_datetime"} <= indexes and deferred == 0


def test_an_early_index_build_that_fails_is_what_the_stream_reports(
    sandbox_factory, tmp_path, monkeypatch, caplog
):
    """Nobody waits for the early build while the pages come: its failure (a full disk)
    must still be the stream's error, not the pages after it being abandoned, nor an asyncio
    warning about an exception never retrieved."""
    restore = Repository.restore_indexes

    def failing(self, table, names=None):
        if names is not None:
            raise sqlite3.OperationalError("database or disk is full")
        return restore(self, table, names)

    monkeypatch.setattr(Repository, "restore_indexes", failing)
    with sandbox_factory("small", events=12_000, rate_limits=True, rate_limit_scale=0.02, latency_ms=5) as sb:
        result = run_sync(
            settings_for(sb.server, sb.config, tmp_path / "k.db"), SyncOptions(streams=["events"])
        )
        gc.collect()  # a future whose exception nobody retrieved says so when it is freed
    [events] = result.streams
    assert (events.status, events.error) == ("failed", "OperationalError: database or disk is full")
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
