"""Report periods: `--from/--to`, `--last 30d|this-month|...` and `--compare previous|year`.

Periods are whole days of the account's timezone (`db/local_days.py`: Klaviyo counts days
there; UTC when no account is synced), start inclusive and end exclusive. Users give `--to`
inclusive. `lo`/`hi` are the days, to compare with the rollups' local days; `utc_lo`/`utc_hi`
are the UTC instants those days begin, to compare with stored timestamps (ISO 8601 UTC text:
for UTC they are the days themselves, '2026-05-01T10:00:00+00:00' >= '2026-05-01').

A period is resolved before the database is opened (in UTC: its `zone`); a report makes it
its database's with `account_periods(db, period, compare)` (`in_zone` with the database's
`local_days`), which resolves a relative one (`--last 30d`, `today`) again from the zone's
today, and keeps the days of a `--from/--to`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import overload

import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.db.local_days import UTC, LocalDays, days_in, local_days
from klaviyo_etl.errors import UsageError, refuse_blank
from klaviyo_etl.timeutil import parse_time
from klaviyo_etl.wording import counted

LAST_CHOICES = "Nd, Nw, today, yesterday, this-month, last-month, this-year, last-year, all"
COMPARE_CHOICES = ("previous", "year")
# Bounds that sort before and after every ISO datetime, for open-ended periods.
MIN_BOUND = ""
MAX_BOUND = "9999-12-31T99"
# The days --from and --to may name (`_parse_date`).
EARLIEST_DAY = dt.date(1970, 1, 1)
LATEST_DAY = dt.date(2999, 12, 31)


@dataclass(frozen=True)
class Period:
    start: dt.date | None  # first day included; None = since the beginning of the data
    end: dt.date | None  # first day excluded; None = no end
    label: str
    zone: str = UTC  # the timezone whose days these are (the account's)
    # How to resolve the period again from another today (a relative period resolved from the
    # clock); None: its days hold in any zone (`--from/--to`, or a today given).
    rebase: Callable[[dt.date], Period] | None = field(default=None, compare=False, repr=False)

    @property
    def lo(self) -> str:
        """Inclusive lower bound to compare ISO datetime/day/hour strings against."""
        return self.start.isoformat() if self.start else MIN_BOUND

    @property
    def hi(self) -> str:
        """Exclusive upper bound to compare ISO datetime/day/hour strings against."""
        return self.end.isoformat() if self.end else MAX_BOUND

    # Cached: outside UTC finding where a day begins takes ~25 µs, and `contains` (or a
    # comparison per campaign) reads both bounds for every value it is given.
    @functools.cached_property
    def utc_lo(self) -> str:
        """Inclusive lower bound for stored UTC timestamps: where the first day begins."""
        return days_in(self.zone).start_of(self.start) if self.start else MIN_BOUND

    @functools.cached_property
    def utc_hi(self) -> str:
        """Exclusive upper bound for stored UTC timestamps: where the day after the last begins."""
        return days_in(self.zone).start_of(self.end) if self.end else MAX_BOUND

    @property
    def days(self) -> int | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).days

    @property
    def last_day(self) -> dt.date | None:
        return self.end - dt.timedelta(days=1) if self.end else None

    def contains(self, value: str | None) -> bool:
        """Whether a stored UTC timestamp falls in the period."""
        return bool(value) and self.utc_lo <= value < self.utc_hi

    def to_json(self) -> dict:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.last_day.isoformat() if self.last_day else None,
            "label": self.label,
        }

    def describe(self) -> str:
        if self.start is None and self.end is None:
            return "all time"
        start = self.start.isoformat() if self.start else "the beginning"
        end = self.last_day.isoformat() if self.last_day else "now"
        return f"{start} to {end}" if start != end else start


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@overload
def in_zone(period: Period, days: LocalDays) -> Period: ...
@overload
def in_zone(period: None, days: LocalDays) -> None: ...
def in_zone(period: Period | None, days: LocalDays) -> Period | None:
    """The period in the days of `days`' zone (a database's: `db.local_days.local_days`): a
    relative period resolved again from that zone's today; fixed days kept as they are."""
    if period is None or period.zone == days.zone:
        return period
    if period.rebase is not None:
        return replace(period.rebase(days.today()), zone=days.zone, rebase=period.rebase)
    return replace(period, zone=days.zone)


def account_periods(
    db: sqlite_utils.Database, period: Period, compare: Period | None = None
) -> tuple[Period, Period | None]:
    """A report's period and the one it compares with, in the days of its database's account
    (`in_zone`): what a report does first, its periods having been resolved before the
    database was opened."""
    days = local_days(db)
    return in_zone(period, days), in_zone(compare, days)


def _parse_date(value: str, option: str) -> dt.date:
    """A day of --from/--to: a date, or the day of an ISO 8601 time. Between 1970 and 2999, so
    that the periods worked out from it (`--compare`, a metric's warm-up) stay in the calendar:
    `--to 9999-12-31` and `--from 0001-01-01 --to 0001-01-02 --compare year` ended in
    "unexpected OverflowError" and "unexpected ValueError: year 0 is out of range"."""
    try:
        day = dt.datetime.fromisoformat(value.strip()).date()  # "2026-01-01garbage" is no date
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a date (use YYYY-MM-DD)") from None
    if day < EARLIEST_DAY:
        raise UsageError(f"{option} {value} is before 1970: Klaviyo holds nothing older; give a later date")
    if day > LATEST_DAY:
        raise UsageError(f"{option} {value} is after 2999: give an earlier date")
    return day


def _month_start(day: dt.date, back: int = 0) -> dt.date:
    month = day.year * 12 + day.month - 1 - back
    return dt.date(month // 12, month % 12 + 1, 1)


def resolve_period(
    *,
    from_: str | None = None,
    to: str | None = None,
    last: str | None = None,
    default: str = "30d",
    today: dt.date | None = None,
) -> Period:
    """Turn the period options into a Period; `default` applies when none is given.

    Without `today` it is the clock's (UTC); `in_zone` resolves the period again from the
    account's today."""
    if today is None:
        period = resolve_period(from_=from_, to=to, last=last, default=default, today=utc_today())
        if (period.start is None and period.end is None) or from_ or to:
            return period

        def rebase(day: dt.date) -> Period:
            return resolve_period(from_=from_, to=to, last=last, default=default, today=day)

        return replace(period, rebase=rebase)
    now = today
    for option, value in (("--last", last), ("--from", from_), ("--to", to)):
        refuse_blank(option, value, "a period" if option == "--last" else "a date")
    if last and (from_ or to):
        raise UsageError("use either --last or --from/--to, not both")
    if from_ or to:
        start = _parse_date(from_, "--from") if from_ else None
        last_day = _parse_date(to, "--to") if to else None
        if start and last_day and last_day < start:
            raise UsageError(f"--to {to} is before --from {from_}")
        end = last_day + dt.timedelta(days=1) if last_day else None
        if start is None and end is None:
            return Period(None, None, "all")
        label = f"{from_ or '…'}..{to or '…'}"
        return Period(start, end, label)
    spec = (last or default).strip().lower()
    tomorrow = now + dt.timedelta(days=1)
    if spec == "all":
        return Period(None, None, "all")
    if spec == "today":
        return Period(now, tomorrow, spec)
    if spec == "yesterday":
        return Period(now - dt.timedelta(days=1), now, spec)
    if spec == "this-month":
        return Period(_month_start(now), tomorrow, spec)
    if spec == "last-month":
        return Period(_month_start(now, 1), _month_start(now), spec)
    if spec == "this-year":
        return Period(dt.date(now.year, 1, 1), tomorrow, spec)
    if spec == "last-year":
        return Period(dt.date(now.year - 1, 1, 1), dt.date(now.year, 1, 1), spec)
    if re.fullmatch(r"\d{5,}[dw]", spec):  # the form is right, the number is not
        raise UsageError(f"--last {last or default!r} is too long: at most 9999d or 9999w, or --last all")
    match = re.fullmatch(r"(\d{1,4})([dw])", spec)
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"--last {last or default!r} is not a period (use {LAST_CHOICES})")
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    # The last N days including today: today counts as the first of them.
    return Period(tomorrow - dt.timedelta(days=days), tomorrow, spec)


def timeframe_period(
    start: str | None, end: str | None, fetched_at: str | None, days: LocalDays | None = None
) -> Period | None:
    """The [start, end) days a stored Reporting API row covers, in the account's timezone
    (`days`; UTC when None), as Klaviyo counts them: ISO bounds, whose offset Klaviyo ignores
    (spec `CustomTimeframe`), or a timeframe key resolved from the day of the fetch there."""
    days = days or days_in(None)
    try:
        if start and start[:4].isdigit():
            first = dt.date.fromisoformat(start[:10])
            last = dt.datetime.fromisoformat(end.replace("Z", "+00:00")) if end else None
            if last is None:
                return None
            stop = (
                last.date()
                if (last.hour, last.minute, last.second) == (0, 0, 0)
                else (last.date() + dt.timedelta(days=1))
            )
            return Period(first, stop, f"{start[:10]}..{end[:10]}", days.zone)
        today = days.today(parse_time(fetched_at or end or ""))
    except ValueError:
        return None
    key = start or ""
    week = today - dt.timedelta(days=today.weekday())
    month = _month_start(today)
    table = {
        "today": (today, today + dt.timedelta(days=1)),
        "yesterday": (today - dt.timedelta(days=1), today),
        "this_week": (week, week + dt.timedelta(days=7)),
        "last_week": (week - dt.timedelta(days=7), week),
        "this_month": (month, _month_start(today, -1)),
        "last_month": (_month_start(today, 1), month),
        "last_3_months": (_month_start(today, 3), month),
        "last_12_months": (_month_start(today, 12), month),
        "this_year": (dt.date(today.year, 1, 1), dt.date(today.year + 1, 1, 1)),
        "last_year": (dt.date(today.year - 1, 1, 1), dt.date(today.year, 1, 1)),
    }
    if key in kc.TIMEFRAME_DAYS:
        return Period(today - dt.timedelta(days=kc.TIMEFRAME_DAYS[key]), today, key, days.zone)
    if key in table:
        return Period(*table[key], key, days.zone)
    return None


def _shift_year(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def compare_mode(mode: str, choices: tuple[str, ...] = COMPARE_CHOICES) -> str:
    """A `--compare` word as every report takes it (any case, spaces around), or a UsageError
    naming `choices` (the dashboard's add its "none")."""
    refuse_blank("--compare", mode, f"one of {', '.join(choices)}")  # not "no comparison"
    word = mode.strip().lower()
    if word not in choices:
        raise UsageError(f"--compare {word!r} is not one of {', '.join(choices)}")
    return word


def compare_period(period: Period, mode: str | None) -> Period | None:
    """The period to compare against: the same number of days just before, or a year back."""
    if mode is None:
        return None
    mode = compare_mode(mode)
    if period.start is None or period.end is None:
        raise UsageError("--compare needs a bounded period (give --from and --to, or --last)")
    base = period.rebase
    rebase = (lambda day: compare_period(base(day), mode)) if base else None
    if mode == "year":
        return Period(
            _shift_year(period.start),
            _shift_year(period.end),
            f"{period.label} a year earlier",
            period.zone,
            rebase,
        )
    length = period.end - period.start
    return Period(
        period.start - length, period.start, f"previous {counted(length.days, 'day')}", period.zone, rebase
    )


def change_pct(current: float | None, previous: float | None) -> float | None:
    """Relative change in percent; None when there is nothing to compare against."""
    if current is None or previous is None or previous == 0:
        return None
    return round((current - previous) / abs(previous) * 100, 2)
