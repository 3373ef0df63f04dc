"""Trend, anomaly scores and forecasts on series whose answers are known."""

from __future__ import annotations

import statistics

import pytest

from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports.timeseries import (
    backtest,
    bucket_of,
    linear,
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
