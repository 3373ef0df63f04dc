"""Trend, anomaly scores and forecasts on series whose answers are known."""

from __future__ import annotations

import datetime as dt
import statistics

import pytest

from klaviyo_etl.db import open_database
from klaviyo_etl.db.local_days import days_in
from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports.periods import in_zone, resolve_period
from klaviyo_etl.reports.timeseries import (
    backtest,
    bucket_of,
    linear,
    metric_report,
    moving_average,
    parse_horizon,
    seasonal_naive,
    zscores,
)


def test_moving_average():
    assert moving_average([1, 2, 3, 4], 2) == [None, 1.5, 2.5, 3.5]


def test_zscore_against_the_past_window_only():
    values = [10, 12, 10, 12, 10, 12, 10, 30]
    past = values[:7]
    expected = (30 - statistics.fmean(past)) / statistics.stdev(past)
    scores = zscores(values, 7)
    assert scores[:7] == [None] * 7
    assert scores[7] == pytest.approx(expected)
    assert scores[7] > 3  # the spike is an anomaly at the default threshold
    assert zscores([5] * 9, 7)[8] is None  # a flat past has no spread to score against


def test_seasonal_naive_and_linear():
    assert seasonal_naive([1, 2, 3, 1, 2, 3], 4, 3) == [1, 2, 3, 1]
    assert seasonal_naive([1, 2, 3], 2, 7) == [3, 3]  # too short for a season: last value
    assert linear([1, 2, 3], 2) == pytest.approx([4, 5])


def test_backtest_picks_the_right_model():
    weekly = [10, 20, 30, 40, 50, 60, 70] * 6
    assert backtest("seasonal", weekly, 7, 7)["mae"] == 0
    assert backtest("linear", weekly, 7, 7)["mae"] > 0
    line = [3.0 + 2 * i for i in range(30)]
    result = backtest("linear", line, 10, 7)
    assert result == {"method": "linear", "points": 10, "mae": 0.0, "rmse": 0.0, "mape": 0.0}
    assert backtest("linear", [1.0, 2.0], 5, 7) is None  # too little history


def test_buckets_and_horizons():
    assert bucket_of("2026-05-01T10", "hour") == "2026-05-01T10:00"
    assert bucket_of("2026-05-03", "week") == "2026-04-27"  # a Sunday belongs to Monday's week
    assert bucket_of("2026-05-03", "month") == "2026-05"
    assert parse_horizon("30d", "day") == 30
    assert parse_horizon("30d", "week") == 5
    assert parse_horizon("48h", "hour") == 48
    with pytest.raises(UsageError):
        parse_horizon("0d", "day")


@pytest.mark.parametrize(("day", "hours"), [("2026-03-08", 23), ("2026-11-01", 24), ("2026-05-01", 24)])
def test_an_hourly_series_has_the_accounts_hours_on_its_dst_days(tmp_path, day, hours):
    """New York's 8 March has no 02:00 (23 buckets); on 1 November 01:00 happens twice, one
    bucket holding both hours' events (24 buckets, 25 hours); every event of the day counted."""
    db = open_database(tmp_path / "k.db")
    db.execute(
        "INSERT INTO accounts (id, timezone, attributes, synced_at) VALUES ('A1', 'America/New_York', '{}', '')"
    )
    db["metrics"].insert({"id": "M1", "name": "Opened Email"}, pk="id", alter=True)
    start = dt.datetime.fromisoformat(days_in("America/New_York").start_of(day)).replace(tzinfo=dt.UTC)
    stamps = [start + dt.timedelta(minutes=20 * i) for i in range(3 * 26)]
    rows = [{"id": f"E{i}", "metric_id": "M1", "datetime": s.isoformat()} for i, s in enumerate(stamps)]
    db["events"].insert_all(rows, pk="id", alter=True)
    inside = in_zone(resolve_period(from_=day, to=day), days_in("America/New_York"))
    counted = sum(1 for s in stamps if inside.contains(s.isoformat()))
    report = metric_report(db, "Opened Email", resolve_period(from_=day, to=day), interval="hour")
    assert len(report.rows) == hours
    assert sum(r["value"] for r in report.rows) == counted == 3 * (hours + (day == "2026-11-01"))
    if day == "2026-11-01":
        assert next(r["value"] for r in report.rows if r["bucket"] == "2026-11-01T01:00") == 6
