"""The series behind the dashboard's charts: revenue and email engagement per day/week/month."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.db.rollups import click_days_of_both
from klaviyo_etl.reports.messages import counts_bots
from klaviyo_etl.reports.overview import conversion_ids
from klaviyo_etl.reports.periods import Period
from klaviyo_etl.reports.timeseries import bucket_of, next_bucket


def _span(db: sqlite_utils.Database, period: Period) -> tuple[str, str] | None:
    """First and last day the chart covers: the period, clipped to the data when open."""
    first = period.start.isoformat() if period.start else None
    last = period.last_day.isoformat() if period.end else None
    if first is None or last is None:
        lo, hi = db.execute("SELECT min(hour), max(hour) FROM rollup_metric_hours").fetchone()
        if lo is None:
            return None
        first = first or lo[:10]
        last = last or hi[:10]
    return first, last


def interval_for(first: str, last: str) -> str:
    days = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1
    return "day" if days <= 120 else "week" if days <= 730 else "month"


def _buckets(first: str, last: str, interval: str) -> list[str]:
    out, bucket, end = [], bucket_of(first, interval), bucket_of(last, interval)
    while bucket <= end:
        out.append(bucket)
        bucket = next_bucket(bucket, interval)
    return out


def _daily_revenue(db: sqlite_utils.Database, lo: str, hi: str, conversion: str | None) -> dict[str, float]:
    ids = conversion_ids(db, conversion)
    if not ids:
        return {}
    return dict(
        db.execute(
            f"SELECT substr(hour, 1, 10), total(value) FROM rollup_metric_hours WHERE metric_id IN"
            f" ({','.join('?' * len(ids))}) AND hour >= ? AND hour < ? GROUP BY 1",
            [*ids, lo, hi],
        ).fetchall()
    )


def revenue_series(
    db: sqlite_utils.Database, period: Period, compare: Period | None = None, conversion: str | None = None
) -> tuple[list[str], list[float], list[float] | None]:
    """Revenue (the conversion metric's value) per bucket, and the compare period's revenue
    aligned bucket by bucket."""
    span = _span(db, period)
    if span is None:
        return [], [], None
    interval = interval_for(*span)
    labels = _buckets(*span, interval)
    values = dict.fromkeys(labels, 0.0)
    for day, value in _daily_revenue(db, span[0], span[1] + "T99", conversion).items():
        values[bucket_of(day, interval)] = values.get(bucket_of(day, interval), 0.0) + value
    previous = None
    if compare and compare.start and period.start:
        shift = period.start - compare.start
        before = [0.0] * len(labels)
        index = {b: i for i, b in enumerate(labels)}
        for day, value in _daily_revenue(db, compare.lo, compare.hi, conversion).items():
            moved = (dt.date.fromisoformat(day) + shift).isoformat()
            i = index.get(bucket_of(moved, interval))
            if i is not None:
                before[i] += value
        previous = [round(v, 2) for v in before]
    return labels, [round(values[b], 2) for b in labels], previous


def engagement_series(
    db: sqlite_utils.Database, period: Period, exclude_bot_clicks: Collection[str] = kc.BOT_CLICK_CHANNELS
) -> tuple[list[str], dict[str, list[float]]]:
    """Distinct (message, profile) deliveries, opens and clicks on email per bucket; bots'
    clicks count as clicks when `[reports] exclude_bot_clicks` leaves email out, as on the
    overview's click-rate card."""
    span = _span(db, period)
    if span is None:
        return [], {}
    interval = interval_for(*span)
    labels = _buckets(*span, interval)
    names = {"received": "Delivered", "opened": "Opened", "clicked": "Clicked", "bot_clicked": "Clicked"}
    if not counts_bots("email", exclude_bot_clicks):
        del names["bot_clicked"]
    series = {name: dict.fromkeys(labels, 0.0) for name in names.values()}
    for role, day, prev, profiles in db.execute(
        f"SELECT role, day, prev_day, sum(profiles) FROM rollup_channel_days"
        f" WHERE channel = 'email' AND role IN ({','.join('?' * len(names))})"
        f" AND day >= ? AND day <= ? GROUP BY 1, 2, 3",
        [*names, span[0], span[1]],
    ):
        bucket = bucket_of(day, interval)
        # Counted once per bucket: only on the pair's first day inside it.
        if prev == "" or bucket_of(prev, interval) != bucket:
            series[names[role]][bucket] += profiles
    if "bot_clicked" in names:
        # A pair with both a person's and a bot's click in a bucket is one clicker there.
        kinds: dict[tuple[str, str, str], set[bool]] = {}
        for day, message, profile, person, bot in click_days_of_both(
            db, span[0], next_bucket(span[1], "day"), channel="email"
        ):
            held = kinds.setdefault((bucket_of(day, interval), message, profile), set())
            held.update(kind for kind, made in ((False, person), (True, bot)) if made)
        for (bucket, _, _), held in kinds.items():
            if len(held) == 2:
                series["Clicked"][bucket] -= 1
    return labels, {name: [values[b] for b in labels] for name, values in series.items()}
