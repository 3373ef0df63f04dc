"""What a day is for a database: the synced account's timezone, mapped in SQL on a real SQLite
file and checked against `zoneinfo` across DST changes and fractional offsets."""

from __future__ import annotations

import datetime as dt
import sqlite3
import zoneinfo

import pytest

from klaviyo_etl.db import open_database
from klaviyo_etl.db.local_days import days_in, local_days

ZONES = ["America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "America/Havana"]


def _stamps(first: dt.date, last: dt.date, minutes: int = 7) -> list[str]:
    """Stored-style UTC datetimes every `minutes` from `first` to `last` (UTC days)."""
    when = dt.datetime.combine(first, dt.time(), dt.UTC)
    end = dt.datetime.combine(last, dt.time(), dt.UTC)
    out = []
    while when < end:
        out.append(when.isoformat())
        when += dt.timedelta(minutes=minutes)
    return out


@pytest.mark.parametrize("zone", ZONES)
def test_the_sql_day_and_hour_are_zoneinfos_around_the_dst_changes(tmp_path, zone):
    days = days_in(zone)
    db = open_database(tmp_path / "k.db")
    stamps = _stamps(dt.date(2026, 3, 6), dt.date(2026, 3, 11)) + _stamps(
        dt.date(2026, 10, 30), dt.date(2026, 11, 3)
    )
    db.execute("CREATE TABLE t (datetime TEXT)")
    db.conn.executemany("INSERT INTO t VALUES (?)", [(s,) for s in stamps])
    rows = db.execute(f"SELECT datetime, {days.day_sql()}, {days.hour_sql()} FROM t").fetchall()
    tz = zoneinfo.ZoneInfo(zone)
    for stamp, day, hour in rows:
        local = dt.datetime.fromisoformat(stamp).astimezone(tz)
        assert (day, hour) == (local.date().isoformat(), local.strftime("%Y-%m-%dT%H")), stamp
        assert days.day_of(stamp) == day


@pytest.mark.parametrize("zone", ZONES)
def test_each_local_day_begins_where_its_first_moment_is(zone):
    days = days_in(zone)
    tz = zoneinfo.ZoneInfo(zone)
    day = dt.date(2026, 1, 1)
    while day < dt.date(2027, 1, 1):
        start = dt.datetime.fromisoformat(days.start_of(day)).replace(tzinfo=dt.UTC)
        assert start.astimezone(tz).date() == day
        assert (start - dt.timedelta(seconds=1)).astimezone(tz).date() < day
        day += dt.timedelta(days=1)


def test_new_york_dst_days_are_23_and_25_hours_and_india_is_offset_by_half_an_hour():
    ny = days_in("America/New_York")
    assert ny.start_of("2026-03-08") == "2026-03-08T05:00:00"
    assert ny.start_of("2026-03-09") == "2026-03-09T04:00:00"  # 23 hours
    assert ny.start_of("2026-11-01") == "2026-11-01T04:00:00"
    assert ny.start_of("2026-11-02") == "2026-11-02T05:00:00"  # 25 hours
    assert ny.day_of("2026-03-08T04:59:59+00:00") == "2026-03-07"
    assert ny.day_of("2026-11-02T04:59:59+00:00") == "2026-11-01"
    india = days_in("Asia/Kolkata")
    assert india.start_of("2026-05-01") == "2026-04-30T18:30:00"
    assert india.day_of("2026-04-30T18:29:59+00:00") == "2026-04-30"
    assert india.day_of("2026-04-30T18:30:00+00:00") == "2026-05-01"
    nepal = days_in("Asia/Kathmandu")
    assert nepal.start_of("2026-05-01") == "2026-04-30T18:15:00"


@pytest.mark.parametrize("zone", [None, "UTC", "Etc/UTC", "Africa/Abidjan", "Not/AZone"])
def test_a_utc_day_stays_the_plain_substring(zone):
    days = days_in(zone)
    assert days.utc and days.zone == "UTC"
    assert days.day_sql() == "substr(datetime, 1, 10)"
    assert days.hour_sql("e.datetime") == "substr(e.datetime, 1, 13)"
    assert days.start_of("2026-05-01") == "2026-05-01"


def test_the_days_are_the_synced_accounts_and_utc_without_one(tmp_path):
    path = tmp_path / "k.db"
    db = open_database(path)
    assert local_days(db).zone == "UTC"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO accounts (id, timezone, attributes, synced_at) VALUES ('A1', 'US/Eastern', '{}', '')"
        )
    assert local_days(db).zone == "US/Eastern"
    assert local_days(db).start_of("2026-07-01") == "2026-07-01T04:00:00"
