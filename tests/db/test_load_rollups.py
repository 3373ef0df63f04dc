"""The metric hours and active profiles a first load folds page by page (`LoadRollups`)
against a full rebuild the old way on the same events: every rollup table, row for row, float
for float, in UTC and in an account's timezone across its DST change."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter

import pytest

from klaviyo_etl.db import open_database, rollups
from klaviyo_etl.db.load_rollups import LoadRollups, hours_never_go_back
from klaviyo_etl.db.local_days import days_in, local_days
from klaviyo_etl.db.repositories import EVENT_COLUMNS, Batch, Repository
from klaviyo_etl.db.rollups import PREBUILT_KEY, ROLLUP_TABLES, build_beside, ensure_rollups, load_fold
from klaviyo_etl.sync.streams import windowed
from tests.db.test_rollups_prebuild import snapshot, the_old_way
from tests.helpers.sync import sync_ok

ZONE = "America/New_York"
# Days that hold New York's fall back (2026-11-01: its 01:00 hour twice).
NOW = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)
CURRENCIES = ("USD", "EUR", "GBP", "usd ", "")


def in_currencies(sb) -> None:
    """Orders in several currencies (and one without), with cents: the sandbox sends USD only."""
    properties = sb.data.event_properties

    def varied(i: int) -> dict:
        props = properties(i)
        if "$currency_code" in props:
            props["$currency_code"] = CURRENCIES[i % len(CURRENCIES)]
        return props

    sb.data.event_properties = varied


@pytest.mark.parametrize("zone", ["UTC", ZONE])
def test_a_first_load_folds_the_rollups_a_full_rebuild_makes(sandbox_factory, tmp_path, monkeypatch, zone):
    path = tmp_path / "k.db"
    folds: list[LoadRollups] = []
    fold_for = windowed.load_fold
    monkeypatch.setattr(windowed, "load_fold", lambda db: folds.append(fold_for(db)) or folds[-1])
    with sandbox_factory("small", events=20_000, profiles=300, days=4, now=NOW, timezone=zone) as sb:
        in_currencies(sb)
        # The account first, as the `accounts` stream stores it before the events' first page;
        # its sync's refresh built the (empty) rollups, which a first sync of all streams has not.
        sync_ok(sb.server, sb.config, path, streams=["accounts"])
        with open_database(path).conn as conn:
            conn.execute("DELETE FROM rollup_state")
        with monkeypatch.context() as during:
            # The load's end and the refresh after it must not read the events for these.
            def not_again(*args):
                raise AssertionError("read the events again")

            during.setattr(rollups, "_prebuild", not_again)
            during.setattr(rollups, "_metric_hours", not_again)
            during.setattr(rollups, "_rebuild_activity_full", not_again)
            sync_ok(sb.server, sb.config, path, streams=["metrics", "events"])
    [fold] = folds
    assert fold.days.zone == zone and fold.valid
    # Hours that two windows shared (their edges), summed in the windows' order.
    shared = Counter((metric, hour) for metric, hour, _window in fold.slots)
    assert any(n > 1 for n in shared.values())
    db = open_database(path)
    assert local_days(db).zone == zone
    currencies = {row[0] for row in db.execute("SELECT DISTINCT currency FROM rollup_currency_days")}
    assert {"USD", "EUR", "GBP", ""} <= currencies
    state = dict(db.execute("SELECT key, value FROM rollup_state").fetchall())
    assert "watermark" in state and PREBUILT_KEY not in state
    after_sync = snapshot(db)
    db.close()
    assert all(after_sync[t] for t in ROLLUP_TABLES), {t: len(v) for t, v in after_sync.items()}
    assert after_sync == the_old_way(path)


@pytest.fixture(scope="module")
def loaded(sandbox_factory, tmp_path_factory):
    """A sandbox account's events with metrics, in New York, and values with cents (whose
    float sums depend on the order they are added in)."""
    path = tmp_path_factory.mktemp("fold") / "k.db"
    with sandbox_factory("small", events=8000, days=4, now=NOW, timezone=ZONE) as sb:
        sync_ok(sb.server, sb.config, path, streams=["accounts", "metrics", "events"])
    db = open_database(path)
    with db.conn:
        db.execute("UPDATE events SET value = CASE WHEN rowid % 5 THEN (rowid % 997) / 100.0 + 0.01 END")
    db.close()
    return path


def pages_of(source, size: int) -> list[list[tuple]]:
    db = open_database(source)
    rows = db.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY datetime, rowid").fetchall()
    db.close()
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def load_through_a_fold(source, tmp_path, zone: str, order, around=()) -> tuple:
    """An empty copy of `source` in `zone`, its events stored again through a fold in pages
    `order` gives as (window, rows) (and the pages `around` without it, first), then the
    load's end (`build_beside`) and the refresh."""
    db = open_database(source)
    db.execute(f"VACUUM INTO '{tmp_path / 'new.db'}'")
    db.close()
    db = open_database(tmp_path / "new.db")
    with db.conn:
        for table in (*ROLLUP_TABLES, "events", "rollup_dirty", "rollup_state"):
            db.execute(f"DELETE FROM {table}")
    repo = Repository(db)
    with db.atomic():
        repo.defer_indexes("events")
    fold = load_fold(db)
    assert fold is not None
    with db.conn:  # the account's timezone stored after the fold was made, before the first page
        db.execute("UPDATE accounts SET timezone = ?", [zone])
    for rows in around:
        with db.atomic():
            repo.write_rows({"events": Batch(EVENT_COLUMNS, rows)})
    for window, rows in order:
        with db.atomic():
            fold.write(repo, {"events": Batch(EVENT_COLUMNS, rows)}, window)
    with db.atomic():
        build_beside(db, lambda: repo.restore_indexes("events"), folded=fold)
    assert PREBUILT_KEY in dict(db.execute("SELECT key, value FROM rollup_state").fetchall())
    assert ensure_rollups(db).mode == "full"
    return db, fold


@pytest.mark.parametrize("again", [False, True], ids=["in-order", "pages-stored-again"])
@pytest.mark.parametrize("zone", ["UTC", ZONE, "Asia/Kolkata"])
def test_windows_interleaved_fold_to_a_full_rebuild(loaded, tmp_path, monkeypatch, zone, again):
    """Four windows whose pages interleave as their answers come (a later window's first
    hour is stored before the earlier window's last), in three zones; `again`: two pages
    stored twice too (a split window's overlap, the second time as another window's)."""
    pages = pages_of(loaded, 250)
    quarter = len(pages) // 4
    windows = [(pages[q * quarter][0][3], pages[q * quarter : (q + 1) * quarter]) for q in range(3)]
    windows.append((pages[3 * quarter][0][3], pages[3 * quarter :]))
    order = []
    for batch in itertools.zip_longest(*(window_pages for _lo, window_pages in windows)):
        order += [(lo, page) for (lo, _), page in zip(windows, batch, strict=True) if page is not None]
    if again:
        overlap = windows[1][1][-1][-40:] + windows[2][1][0]  # the end of one window read again by the next
        order.insert(len(order) // 2, (windows[2][0], overlap))
        order.append((windows[0][0], windows[0][1][1]))  # a page read again by its own window
    monkeypatch.setattr(rollups, "_prebuild", lambda *args: pytest.fail("read the events again"))
    db, fold = load_through_a_fold(loaded, tmp_path, zone, order)
    assert fold.valid
    # Hours two windows share; summed again from the events only around the pages stored again.
    assert len({(m, h) for m, h, _w in fold.slots}) < len(fold.slots)
    assert bool(fold.redo_days) == again
    db.execute(f"VACUUM INTO '{tmp_path / 'same.db'}'")
    assert snapshot(db) == the_old_way(tmp_path / "same.db")
    db.close()


def test_a_fold_that_missed_events_is_not_used(loaded, tmp_path, monkeypatch):
    """Events stored around the fold: the load's end reads them all in one pass, as before."""
    monkeypatch.setattr(LoadRollups, "metric_hours", lambda *args: pytest.fail("used the fold"))
    pages = pages_of(loaded, 500)
    db, fold = load_through_a_fold(
        loaded, tmp_path, "UTC", [(pages[1][0][3], p) for p in pages[1:]], pages[:1]
    )
    assert not fold.current(db.conn)
    db.execute(f"VACUUM INTO '{tmp_path / 'same.db'}'")
    assert snapshot(db) == the_old_way(tmp_path / "same.db")
    db.close()


def test_zones_whose_hours_go_back_are_not_folded():
    assert hours_never_go_back(days_in("UTC")) and hours_never_go_back(days_in(ZONE))
    assert hours_never_go_back(days_in("Asia/Kolkata")) and hours_never_go_back(
        days_in("Australia/Lord_Howe")
    )
    # Until 2011 St. John's turned its clocks back at 00:01, to 23:01 of the day before.
    assert not hours_never_go_back(days_in("America/St_Johns"))
    assert not LoadRollups(days_in("America/St_Johns")).valid


def test_no_fold_once_the_rollups_exist(sandbox_factory, tmp_path, monkeypatch):
    """A first load of the events after a sync that built the rollups (of the metrics alone):
    the load's end stores nothing for the refresh, so the load folds nothing either."""
    path = tmp_path / "k.db"
    with sandbox_factory("small") as sb:
        sync_ok(sb.server, sb.config, path, streams=["metrics"])
        monkeypatch.setattr(LoadRollups, "__init__", lambda *args: pytest.fail("folded the load"))
        sync_ok(sb.server, sb.config, path, streams=["events"])
    db = open_database(path)
    after_sync = snapshot(db)
    db.close()
    assert after_sync["rollup_metric_hours"] and after_sync == the_old_way(path)


def test_the_active_profiles_count_each_profiles_previous_day_and_stop_past_the_cap(monkeypatch):
    """(day, the profile's previous active day) -> profiles, whatever order the pages come in;
    no count at all once more profiles than `MAX_PROFILES` were seen (memory)."""
    rows = [  # (metric, hour, value, profile, timed, live)
        ("m", "2026-05-03T10", None, "p1", True, True),
        ("m", "2026-05-01T10", None, "p1", True, True),
        ("m", "2026-05-01T11", None, "p2", True, True),
        ("m", "2026-05-03T09", None, "p2", True, True),
        ("m", "2026-05-02T09", None, None, True, True),  # no profile
        ("m", "2026-05-02T09", None, "p3", True, False),  # not live
        ("m", "2026-05-01T12", None, "p1", True, True),  # the same day again
    ]
    fold = LoadRollups(days_in("UTC"))
    fold._fold(rows[:3], "w1")
    fold._fold(rows[3:], "w2")
    assert fold.activity() == {("2026-05-01", ""): 2, ("2026-05-03", "2026-05-01"): 2}
    monkeypatch.setattr("klaviyo_etl.db.load_rollups.MAX_PROFILES", 1)
    capped = LoadRollups(days_in("UTC"))
    capped._fold(rows, "w1")
    assert capped.activity() is None
