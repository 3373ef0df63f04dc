"""The metric hours and the active profiles of a first load, folded page by page as the writer
stores the events, so that the load's end does not read every event again for them.

`klaviyo_etl.db.rollups.build_beside` used to read them in one pass over the events beside
the index builds at the end of a bulk load, the longer side of the load's tail (measured at
200,000 events: the pass 0.31 s of CPU, the index builds 0.25 s). Now the writer folds each
page right after storing it, while it waits for the next burst anyway (~0.15 s of CPU in
all): a plain UTC page from its values (what the rows will read back as), any other from
its new rows read back by rowid. At the end a reader thread only turns the fold into the
tables' rows beside the index builds (~0.08 s), and the writer inserts them.

The sums must be the floats a full rebuild makes, which adds each (metric, hour)'s values in
(datetime, rowid) order. A window's pages arrive in datetime order and are stored in that
order (one FIFO writer), so within one window the rows of an hour come in that order too.
Windows do not overlap, so an hour two windows share is the last of the earlier one and the
first of the later one: each window keeps its first hour's values as they came, and the
shared hour's sum goes on with them in the windows' order. A page that stored rows again (a
split window's overlap: the upsert keeps the first rowid) marks its local days, which are
summed again from the events at the end through idx_events_datetime (a bulk load keeps it).
The active profiles are sets of profiles per local day, the same whatever order they arrive
in. Both hold only while a local hour never goes back as time goes forward
(`hours_never_go_back`); in a zone where it does, nothing is folded and the load's end reads
the events as before. So it does when the fold missed an event or one changed since
(`current`), or when the account's timezone changed during the load.
"""

from __future__ import annotations

import datetime as dt
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from operator import itemgetter
from sys import intern
from typing import TYPE_CHECKING, Any

from klaviyo_etl.db.local_days import INSTANT, LocalDays, local_days
from klaviyo_etl.db.repositories import EVENT_COLUMNS, Batch

if TYPE_CHECKING:
    import sqlite3

    from klaviyo_etl.db.repositories import Repository, Row

# The most profiles a fold or `rollups._prebuild` follows (their memory grows with them: ~6 MB
# at this many for the prebuild's last days); beyond, the full rebuild counts the active
# profiles through their index as before.
MAX_PROFILES = 50_000


def hours_never_go_back(days: LocalDays) -> bool:
    """Whether the local hour of an instant never goes back as the instant goes forward (nor
    its day): false for a zone that turns its clocks back across an hour's start (its 23:xx
    again after 00:00, or 00:xx after 01:00)."""
    for (start, offset), (_, previous) in zip(days.spans[1:], days.spans, strict=False):
        if offset < previous:
            at = dt.datetime.strptime(start, INSTANT)
            before = at - dt.timedelta(seconds=1) + dt.timedelta(seconds=previous)
            after = at + dt.timedelta(seconds=offset)
            if after.replace(minute=0, second=0) < before.replace(minute=0, second=0):
                return False
    return True


_STR = {str, type(None)}
_FLOAT = {float, type(None)}
_EVENT = {
    name: EVENT_COLUMNS.index(name) for name in ("metric_id", "profile_id", "datetime", "value", "deleted_at")
}


def _plain(batch: Batch) -> bool:
    """Whether a batch of events holds what its rows will read back as, in the types that
    compare alike in Python and SQLite (text ids and times, float values): then a UTC fold
    reads its values instead of the rows stored (each read back costs ~1 µs)."""
    if batch.columns != EVENT_COLUMNS:
        return False
    values = batch.values
    return (
        set(map(type, map(itemgetter(_EVENT["metric_id"]), values))) <= _STR
        and set(map(type, map(itemgetter(_EVENT["profile_id"]), values))) <= _STR
        and set(map(type, map(itemgetter(_EVENT["datetime"]), values))) <= _STR
        and set(map(type, map(itemgetter(_EVENT["value"]), values))) <= _FLOAT
        and not any(v is not None and v == v for v in map(itemgetter(_EVENT["deleted_at"]), values))
    )  # deleted_at all NULL: None, or NaN (`NULL`: a NaN is the one value unequal to itself)


def _lean_rows(batch: Batch) -> Iterator[tuple]:
    """A UTC fold's rows from a `_plain` batch: what `LoadRollups._sql` reads back."""
    metric, profile, when, value = (_EVENT[c] for c in ("metric_id", "profile_id", "datetime", "value"))
    for row in batch.values:
        stamp = row[when]
        timed = stamp is not None and "" <= stamp < "9999"
        yield row[metric], None if stamp is None else stamp[:13], row[value], row[profile], timed, True


class LoadRollups:
    """Folds each stored page of a bulk load's events into the metric hours (as `_sum_hours`
    sums them) and each local day's active profiles. `valid` turns False for good when a row is
    one the fold cannot follow exactly (the full rebuild then reads the events).

    Each window's rows of an hour are summed apart, keyed by where the window begins (windows
    do not overlap, so that orders them): an hour two windows share is the last of the one
    and the first of the other, so each window keeps its first hour's values as they came,
    and the sum goes on with them in the windows' order at the end."""

    def __init__(self, days: LocalDays | None = None):
        """`days`: those the hours are counted in; None for the database's as its first page
        is stored (a first `sync` of every stream stores the account's timezone beside the
        events' first requests: read when the fold is made, it was UTC's 2 times in 5)."""
        # (metric, hour, window) -> its slot in `counts` (events), `totals` (their values
        # summed) and `firsts` (the values as they came, or None). Not an object per sum: a
        # float replaced at every event, each in the pool the page's rows had just left, kept
        # those pools from being freed, and a first load's peak RSS grew with its length
        # (1,000,000 events: 75 -> 83 MB against 100,000; issue 12).
        self.slots: dict[tuple[str, str, Any], int] = {}
        self.counts = array("q")
        self.totals = array("d")
        self.firsts: list[list | None] = []
        self.first_hours: dict[Any, str] = {}  # window -> the hour of its first row counted
        # local day -> the profiles active on it (None once not followed: `MAX_PROFILES`)
        self.day_profiles: dict[str, set[str]] | None = {}
        self.profiles: set[str] = set()  # every profile counted
        self.redo_days: set[str] = set()  # local days whose hours are summed again at the end
        self.rows = 0  # events rows stored through the fold
        self.valid = True
        self.days: LocalDays | None = None
        self._sql = ""
        if days is not None:
            self._count_in(days)

    def _count_in(self, days: LocalDays) -> None:
        self.days = days
        self.valid = self.valid and hours_never_go_back(days)
        # The new rows in rowid order: the order a window stored them in.
        self._sql = (
            f"SELECT metric_id, {days.hour_sql()}, value, profile_id,"
            " datetime >= '' AND datetime < '9999', deleted_at IS NULL FROM events WHERE rowid > ?"
            " ORDER BY rowid"
        )

    def write(
        self, repo: Repository, rows: dict[str, list[Row] | Batch], window: Any, bulk: str | None = None
    ) -> int:
        """Store one page's rows (`Repository.write_rows`, `bulk` as there) and fold its new
        events; `window` is where the window that read the page begins (its key: windows do
        not overlap)."""
        if self.days is None:
            self._count_in(local_days(repo.db))
        conn = repo.db.conn
        top = "SELECT coalesce(max(rowid), 0) FROM events"
        before = conn.execute(top).fetchone()[0]
        written = repo.write_rows(rows, bulk=bulk)
        events = rows.get("events")
        if events is None or not self.valid:
            return written
        count = len(events.values) if isinstance(events, Batch) else len(events)
        # Rows get the rowids after the highest (a bulk load deletes none): fewer new rowids
        # than rows means some were stored again.
        new = conn.execute(top).fetchone()[0] - before
        self.rows += new
        lean = isinstance(events, Batch) and self.days.utc and _plain(events)
        if lean:
            self._fold(_lean_rows(events), window)
        else:
            self._fold(conn.execute(self._sql, [before]), window)
        if new != count:  # rows stored again: their days are summed again at the end
            self._redo_span(events)
        return written

    def _fold(self, rows: Iterable[tuple], window: Any) -> None:
        """Fold (metric_id, hour, value, profile_id, counted time, live) rows."""
        slots, counts, totals, firsts = self.slots, self.counts, self.totals, self.firsts
        by_day: dict[str, list[str]] | None = {} if self.day_profiles is not None else None
        first = self.first_hours.get(window)
        for metric_id, hour, value, profile_id, timed, live in rows:
            if not live:
                continue
            if timed:
                if hour is None or hour[10:11] != "T":  # not a time SQLite reads: no fold
                    self.valid = False
                    return
                if metric_id is not None:
                    if first is None:
                        first = self.first_hours[window] = hour
                    slot = slots.get((metric_id, hour, window))
                    if slot is None:
                        # One copy of each id and hour for all its keys (200,000 events: 8.1 -> 6.8 MB).
                        slots[(intern(metric_id), intern(hour), window)] = len(counts)
                        counts.append(1)
                        totals.append(value or 0.0)
                        firsts.append([value] if hour == first else None)
                    else:
                        counts[slot] += 1
                        totals[slot] += value or 0.0
                        values = firsts[slot]
                        if values is not None:
                            values.append(value)
            if profile_id is not None and by_day is not None:
                if not timed:
                    by_day = self.day_profiles = None
                    self.profiles = set()
                    continue
                active = by_day.get(hour[:10])
                if active is None:
                    by_day[hour[:10]] = [profile_id]
                else:
                    active.append(profile_id)
        for day, profiles in (by_day or {}).items():
            self._activate(day, profiles)

    def _activate(self, day: str, profiles: Iterable[str | None]) -> None:
        """Count `profiles` (a None among them: an event without one) active on the local `day`,
        until more than `MAX_PROFILES` are followed. A page's profiles go into its days' sets
        in C: a set of days per profile took a dict lookup, a slice and a set insert per event
        in Python (200 pages of 1,000 events, 20,000 profiles: the fold 1.60 -> 0.86 us an
        event, issue 12)."""
        fresh = set(profiles)
        fresh.discard(None)
        if self.day_profiles is None or not fresh:
            return
        active = self.day_profiles.get(day)
        if active is None:
            self.day_profiles[day] = fresh
        else:
            active |= fresh
        self.profiles |= fresh
        if len(self.profiles) > MAX_PROFILES:
            self.day_profiles, self.profiles = None, set()

    def _redo_span(self, events: list[Row] | Batch) -> None:
        """Mark the local days of a page's datetimes, a day more on each side, to be summed
        again (the rows stored again lie between its first and last)."""
        if hasattr(events, "columns"):
            at = events.columns.index("datetime")
            stamps = [v[at] for v in events.values]
        else:
            stamps = [row.get("datetime") for row in events]
        texts = [s for s in stamps if isinstance(s, str)]
        if len(texts) != len(stamps) or not texts:
            self.valid = False
            return
        first = dt.date.fromisoformat(self.days.day_of(min(texts))) - dt.timedelta(days=1)
        last = dt.date.fromisoformat(self.days.day_of(max(texts))) + dt.timedelta(days=1)
        while first <= last:
            self.redo_days.add(first.isoformat())
            first += dt.timedelta(days=1)

    def current(self, conn: sqlite3.Connection) -> bool:
        """Whether the fold saw every event stored and none changed a counted field since
        (the triggers record such changes in rollup_dirty)."""
        top, dirty = conn.execute(
            "SELECT (SELECT coalesce(max(rowid), 0) FROM events), (SELECT count(*) FROM rollup_dirty)"
        ).fetchone()
        return self.valid and top == self.rows and dirty == 0

    def metric_hours(
        self, conn: sqlite3.Connection, sum_hours: Callable[[Any], dict[tuple[str, str], list]]
    ) -> dict[tuple[str, str], list]:
        """The metric hours, with the marked days summed again from the events by `sum_hours`
        (`rollups._sum_hours`) in the order the full rebuild reads them."""
        counts, totals, firsts = self.counts, self.totals, self.firsts
        # (metric, hour) -> (window, slot), and the windows that share one; then the sums, in
        # the table's order (B-tree appends), made from the slots one at a time.
        out: dict[tuple[str, str], tuple[Any, int]] = {}
        shared: dict[tuple[str, str], list[tuple[Any, int]]] = {}
        merged: dict[tuple[str, str], list] = {}  # the shared ones, summed
        for (metric_id, hour, window), slot in self.slots.items():
            key = (metric_id, hour)
            other = out.get(key)
            if other is None:
                out[key] = (window, slot)
            else:
                shared.setdefault(key, [other]).append((window, slot))
        for key, parts in shared.items():
            # The first window's sum, then each later window's values as they came.
            parts.sort(key=lambda part: part[0])
            n, value = counts[parts[0][1]], totals[parts[0][1]]
            for _window, slot in parts[1:]:
                values = firsts[slot]
                if values is None:  # not the later window's first hour: sum the hour again
                    self.redo_days.add(key[1][:10])
                    break
                n += counts[slot]
                for v in values:
                    value += v or 0.0
            merged[key] = [n, value]
        redo_days = self.redo_days
        hours = {}
        for key in sorted(out):
            if key[1][:10] not in redo_days:
                _window, slot = out.pop(key)
                hours[key] = merged[key] if key in merged else [counts[slot], totals[slot]]
        if not redo_days:
            return hours  # in the table's order: B-tree appends
        # Each run of consecutive marked days, a day more on each side: a stretch that holds
        # every event of those days whatever their offset, read as the full rebuild's pass
        # reads it (idx_events_datetime: the same rows in the same order).
        stretches: list[list[dt.date]] = []
        for day in sorted(dt.date.fromisoformat(d) for d in redo_days):
            if stretches and stretches[-1][1] == day:
                stretches[-1][1] = day + dt.timedelta(days=1)
            else:
                stretches.append([day, day + dt.timedelta(days=1)])
        query = (
            f"SELECT metric_id, {self.days.hour_sql()}, value FROM events"
            " WHERE datetime >= ? AND datetime < ? AND deleted_at IS NULL AND metric_id IS NOT NULL"
        )
        for start, end in stretches:
            bounds = [
                self.days.start_of(start - dt.timedelta(days=1)),
                self.days.start_of(end + dt.timedelta(days=1)),
            ]
            again = sum_hours(conn.execute(query, bounds))
            hours.update(
                (key, sums)
                for key, sums in again.items()
                if key[1] is not None and start.isoformat() <= key[1][:10] < end.isoformat()
            )
        return dict(sorted(hours.items()))

    def activity(self) -> dict[tuple[str, str], int] | None:
        """The active profiles as `rollups._rebuild_activity_full` counts them: (day, the
        profile's previous active day) -> profiles; None when not followed."""
        if self.day_profiles is None:
            return None
        counts: dict[tuple[str, str], int] = {}
        last: dict[str, str] = {}  # profile -> the last day it was active, so far
        for day in sorted(self.day_profiles):
            active = self.day_profiles[day]
            for previous, n in Counter(map(last.get, active, repeat(""))).items():
                counts[(day, previous)] = n
            last.update(dict.fromkeys(active, day))
        return counts
