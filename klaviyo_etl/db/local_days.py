"""What a "day" is for a database: a day of the synced account's timezone, as Klaviyo counts
them (its UI, and the Reporting API: spec `CustomTimeframe`, "the company timezone is used";
LIVE_BEHAVIOUR.md §6, §8). UTC when no account row is synced (a key without `accounts:read`)
or when the account's zone is UTC all along (or a name this machine's zone database lacks).

Events keep their `datetime` as UTC text. SQLite has no zone database, so `day_sql()` and
`hour_sql()` map that text to the local day ('YYYY-MM-DD') and hour ('YYYY-MM-DDTHH') with
an expression over the zone's offsets: a search tree of CASEs over its transitions
(`zoneinfo` gives them, found to the second) from FIRST_YEAR to LAST_YEAR, the offset of
the span found added in seconds, so DST days and fractional offsets (+05:30, +05:45) are
exact. A UTC database keeps the plain `substr(datetime, 1, 10)`: it pays nothing.

`start_of(day)` is the UTC instant the local day begins, as text that compares with the
stored datetimes, so a period of local days filters events by their UTC datetime.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import zoneinfo
from dataclasses import dataclass

import sqlite_utils

from klaviyo_etl.db.account import synced_account
from klaviyo_etl.timeutil import parse_time

UTC = "UTC"
# The years whose transitions the expressions know: before, the first offset holds; after,
# the last (Klaviyo's data starts in 2012; a zone's future rules are the tz database's).
FIRST_YEAR, LAST_YEAR = 2000, 2060
# Offsets are read every STEP and a change is found to the second between two readings:
# transitions are months apart (the closest in this range, Morocco's around Ramadan, weeks).
STEP = dt.timedelta(days=2)
# Names that are UTC by definition: no need to read the zone database (~30 ms) to say so.
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "GMT", "Etc/GMT"})
INSTANT = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class LocalDays:
    """The days of one timezone, for SQL over `events.datetime` and for Python."""

    zone: str  # an IANA name, "UTC" when the days are UTC's
    spans: tuple[tuple[str, int], ...]  # (first UTC instant, offset in seconds); the first from ''

    @property
    def utc(self) -> bool:
        return self.spans == (("", 0),)

    def _modifier(self, column: str) -> str:
        """SQL for the offset of `column`'s instant, as a date-function modifier."""

        def tree(spans: tuple[tuple[str, int], ...]) -> str:
            if len(spans) == 1:
                return f"'{spans[0][1]:+d} seconds'"
            middle = len(spans) // 2
            return (
                f"CASE WHEN {column} < '{spans[middle][0]}' THEN {tree(spans[:middle])}"
                f" ELSE {tree(spans[middle:])} END"
            )

        return tree(self.spans)

    def day_sql(self, column: str = "datetime") -> str:
        """SQL for the local day ('YYYY-MM-DD') of a UTC datetime column."""
        if self.utc:
            return f"substr({column}, 1, 10)"
        return f"date({column}, {self._modifier(column)})"

    def hour_sql(self, column: str = "datetime") -> str:
        """SQL for the local hour ('YYYY-MM-DDTHH') of a UTC datetime column."""
        if self.utc:
            return f"substr({column}, 1, 13)"
        return f"strftime('%Y-%m-%dT%H', {column}, {self._modifier(column)})"

    @functools.cached_property
    def starts(self) -> list[str]:
        return [start for start, _offset in self.spans]

    def offset_at(self, when: dt.datetime) -> int:
        """The offset (seconds) at an aware instant, from the same spans as the SQL."""
        text = when.astimezone(dt.UTC).strftime(INSTANT)
        return self.spans[bisect.bisect_right(self.starts, text) - 1][1]

    def day_of(self, stamp: str) -> str:
        """The local day of a stored UTC datetime (a day alone as it is; text that is not a
        time: its first ten characters, so that a refresh does not fail on it)."""
        if self.utc or len(stamp) <= 10:
            return stamp[:10]
        try:
            return self.wall_clock(parse_time(stamp)).date().isoformat()
        except ValueError:
            return stamp[:10]

    def start_of(self, day: str | dt.date) -> str:
        """The UTC instant the local `day` begins, as text comparing with stored datetimes
        ('2026-03-08T05:00:00'); the day itself for UTC."""
        if self.utc:
            return day.isoformat() if isinstance(day, dt.date) else day[:10]
        day = day if isinstance(day, dt.date) else dt.date.fromisoformat(day[:10])
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)  # the wall clock, as UTC
        near = {self.offset_at(midnight + dt.timedelta(hours=h)) for h in (-48, -24, 0, 24, 48)}
        # Midnight at each offset near it, where that offset holds (the first of two at a fall
        # back); none in a gap (a spring forward at midnight): the day begins at the change.
        starts = [
            midnight - dt.timedelta(seconds=o)
            for o in near
            if self.offset_at(midnight - dt.timedelta(seconds=o)) == o
        ]
        if starts:
            return min(starts).strftime(INSTANT)
        after = (midnight - dt.timedelta(seconds=max(near))).strftime(INSTANT)
        return self.starts[bisect.bisect_right(self.starts, after)]

    def exists(self, wall: dt.datetime) -> bool:
        """Whether the local (naive) time `wall` happens: not in the hour a spring forward
        skips (New York's 2026-03-08 02:00-02:59)."""
        if self.utc:
            return True
        as_utc = wall.replace(tzinfo=dt.UTC)
        near = {self.offset_at(as_utc + dt.timedelta(hours=h)) for h in (-24, 0, 24)}
        return any(self.offset_at(as_utc - dt.timedelta(seconds=o)) == o for o in near)

    def wall_clock(self, when: dt.datetime) -> dt.datetime:
        """The local time (naive) at the aware instant `when`."""
        return when.astimezone(dt.timezone(dt.timedelta(seconds=self.offset_at(when)))).replace(tzinfo=None)

    def today(self, now: dt.datetime | None = None) -> dt.date:
        """The local day it is now (or at the aware instant `now`)."""
        return self.wall_clock(now or dt.datetime.now(dt.UTC)).date()


@functools.lru_cache(maxsize=16)
def days_in(zone: str | None) -> LocalDays:
    """The days of the IANA zone `zone` (UTC's for None, "UTC"-like zones and unknown names)."""
    if not zone or zone in UTC_NAMES:
        return LocalDays(UTC, (("", 0),))
    try:
        spans = _spans(zoneinfo.ZoneInfo(zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return LocalDays(UTC, (("", 0),))
    return LocalDays(UTC, spans) if spans == (("", 0),) else LocalDays(zone, spans)


def _spans(zone: zoneinfo.ZoneInfo) -> tuple[tuple[str, int], ...]:
    def offset(when: dt.datetime) -> int:
        delta = when.astimezone(zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    when = dt.datetime(FIRST_YEAR, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(LAST_YEAR + 1, 1, 1, tzinfo=dt.UTC)
    current = offset(when)
    spans = [("", current)]
    while when < end:
        following = when + STEP
        changed = offset(following)
        if changed != current:
            low, high = when, following  # the change is in (low, high]
            while high - low > dt.timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if offset(middle) == current:
                    low = middle
                else:
                    high = middle
            spans.append((high.strftime(INSTANT), changed))
            current = changed
        when = following
    return tuple(spans)


def local_days(db: sqlite_utils.Database) -> LocalDays:
    """The days of this database's account (UTC's when none is synced)."""
    account = synced_account(db)
    return days_in(account.timezone if account else None)
