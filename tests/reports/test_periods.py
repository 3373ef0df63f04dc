"""Period options: what each --last means, --from/--to, and the compare periods."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from klaviyo_etl.db.local_days import days_in
from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports.periods import change_pct, compare_period, in_zone, resolve_period

TODAY = dt.date(2026, 3, 15)


@pytest.mark.parametrize(
    ("last", "start", "last_day"),
    [
        ("7d", "2026-03-09", "2026-03-15"),
        ("30d", "2026-02-14", "2026-03-15"),
        ("2w", "2026-03-02", "2026-03-15"),
        ("today", "2026-03-15", "2026-03-15"),
        ("yesterday", "2026-03-14", "2026-03-14"),
        ("this-month", "2026-03-01", "2026-03-15"),
        ("last-month", "2026-02-01", "2026-02-28"),
        ("this-year", "2026-01-01", "2026-03-15"),
        ("last-year", "2025-01-01", "2025-12-31"),
    ],
)
def test_last(last, start, last_day):
    period = resolve_period(last=last, today=TODAY)
    assert (period.start.isoformat(), period.last_day.isoformat()) == (start, last_day)


def test_from_to_and_bounds():
    period = resolve_period(from_="2026-05-01", to="2026-05-31")
    assert (period.lo, period.hi, period.days) == ("2026-05-01", "2026-06-01", 31)
    assert period.contains("2026-05-31T23:59:59+00:00")
    assert not period.contains("2026-06-01T00:00:00+00:00")
    open_end = resolve_period(from_="2026-05-01")
    assert open_end.end is None and open_end.contains("2030-01-01T00:00:00+00:00")
    everything = resolve_period(last="all")
    assert everything.start is None and everything.describe() == "all time"
    assert resolve_period(today=TODAY).label == "30d"  # the default


def test_compare_periods():
    may = resolve_period(from_="2026-05-01", to="2026-05-31")
    previous = compare_period(may, "previous")
    assert (previous.start, previous.last_day) == (dt.date(2026, 3, 31), dt.date(2026, 4, 30))
    year = compare_period(may, "year")
    assert (year.start, year.last_day) == (dt.date(2025, 5, 1), dt.date(2025, 5, 31))
    leap = compare_period(resolve_period(from_="2028-02-29", to="2028-02-29"), "year")
    assert leap.start == dt.date(2027, 2, 28)
    assert compare_period(may, None) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"last": "0d"},
        {"last": "3 days"},
        {"last": "7d", "from_": "2026-01-01"},
        {"from_": "May 1"},
        {"from_": "2026-05-02", "to": "2026-05-01"},
    ],
)
def test_bad_periods(kwargs):
    with pytest.raises(UsageError):
        resolve_period(**kwargs, today=TODAY)


def test_change_pct():
    assert change_pct(150, 100) == 50.0
    assert change_pct(50, 100) == -50.0
    assert change_pct(5, 0) is None and change_pct(None, 3) is None


@pytest.mark.parametrize("option", ["last", "from_", "to"])
def test_an_empty_period_option_is_refused_not_taken_for_the_default(option):
    # `--last ''` (an unset shell variable) read the default 30 days without a word.
    with pytest.raises(UsageError, match="is empty"):
        resolve_period(**{option: " "}, today=dt.date(2026, 5, 31))


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kolkata"])
def test_a_relative_period_is_the_accounts_days_from_its_today(zone):
    """`--last 30d` / `today` are resolved (in UTC) before the database is opened; a report
    resolves them again from the account's today (UTC+14 and UTC-11 differ from UTC's day
    for most of it)."""
    days = days_in(zone)
    local_today = dt.datetime.now(zoneinfo.ZoneInfo(zone)).date()
    today = in_zone(resolve_period(last="today"), days)
    assert (today.start, today.last_day, today.zone) == (local_today, local_today, zone)
    month = in_zone(resolve_period(last="30d"), days)
    assert month.last_day == local_today and month.days == 30
    before = in_zone(compare_period(resolve_period(last="30d"), "previous"), days)
    assert before.end == month.start and before.zone == zone
    assert month.utc_lo == days.start_of(month.start) and month.utc_hi == days.start_of(month.end)


def test_given_days_stay_and_begin_at_the_accounts_midnights():
    ny = days_in("America/New_York")
    period = in_zone(resolve_period(from_="2026-03-08", to="2026-03-08"), ny)
    assert (period.lo, period.hi) == ("2026-03-08", "2026-03-09")
    assert (period.utc_lo, period.utc_hi) == ("2026-03-08T05:00:00", "2026-03-09T04:00:00")
    assert period.contains("2026-03-09T03:59:59+00:00") and not period.contains("2026-03-09T04:00:00+00:00")
    utc = resolve_period(from_="2026-03-08", to="2026-03-08")
    assert (utc.utc_lo, utc.utc_hi) == ("2026-03-08", "2026-03-09")  # UTC: the days themselves
    fixed = resolve_period(last="7d", today=TODAY)  # a today given is kept
    assert in_zone(fixed, ny).start == fixed.start
