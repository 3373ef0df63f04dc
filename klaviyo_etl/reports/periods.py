"""Report periods: `--from/--to`, `--last 30d|this-month|...` and `--compare previous|year`.

Periods are whole UTC days, start inclusive and end exclusive, because every timestamp in
the database is ISO 8601 UTC text and day boundaries compare correctly as plain strings
('2026-05-01T10:00:00+00:00' >= '2026-05-01'). Users give `--to` inclusive.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from klaviyo_etl import conventions as kc
from klaviyo_etl.errors import UsageError, refuse_blank
from klaviyo_etl.wording import counted

LAST_CHOICES = "Nd, Nw, today, yesterday, this-month, last-month, this-year, last-year, all"
COMPARE_CHOICES = ("previous", "year")
# Bounds that sort before and after every ISO datetime, for open-ended periods.
MIN_BOUND = ""
MAX_BOUND = "9999-12-31T99"


@dataclass(frozen=True)
class Period:
    start: dt.date | None  # first day included; None = since the beginning of the data
    end: dt.date | None  # first day excluded; None = no end
    label: str

    @property
    def lo(self) -> str:
        """Inclusive lower bound to compare ISO datetime/day/hour strings against."""
        return self.start.isoformat() if self.start else MIN_BOUND

    @property
    def hi(self) -> str:
        """Exclusive upper bound to compare ISO datetime/day/hour strings against."""
        return self.end.isoformat() if self.end else MAX_BOUND

    @property
    def days(self) -> int | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).days

    @property
    def last_day(self) -> dt.date | None:
        return self.end - dt.timedelta(days=1) if self.end else None

    def contains(self, value: str | None) -> bool:
        return bool(value) and self.lo <= value < self.hi

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


def _parse_date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a date (use YYYY-MM-DD)") from None


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
    """Turn the period options into a Period; `default` applies when none is given."""
    now = today or utc_today()
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


def timeframe_period(start: str | None, end: str | None, fetched_at: str | None) -> Period | None:
    """The [start, end) days a stored Reporting API row covers: ISO bounds, or a Klaviyo
    timeframe key resolved from the UTC day of the fetch (as Klaviyo resolves it)."""
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
            return Period(first, stop, f"{start[:10]}..{end[:10]}")
        today = dt.datetime.fromisoformat((fetched_at or end or "").replace("Z", "+00:00")).date()
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
        return Period(today - dt.timedelta(days=kc.TIMEFRAME_DAYS[key]), today, key)
    if key in table:
        return Period(*table[key], key)
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
    if mode == "year":
        return Period(_shift_year(period.start), _shift_year(period.end), f"{period.label} a year earlier")
    length = period.end - period.start
    return Period(period.start - length, period.start, f"previous {counted(length.days, 'day')}")


def change_pct(current: float | None, previous: float | None) -> float | None:
    """Relative change in percent; None when there is nothing to compare against."""
    if current is None or previous is None or previous == 0:
        return None
    return round((current - previous) / abs(previous) * 100, 2)
