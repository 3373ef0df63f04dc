"""Customers from their orders: RFM segments and monthly retention cohorts.

Orders are Placed Order events (not deleted) with a profile.

RFM, over the orders in the period as of its last day: recency = days since the last
order, frequency = orders, monetary = their summed $value. Each is scored 1-5 by rank
among the period's customers: score = 1 + floor(5 * k / n), where k is how many customers
are strictly worse (a larger recency, a smaller frequency or monetary value) and n is the
customer count, so ties share a score. Segments follow the usual recency x frequency grid
(Champions, Loyal Customers, ...).

Cohorts: a customer belongs to the month of their first order ever; the period picks which
cohorts to show. Month k of a cohort counts its customers with an order k months later.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any

import sqlite_utils

from klaviyo_etl.db.local_days import days_in, local_days
from klaviyo_etl.db.rollups import ensure_rollups
from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports import currency
from klaviyo_etl.reports.model import IDENTITY, KEY, USEFUL, Column, Report, sort_rows
from klaviyo_etl.reports.overview import conversion_ids
from klaviyo_etl.reports.periods import Period, change_pct, in_zone

# (R pattern, F pattern) -> segment, in the order they are tried.
SEGMENTS: list[tuple[str, str]] = [
    (r"[1-2][1-2]", "Hibernating"),
    (r"[1-2][3-4]", "At Risk"),
    (r"[1-2]5", "Can't Lose Them"),
    (r"3[1-2]", "About to Sleep"),
    (r"33", "Need Attention"),
    (r"[3-4][4-5]", "Loyal Customers"),
    (r"41", "Promising"),
    (r"51", "New Customers"),
    (r"[4-5][2-3]", "Potential Loyalists"),
    (r"5[4-5]", "Champions"),
]
SEGMENT_ORDER = [
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
]


def segment_of(r: int, f: int) -> str:
    code = f"{r}{f}"
    for pattern, name in SEGMENTS:
        if re.fullmatch(pattern, code):
            return name
    raise ValueError(f"no RFM segment for R={r} F={f}")  # every 1-5 pair matches one


def _scores(values: list[float], higher_is_better: bool) -> list[int]:
    """1 + floor(5 * (number strictly worse) / n) for each value."""
    n = len(values)
    ordered = sorted(values)
    from bisect import bisect_left, bisect_right

    out = []
    for v in values:
        worse = bisect_left(ordered, v) if higher_is_better else n - bisect_right(ordered, v)
        out.append(1 + (5 * worse) // n)
    return out


def _orders(db: sqlite_utils.Database, period: Period | None, conversion: str | None = None):
    """(profile, datetime, value) of the conversion metric's events (one "Placed Order" of
    several: see db/conversion.py), in the period."""
    ids = conversion_ids(db, conversion)
    if not ids:
        return []
    sql = (
        f"SELECT profile_id, datetime, value FROM events WHERE metric_id IN"
        f" ({','.join('?' * len(ids))}) AND deleted_at IS NULL AND profile_id IS NOT NULL"
    )
    params: list[Any] = list(ids)
    if period is not None:
        sql += " AND datetime >= ? AND datetime < ?"
        params += [period.utc_lo, period.utc_hi]
    return db.execute(sql, params).fetchall()


def rfm_scores(
    db: sqlite_utils.Database, period: Period, conversion: str | None = None
) -> list[dict[str, Any]]:
    """One row per customer who ordered in the period, with R, F, M and segment (days: the
    account's)."""
    period = in_zone(period, local_days(db))
    days = days_in(period.zone)
    as_of = period.last_day or days.today()
    per: dict[str, dict[str, Any]] = {}
    for profile, when, value in _orders(db, period, conversion):
        row = per.setdefault(profile, {"last": "", "frequency": 0, "monetary": 0.0})
        row["last"] = max(row["last"], days.day_of(when))
        row["frequency"] += 1
        row["monetary"] += value or 0.0
    profiles = list(per)
    rows = []
    for profile in profiles:
        row = per[profile]
        recency = (as_of - dt.date.fromisoformat(row["last"])).days
        rows.append(
            {
                "profile_id": profile,
                "last_order": row["last"],
                "recency_days": max(recency, 0),
                "frequency": row["frequency"],
                "monetary": round(row["monetary"], 2),
            }
        )
    if not rows:
        return []
    r = _scores([x["recency_days"] for x in rows], higher_is_better=False)
    f = _scores([x["frequency"] for x in rows], higher_is_better=True)
    m = _scores([x["monetary"] for x in rows], higher_is_better=True)
    for row, rs, fs, ms in zip(rows, r, f, m, strict=True):
        row.update({"r": rs, "f": fs, "m": ms, "rfm": f"{rs}{fs}{ms}", "segment": segment_of(rs, fs)})
    return rows


RFM_SEGMENT_COLUMNS = [
    Column("segment", "Segment", priority=IDENTITY),
    Column("customers", "Customers", "int", KEY),
    Column("share", "Share", "rate", KEY),
    Column("recency_days", "Avg recency (d)", "float", USEFUL),
    Column("frequency", "Avg orders", "float", USEFUL),
    Column("monetary", "Avg value", "money", USEFUL),
    Column("revenue", "Revenue", "money", KEY),
]
RFM_PROFILE_COLUMNS = [
    Column("profile_id", "Profile", priority=USEFUL),
    Column("email", "Email", priority=IDENTITY),
    Column("recency_days", "Recency (d)", "int", KEY),
    Column("frequency", "Orders", "int", KEY),
    Column("monetary", "Value", "money", KEY),
    Column("rfm", "RFM", priority=KEY),
    Column("segment", "Segment", priority=KEY),
]


def _by_segment(scored: list[dict]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in scored:
        groups[row["segment"]].append(row)
    total = len(scored)
    out = {}
    for name in SEGMENT_ORDER:
        members = groups.get(name, [])
        n = len(members)
        out[name] = {
            "segment": name,
            "customers": n,
            "share": round(n / total, 6) if total else 0.0,
            "recency_days": round(sum(x["recency_days"] for x in members) / n, 2) if n else None,
            "frequency": round(sum(x["frequency"] for x in members) / n, 3) if n else None,
            "monetary": round(sum(x["monetary"] for x in members) / n, 2) if n else None,
            "revenue": round(sum(x["monetary"] for x in members), 2),
        }
    return out


def rfm_report(
    db: sqlite_utils.Database,
    period: Period,
    compare: Period | None = None,
    *,
    by: str = "segment",
    sort: str | None = None,
    limit: int | None = None,
    conversion: str | None = None,
) -> Report:
    """RFM over the conversion metric's orders (`conversion`: the `[reports]
    conversion_metric` setting)."""
    if by not in ("segment", "profile"):
        raise UsageError(f"--by {by!r} must be segment or profile")
    days = local_days(db)
    period, compare = in_zone(period, days), in_zone(compare, days)
    scored = rfm_scores(db, period, conversion)
    notes = [] if scored else [f"No orders in {period.describe()}."]
    meta = {"as_of": (period.last_day or days.today()).isoformat(), "by": by, "customers": len(scored)}
    if by == "profile":
        emails = {}
        ids = [r["profile_id"] for r in scored]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            emails.update(
                db.execute(
                    f"SELECT id, email FROM profiles WHERE id IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
            )
        for row in scored:
            row["email"] = emails.get(row["profile_id"])
        columns = RFM_PROFILE_COLUMNS
        rows = sort_rows(
            scored,
            [
                *columns,
                Column("r", "R", "int"),
                Column("f", "F", "int"),
                Column("m", "M", "int"),
                Column("last_order", "Last order"),
            ],
            sort,
            default="monetary",
        )
    else:
        columns = list(RFM_SEGMENT_COLUMNS)
        groups = _by_segment(scored)
        rows = list(groups.values())
        if compare:
            before = _by_segment(rfm_scores(db, compare, conversion))
            for row in rows:
                prev = before[row["segment"]]["customers"]
                row["customers_previous"] = prev
                row["customers_change_pct"] = change_pct(row["customers"], prev)
            columns.append(Column("customers_change_pct", "Δ customers", "pct"))
        rows = sort_rows(rows, columns, sort)
    if limit is not None:
        rows = rows[:limit]
    report = Report("rfm", f"RFM by {by}", columns, rows, period, compare, meta=meta, notes=notes)
    return report.set_currency(_currencies(db, period, conversion))


def _currencies(db: sqlite_utils.Database, period: Period | None, conversion: str | None) -> list[dict]:
    """The currencies of the conversion metric's orders in `period` (None: all time), from the
    rollups (brought up to date first, as the other reports do)."""
    ensure_rollups(db, conversion=conversion)
    return currency.currencies(db, conversion_ids(db, conversion), period)


def _month_index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def _month_overlaps(month: str, period: Period) -> bool:
    """Whether the calendar month shares a day with the period."""
    index = _month_index(month) + 1
    following = f"{index // 12:04d}-{index % 12 + 1:02d}-01"
    return month + "-01" < period.hi and following > period.lo


def cohort_report(
    db: sqlite_utils.Database,
    period: Period,
    *,
    months: int = 12,
    now: dt.date | None = None,
    conversion: str | None = None,
) -> Report:
    """Retention by first-order month: share of each cohort ordering again k months later."""
    if months < 1:
        raise UsageError("--months must be at least 1")
    days = local_days(db)
    period = in_zone(period, days)
    current = _month_index((now or days.today()).isoformat())
    first: dict[str, str] = {}
    active: dict[tuple[str, str], float] = {}
    for profile, when, value in _orders(db, None, conversion):
        month = days.day_of(when)[:7]
        if profile not in first or month < first[profile]:
            first[profile] = month
        active[(profile, month)] = active.get((profile, month), 0.0) + (value or 0.0)
    cohorts: dict[str, dict[str, Any]] = {}
    for month in sorted(set(first.values())):
        if _month_overlaps(month, period):
            cohorts[month] = {"customers": 0, "active": defaultdict(int), "revenue": defaultdict(float)}
    for month in first.values():
        if month in cohorts:
            cohorts[month]["customers"] += 1
    for (profile, month), value in active.items():
        cohort_month = first[profile]
        if cohort_month not in cohorts:
            continue
        k = _month_index(month) - _month_index(cohort_month)
        cohorts[cohort_month]["active"][k] += 1
        cohorts[cohort_month]["revenue"][k] += value
    rows = []
    for month in sorted(cohorts):
        data = cohorts[month]
        span = min(months, current - _month_index(month) + 1)
        n = data["customers"]
        row: dict[str, Any] = {
            "cohort": month,
            "customers": n,
            "active": [data["active"].get(k, 0) for k in range(span)],
            "retention": [round(data["active"].get(k, 0) / n, 6) for k in range(span)],
            "revenue": [round(data["revenue"].get(k, 0.0), 2) for k in range(span)],
        }
        for k in range(span):
            row[f"m{k}"] = row["retention"][k]
        rows.append(row)
    width = max((len(r["retention"]) for r in rows), default=0)
    columns = [
        Column("cohort", "Cohort", priority=IDENTITY),
        Column("customers", "Customers", "int", KEY),
        *[Column(f"m{k}", f"M{k}", "rate") for k in range(width)],
    ]
    notes = [] if rows else [f"No first orders in {period.describe()}."]
    report = Report(
        "cohorts", "Monthly retention cohorts", columns, rows, period, meta={"months": months}, notes=notes
    )
    return report.set_currency(_currencies(db, None, conversion))  # the revenue of every order
