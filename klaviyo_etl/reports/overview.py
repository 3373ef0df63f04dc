"""`report overview`: the account's KPI cards for a period, each with its change.

Definitions (all over events inside the period: days of the account's timezone, as
Klaviyo counts them; UTC when no account is synced):
- revenue / orders: sum of $value / count of the conversion metric's events (the
  `[reports] conversion_metric` setting, or the "Placed Order" metric with most events).
- active_profiles: distinct profiles with any event.
- new_profiles: profiles created in the period (profiles.created).
- email_sends / sms_sends: received plus bounced (email) or failed (SMS) events on the
  channel (a send that failed is still a send).
- open_rate / click_rate: over email messages, distinct (message, profile) opens or clicks
  divided by distinct (message, profile) deliveries, the campaign definitions applied to
  the period's events; bots' clicks count only when `[reports] exclude_bot_clicks` leaves
  email out (LIVE_BEHAVIOUR.md §12).
- conversion_rate: distinct (message, profile) attributed conversions over distinct
  deliveries, all channels.
- form_submissions: "Form submitted by profile" events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.db.conversion import conversion_metric
from klaviyo_etl.db.local_days import local_days
from klaviyo_etl.db.rollups import clickers_of_both, ensure_rollups
from klaviyo_etl.reports import currency
from klaviyo_etl.reports.model import IDENTITY, KEY, Column, Report
from klaviyo_etl.reports.periods import Period, account_periods, change_pct, in_zone

if TYPE_CHECKING:
    from collections.abc import Collection

KPIS: list[tuple[str, str, str]] = [
    ("revenue", "Revenue", "money"),
    ("orders", "Orders", "int"),
    ("active_profiles", "Active profiles", "int"),
    ("new_profiles", "New profiles", "int"),
    ("email_sends", "Email sends", "int"),
    ("sms_sends", "SMS sends", "int"),
    ("open_rate", "Open rate", "rate"),
    ("click_rate", "Click rate", "rate"),
    ("conversion_rate", "Conversion rate", "rate"),
    ("form_submissions", "Form submissions", "int"),
]

COLUMNS = [
    Column("label", "KPI", priority=IDENTITY),
    Column("value", "Value", "kpi", KEY),
    Column("previous", "Previous", "kpi", KEY),
    Column("change_pct", "Change", "pct", KEY),
]


def metric_ids(db: sqlite_utils.Database, *names: str) -> list[str]:
    marks = ",".join("?" * len(names))
    return [
        r[0]
        for r in db.execute(f"SELECT id FROM metrics WHERE deleted_at IS NULL AND name IN ({marks})", names)
    ]


def _hour_sums(db: sqlite_utils.Database, ids: list[str], period: Period) -> tuple[int, float]:
    if not ids:
        return 0, 0.0
    events, value = db.execute(
        f"SELECT coalesce(sum(events), 0), total(value) FROM rollup_metric_hours"
        f" WHERE metric_id IN ({','.join('?' * len(ids))}) AND hour >= ? AND hour < ?",
        [*ids, period.lo, period.hi],
    ).fetchone()
    return events, value


def _pair_uniques(db: sqlite_utils.Database, period: Period) -> dict[str, dict[str, int]]:
    """Distinct (message, profile) pairs per channel and role among the period's message
    events; channel '*' sums every channel."""
    out: dict[str, dict[str, int]] = {"*": {}}
    for channel, role, pairs in db.execute(
        "SELECT channel, role, sum(profiles) FROM rollup_channel_days"
        " WHERE day >= ? AND day < ? AND (prev_day = '' OR prev_day < ?) GROUP BY 1, 2",
        [period.lo, period.hi, period.lo],
    ):
        out.setdefault(channel, {})[role] = pairs or 0
        out["*"][role] = out["*"].get(role, 0) + (pairs or 0)
    return out


def conversion_ids(db: sqlite_utils.Database, conversion: str | None = None) -> list[str]:
    """The conversion metric's id as a list (empty when none is synced), for revenue and orders."""
    picked = conversion_metric(db, conversion)
    return [picked.id] if picked else []


def kpis(
    db: sqlite_utils.Database,
    period: Period,
    conversion: str | None = None,
    exclude_bot_clicks: Collection[str] = kc.BOT_CLICK_CHANNELS,
) -> dict[str, float]:
    """Every KPI for one period (the rollups must be current: see ensure_rollups)."""
    period = in_zone(period, local_days(db))
    out: dict[str, float] = {}
    out["orders"], out["revenue"] = _hour_sums(db, conversion_ids(db, conversion), period)
    out["revenue"] = round(out["revenue"], 2)
    out["active_profiles"] = db.execute(
        "SELECT coalesce(sum(profiles), 0) FROM rollup_activity_days"
        " WHERE day >= ? AND day < ? AND (prev_day = '' OR prev_day < ?)",
        [period.lo, period.hi, period.lo],
    ).fetchone()[0]
    out["new_profiles"] = db.execute(
        "SELECT count(*) FROM profiles WHERE created >= ? AND created < ? AND deleted_at IS NULL",
        [period.utc_lo, period.utc_hi],
    ).fetchone()[0]
    for channel, key in (("email", "email_sends"), ("sms", "sms_sends")):
        roles = kc.CHANNEL_METRICS[channel]
        sends = [
            known for r in ("received", "bounced", "failed") if roles[r] for known in kc.known_as(roles[r])
        ]
        out[key] = _hour_sums(db, metric_ids(db, *sends), period)[0]
    pairs = _pair_uniques(db, period)
    email = pairs.get("email", {})
    delivered = email.get("received", 0)
    out["open_rate"] = round(email.get("opened", 0) / delivered, 6) if delivered else 0.0
    clicked = email.get("clicked", 0)
    if "email" not in exclude_bot_clicks and email.get("bot_clicked"):
        both = clickers_of_both(db, None, period.lo, period.hi, channel="email")
        clicked += email["bot_clicked"] - sum(both.values())
    out["click_rate"] = round(clicked / delivered, 6) if delivered else 0.0
    delivered_all = pairs["*"].get("received", 0)
    out["conversion_rate"] = (
        round(pairs["*"].get("conversion", 0) / delivered_all, 6) if delivered_all else 0.0
    )
    out["form_submissions"] = _hour_sums(db, metric_ids(db, kc.SUBMITTED_FORM), period)[0]
    return out


def overview_report(
    db: sqlite_utils.Database,
    period: Period,
    compare: Period | None = None,
    conversion: str | None = None,
    exclude_bot_clicks: Collection[str] = kc.BOT_CLICK_CHANNELS,
) -> Report:
    """The KPI cards; `conversion` and `exclude_bot_clicks`: the `[reports]` settings."""
    picked = conversion_metric(db, conversion)
    fresh = ensure_rollups(db, conversion=conversion)
    period, compare = account_periods(db, period, compare)
    current = kpis(db, period, conversion, exclude_bot_clicks)
    previous = kpis(db, compare, conversion, exclude_bot_clicks) if compare else {}
    rows = []
    for key, label, kind in KPIS:
        prev = previous.get(key) if compare else None
        rows.append(
            {
                "kpi": key,
                "label": label,
                "kind": kind,
                "value": current[key],
                "previous": prev,
                "change_pct": change_pct(current[key], prev),
            }
        )
    notes = list(fresh.notes)
    if not db.execute("SELECT 1 FROM events LIMIT 1").fetchone():
        notes.append("No events in the database yet: run `klaviyo-etl sync` first.")
    report = Report("overview", "Overview", COLUMNS, rows, period, compare, notes=notes)
    return report.set_conversion(picked).set_currency(currency.of_conversions(db, picked, period))
