"""`report metric NAME`: one metric as a time series, with trend, anomalies and a forecast.

- trend: the trailing moving average over `window` buckets.
- anomalies: a bucket's z-score against the `window` buckets before it; |z| >= threshold
  flags it. Scoring against the past only means a spike cannot hide itself by inflating
  its own baseline.
- forecast: seasonal naive (repeat the last season: 24 hours, 7 days, 52 weeks, 12 months,
  or the last value when history is shorter than two seasons) or a least-squares line.
  Each method is back-tested by hiding the last buckets (as many as the horizon, at most a
  third of the history), forecasting them from the rest and measuring MAE, RMSE and MAPE;
  `auto` keeps the method with the lower back-test MAE, and the band is ±1.96 back-test RMSE.

A bucket that has not finished yet (today, this week) is shown but marked partial and left
out of the trend, the anomaly scores and the forecast fit, as a half-day would read as a drop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import re
import statistics
from typing import Any

import sqlite_utils

from klaviyo_etl.db.local_days import days_in, local_days
from klaviyo_etl.db.rollups import ensure_rollups
from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports import currency
from klaviyo_etl.reports.model import IDENTITY, KEY, USEFUL, Column, Report
from klaviyo_etl.reports.periods import Period, change_pct, in_zone

INTERVALS = ("hour", "day", "week", "month")
MEASURES = ("count", "value", "uniques")
METHODS = ("auto", "seasonal", "linear")
SEASONS = {"hour": 24, "day": 7, "week": 52, "month": 12}

COLUMNS = [
    Column("bucket", "Bucket", priority=IDENTITY),
    Column("kind", "Kind", priority=KEY),
    Column("value", "Value", "float", KEY),
    Column("trend", "Trend", "float", USEFUL),
    Column("zscore", "z", "float"),
    Column("anomaly", "Anomaly", "bool", KEY),
    Column("low", "Low", "float", USEFUL),
    Column("high", "High", "float", USEFUL),
]
# A row's keys, in order (JSON and the CSV header): a finished bucket's, the running bucket's
# and a forecast's alike.
ROW_KEYS = ("bucket", "kind", "value", "partial", "trend", "zscore", "anomaly", "low", "high")


def find_metric(db: sqlite_utils.Database, name: str) -> tuple[str, list[str]]:
    """The metric's canonical name and every metric id carrying it (case-insensitive)."""
    rows = db.execute(
        "SELECT id, name FROM metrics WHERE deleted_at IS NULL AND lower(name) = lower(?)", [name.strip()]
    ).fetchall()
    if rows:
        return rows[0][1], [r[0] for r in rows]
    names = sorted(
        {r[0] for r in db.execute("SELECT name FROM metrics WHERE deleted_at IS NULL AND name IS NOT NULL")}
    )
    if not names:
        raise UsageError(f"unknown metric {name!r}: no metrics synced yet (run `klaviyo-etl sync metrics`)")
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = (
        f"did you mean {', '.join(repr(c) for c in close)}?"
        if close
        else (f"known: {', '.join(names[:12])}{' …' if len(names) > 12 else ''}")
    )
    raise UsageError(f"unknown metric {name!r}; {hint}")


def bucket_of(stamp: str, interval: str) -> str:
    """Bucket label of an ISO day ('2026-05-01') or hour ('2026-05-01T10') string."""
    if interval == "hour":
        return stamp[:13] + ":00"
    if interval == "day":
        return stamp[:10]
    if interval == "month":
        return stamp[:7]
    day = dt.date.fromisoformat(stamp[:10])
    return (day - dt.timedelta(days=day.weekday())).isoformat()  # the week's Monday


def next_bucket(bucket: str, interval: str) -> str:
    if interval == "hour":
        t = dt.datetime.fromisoformat(bucket) + dt.timedelta(hours=1)
        return t.strftime("%Y-%m-%dT%H:00")
    if interval == "month":
        year, month = int(bucket[:4]), int(bucket[5:7])
        return f"{year + month // 12:04d}-{month % 12 + 1:02d}"
    days = 7 if interval == "week" else 1
    return (dt.date.fromisoformat(bucket) + dt.timedelta(days=days)).isoformat()


def _bucket_end(bucket: str, interval: str) -> dt.datetime:
    """The local time (naive) the bucket ends, to tell finished buckets from the running one."""
    nxt = next_bucket(bucket, interval)
    if interval == "month":
        nxt += "-01"
    return dt.datetime.fromisoformat(nxt)


def parse_horizon(text: str, interval: str) -> int:
    """'30d', '12w', '48h', '6m' (months) -> number of buckets of the interval."""
    match = re.fullmatch(r"\s*(\d{1,4})\s*([hdwm])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"--forecast {text!r} is not a horizon (use e.g. 30d, 12w, 48h, 6m)")
    n, unit = int(match.group(1)), match.group(2)
    hours = {"h": 1, "d": 24, "w": 168, "m": 730}[unit] * n
    per = {"hour": 1, "day": 24, "week": 168, "month": 730}[interval]
    return max(1, math.ceil(hours / per))


def _raw_series(
    db: sqlite_utils.Database, ids: list[str], period: Period, interval: str, measure: str
) -> dict[str, float]:
    marks = ",".join("?" * len(ids))
    out: dict[str, float] = {}
    if measure == "uniques":
        # Distinct profiles per bucket do not add up from hours, so read the events.
        days = days_in(period.zone)
        stamp = days.hour_sql() if interval == "hour" else days.day_sql()
        rows = db.execute(
            f"SELECT {stamp} AS s, profile_id FROM events"
            f" WHERE metric_id IN ({marks}) AND datetime >= ? AND datetime < ?"
            " AND deleted_at IS NULL AND profile_id IS NOT NULL GROUP BY s, profile_id",
            [*ids, period.utc_lo, period.utc_hi],
        )
        seen: dict[str, set] = {}
        for stamp, profile in rows:
            seen.setdefault(bucket_of(stamp, interval), set()).add(profile)
        return {b: float(len(p)) for b, p in seen.items()}
    column = "events" if measure == "count" else "value"
    length = 13 if interval == "hour" else 10
    for stamp, total in db.execute(
        f"SELECT substr(hour, 1, {length}), sum({column}) FROM rollup_metric_hours"
        f" WHERE metric_id IN ({marks}) AND hour >= ? AND hour < ? GROUP BY 1",
        [*ids, period.lo, period.hi],
    ):
        bucket = bucket_of(stamp, interval)
        out[bucket] = out.get(bucket, 0.0) + float(total or 0)
    return out


# The most buckets --window may span: 10,000 months of warm-up reach back ~850 years.
MAX_WINDOW = 10_000


def _warm_up(
    db: sqlite_utils.Database,
    ids: list[str],
    period: Period,
    interval: str,
    measure: str,
    window: int,
    first: str,
    origin: str | None,
) -> list[float]:
    """Values of up to `window` whole buckets before the period's first one (and not before
    the metric's first bucket, `origin`)."""
    if period.start is None:
        return []
    days = {"hour": window // 24 + 2, "day": window, "week": 7 * window + 7, "month": 31 * window + 31}[
        interval
    ]
    before = Period(period.start - dt.timedelta(days=days), period.start, "warm-up", period.zone)
    raw = _raw_series(db, ids, before, interval, measure)
    buckets = []
    bucket = bucket_of(before.start.isoformat(), interval)
    begins = bucket + "-01" if interval == "month" else bucket[:10]
    if begins != before.start.isoformat():
        bucket = next_bucket(bucket, interval)  # skip a bucket cut short by the look-back
    while bucket < first:
        if origin is None or bucket >= origin:
            buckets.append(bucket)
        bucket = next_bucket(bucket, interval)
    return [raw.get(b, 0.0) for b in buckets[-window:]]


def moving_average(values: list[float], window: int) -> list[float | None]:
    out: list[float | None] = []
    for i in range(len(values)):
        if i + 1 < window:
            out.append(None)
        else:
            out.append(sum(values[i + 1 - window : i + 1]) / window)
    return out


def zscores(values: list[float], window: int) -> list[float | None]:
    """Each value against the mean and standard deviation of the `window` values before it."""
    out: list[float | None] = []
    for i, x in enumerate(values):
        if i < window or window < 2:
            out.append(None)
            continue
        past = values[i - window : i]
        mean = statistics.fmean(past)
        sd = statistics.stdev(past)
        out.append(None if sd == 0 else (x - mean) / sd)
    return out


def seasonal_naive(history: list[float], horizon: int, season: int) -> list[float]:
    if not history:
        return [0.0] * horizon
    if len(history) < 2 * season:
        season = 1
    last = history[-season:]
    return [last[h % season] for h in range(horizon)]


def linear(history: list[float], horizon: int) -> list[float]:
    n = len(history)
    if n == 0:
        return [0.0] * horizon
    if n == 1:
        return [history[0]] * horizon
    mean_x = (n - 1) / 2
    mean_y = statistics.fmean(history)
    sxx = sum((i - mean_x) ** 2 for i in range(n))
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(history)) / sxx
    return [mean_y + slope * (n + h - mean_x) for h in range(horizon)]


def _predict(method: str, history: list[float], horizon: int, season: int) -> list[float]:
    return seasonal_naive(history, horizon, season) if method == "seasonal" else linear(history, horizon)


def backtest(method: str, values: list[float], horizon: int, season: int) -> dict[str, Any] | None:
    """Forecast the last buckets from the ones before them and measure the error."""
    hold = min(horizon, len(values) // 3)
    if hold < 1 or len(values) - hold < 2:
        return None
    train, actual = values[:-hold], values[-hold:]
    predicted = _predict(method, train, hold, season)
    errors = [p - a for p, a in zip(predicted, actual, strict=True)]
    nonzero = [(abs(e) / abs(a)) for e, a in zip(errors, actual, strict=True) if a]
    return {
        "method": method,
        "points": hold,
        "mae": round(statistics.fmean(abs(e) for e in errors), 4),
        "rmse": round(math.sqrt(statistics.fmean(e * e for e in errors)), 4),
        "mape": round(100 * statistics.fmean(nonzero), 2) if nonzero else None,
    }


def metric_report(
    db: sqlite_utils.Database,
    name: str,
    period: Period,
    *,
    interval: str = "day",
    measure: str = "count",
    window: int = 7,
    threshold: float = 3.0,
    forecast: str | None = None,
    method: str = "auto",
    compare: Period | None = None,
    now: dt.datetime | None = None,
    conversion: str | None = None,
) -> Report:
    if interval not in INTERVALS:
        raise UsageError(f"--interval {interval!r} must be one of {', '.join(INTERVALS)}")
    if measure not in MEASURES:
        raise UsageError(f"--measure {measure!r} must be one of {', '.join(MEASURES)}")
    if method not in METHODS:
        raise UsageError(f"--method {method!r} must be one of {', '.join(METHODS)}")
    if window < 2:
        raise UsageError("--window must be at least 2")
    if window > MAX_WINDOW:  # the warm-up before the period reached back past year 1
        raise UsageError(f"--window {window} is too long: at most {MAX_WINDOW} buckets")
    if not threshold > 0:  # 0 or below flagged every bucket, nan none
        raise UsageError(f"--z {threshold} must be above 0 (e.g. 3: flag buckets 3 deviations off the trend)")
    fresh = ensure_rollups(db, conversion=conversion)  # the shared rollups' setting
    days = local_days(db)
    period, compare = in_zone(period, days), in_zone(compare, days)
    metric_name, ids = find_metric(db, name)
    now = days.wall_clock(now or dt.datetime.now(dt.UTC))  # buckets are the account's days
    raw = _raw_series(db, ids, period, interval, measure)
    rows: list[dict[str, Any]] = []
    # Before its first event a metric has no data, not zeros: start the series there, so the
    # account's first day neither drags the trend down nor reads as an anomaly.
    earliest = db.execute(
        f"SELECT min(hour) FROM rollup_metric_hours WHERE metric_id IN ({','.join('?' * len(ids))})",
        ids,
    ).fetchone()[0]
    origin = bucket_of(earliest, interval) if earliest else None
    first = bucket_of(period.start.isoformat(), interval) if period.start else origin
    if first is not None and origin is not None and origin > first:
        first = origin
    if period.end is not None:
        last_stamp = (period.end - dt.timedelta(days=1)).isoformat() + "T23"
    else:
        last_stamp = now.strftime("%Y-%m-%dT%H")
    last = bucket_of(last_stamp, interval)
    if first is not None:
        bucket = first
        while bucket <= last:
            if interval == "hour" and not days.exists(dt.datetime.fromisoformat(bucket)):
                bucket = next_bucket(bucket, interval)  # the hour a spring forward skips
                continue
            rows.append(
                {
                    "bucket": bucket,
                    "kind": "actual",
                    "value": round(raw.get(bucket, 0.0), 2),
                    "partial": _bucket_end(bucket, interval) > now,
                }
            )
            bucket = next_bucket(bucket, interval)
    for row in rows:
        if row["partial"]:
            row["kind"] = "partial"
    complete = [r for r in rows if not r["partial"]]
    values = [r["value"] for r in complete]
    # The buckets just before the period give its first buckets a trend and a z-score.
    history = _warm_up(db, ids, period, interval, measure, window, first, origin) if first else []
    trends = moving_average(history + values, window)[len(history) :]
    scores = zscores(history + values, window)[len(history) :]
    for row, trend, z in zip(complete, trends, scores, strict=True):
        row["trend"] = None if trend is None else round(trend, 4)
        row["zscore"] = None if z is None else round(z, 3)
        row["anomaly"] = z is not None and abs(z) >= threshold
    for row in rows:
        for key in ("trend", "zscore", "low", "high"):
            row.setdefault(key, None)
        row.setdefault("anomaly", False)
    meta: dict[str, Any] = {
        "metric": metric_name,
        "metric_ids": ids,
        "interval": interval,
        "measure": measure,
        "window": window,
        "z_threshold": threshold,
        "total": round(sum(r["value"] for r in rows), 2),
        "anomalies": sum(1 for r in rows if r["anomaly"]),
        "forecast": None,
    }
    notes: list[str] = list(fresh.notes)
    if forecast is not None:
        horizon = parse_horizon(forecast, interval)
        season = SEASONS[interval]
        tests = {m: backtest(m, values, horizon, season) for m in ("seasonal", "linear")}
        if method == "auto":
            scored = [t for t in tests.values() if t]
            chosen = min(scored, key=lambda t: t["mae"])["method"] if scored else "seasonal"
        else:
            chosen = method
        predicted = _predict(chosen, values, horizon, season)
        test = tests.get(chosen)
        band = 1.96 * test["rmse"] if test else None
        bucket = next_bucket(complete[-1]["bucket"], interval) if complete else None
        future = []
        for value in predicted:
            if bucket is None:
                break
            # Counts and revenue cannot go below zero.
            point = {
                "bucket": bucket,
                "kind": "forecast",
                "value": round(max(value, 0.0), 2),
                "trend": None,
                "zscore": None,
                "anomaly": False,
                "partial": False,
                "low": None if band is None else round(max(value - band, 0.0), 2),
                "high": None if band is None else round(max(value + band, 0.0), 2),
            }
            future.append(point)
            bucket = next_bucket(bucket, interval)
        # The running bucket is shown before the forecast that replaces it.
        rows = [r for r in rows if not r["partial"]] + [r for r in rows if r["partial"]] + future
        meta["forecast"] = {
            "method": chosen,
            "horizon": horizon,
            "season": season
            if chosen == "seasonal" and len(values) >= 2 * season
            else (1 if chosen == "seasonal" else None),
            "backtest": test,
            "candidates": tests,
        }
        if test is None:
            notes.append("Too little history to back-test the forecast.")
    if compare:
        before = _raw_series(db, ids, compare, interval, measure)
        meta["previous_total"] = round(sum(before.values()), 2)
        meta["change_pct"] = change_pct(meta["total"], meta["previous_total"])
    if not rows:
        notes.append(f"No {metric_name} events in {period.describe()}.")
    title = f"{metric_name} by {interval} ({measure})"
    listed = currency.currencies(db, ids, period) if measure == "value" else []
    if code := currency.label(listed):  # a metric whose orders name their currency (the conversion's)
        title = f"{metric_name} by {interval} ({measure}, {code})"
    rows = [{key: row[key] for key in ROW_KEYS} for row in rows]  # one key order for every kind
    # Events and profiles come whole: "26" orders, not "26.00" (the forecast and its band
    # round to whole ones too; the trend, an average, keeps its decimals).
    columns = COLUMNS if measure == "value" else [whole_numbers(c) for c in COLUMNS]
    report = Report("metric", title, columns, rows, period, compare, meta=meta, notes=notes)
    return report.set_currency(listed) if measure == "value" else report


def whole_numbers(column: Column) -> Column:
    """`column` shown as a whole number if it holds the measure itself (value, low, high)."""
    return dataclasses.replace(column, kind="int") if column.key in ("value", "low", "high") else column
