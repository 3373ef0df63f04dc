"""`--source compare`: our figures from events beside Klaviyo's stored Reporting API figures.

Klaviyo reports a message over a timeframe (the last 365 days, ending at the start of the
day it was asked, so today's opens are not in it), while `report campaigns` counts all of a
campaign's events. To check that the two agree, each stored row is recomputed from our
events over the very timeframe Klaviyo used, message by message, and every figure that
differs is listed. `sync reports` stores the bounds it asked for; a row stored with a
timeframe key (older rows) is resolved as Klaviyo does, from the day of the fetch. Both
count the days of the account's timezone (`db/local_days.py`), as Klaviyo does.

Campaigns are compared per campaign and channel: live events carry the campaign id in
`$message`, so our side sums the entities keyed by the campaign id and by its messages' ids
(`messages.campaign_entities`), and Klaviyo's side sums its rows of the campaign's messages.
Flows are compared per flow message, the id their events carry.

Bots' clicks count as `[reports] exclude_bot_clicks` says; each row also holds them
(`bot_clicks`, and `bot_clickers`: the clickers they add) so that `klaviyo-etl check` can tell a
difference that is exactly the bots' clicks, the account's Klaviyo setting being the other one.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.db.conversion import conversion_metric
from klaviyo_etl.db.local_days import local_days
from klaviyo_etl.db.rollups import clickers_of_both, ensure_rollups
from klaviyo_etl.reports import currency
from klaviyo_etl.reports.messages import (
    COUNTS,
    add_rates,
    bot_clicks,
    campaign_entities,
    campaigns_sent,
    check_channel,
    counts_bots,
    message_counts,
    role_sums,
)
from klaviyo_etl.reports.model import IDENTITY, KEY, USEFUL, Column, Report, sort_rows
from klaviyo_etl.reports.periods import Period, in_zone, timeframe_period


def _stored(db: sqlite_utils.Database, report: str) -> list[dict[str, Any]]:
    """The newest stored row per (entity, message, channel)."""
    newest: dict[tuple, dict] = {}
    for row in db.execute(
        "SELECT entity_id, message_id, channel, timeframe_start, timeframe_end, statistics,"
        " fetched_at FROM report_values WHERE report = ?",
        [report],
    ).fetchall():
        entity_id, message_id, channel, start, end, statistics, fetched_at = row
        key = (entity_id, message_id, channel)
        if key not in newest or (fetched_at or "") > (newest[key]["fetched_at"] or ""):
            newest[key] = {
                "entity_id": entity_id,
                "message_id": message_id,
                "channel": channel,
                "start": start,
                "end": end,
                "fetched_at": fetched_at,
                "statistics": json.loads(statistics or "{}"),
            }
    return list(newest.values())


def _by_campaign(stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Klaviyo's rows of one campaign and channel as one row: counts summed over its messages
    (message_id kept when there is one message, None otherwise)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in stored:
        groups.setdefault((row["entity_id"], row["channel"]), []).append(row)
    out = []
    for rows in groups.values():
        if len(rows) == 1:
            out.append(rows[0])
            continue
        merged = dict(max(rows, key=lambda r: r["fetched_at"] or ""))
        merged["message_id"] = None
        merged["statistics"] = {f: sum((r["statistics"].get(f) or 0) for r in rows) for f in COUNTS}
        out.append(merged)
    return out


COLUMNS = [
    Column("name", "Name", priority=IDENTITY),
    Column("channel", "Channel", priority=USEFUL),
    Column("timeframe", "Timeframe"),
    Column("recipients", "Recipients", "int", KEY, short="Recip."),
    Column("klaviyo_recipients", "Klaviyo", "int", KEY),
    Column("opens_unique", "Opens", "int", USEFUL),
    Column("klaviyo_opens_unique", "Klaviyo", "int", USEFUL),
    Column("clicks_unique", "Clicks", "int", USEFUL),
    Column("klaviyo_clicks_unique", "Klaviyo", "int", USEFUL),
    Column("conversion_value", "Revenue", "money", KEY),
    Column("klaviyo_conversion_value", "Klaviyo", "money", KEY),
    Column("agree", "Agree", "text", KEY),
]
# Flows compare per message: the flow and the message name a row, as `flows --by message`.
FLOW_COLUMNS = [
    Column("name", "Flow", priority=IDENTITY, min_width=16),
    Column("message_name", "Message", priority=IDENTITY, min_width=16),
    *COLUMNS[1:],
]


def compare_report(
    db: sqlite_utils.Database,
    report: str,
    period: Period,
    *,
    channel: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    conversion: str | None = None,
    exclude_bot_clicks: Collection[str] = kc.BOT_CLICK_CHANNELS,
) -> Report:
    """One row per stored Klaviyo row (per campaign and channel for campaigns): both sides'
    figures and the ones that differ.

    For campaigns the period picks campaigns by send time, as in `report campaigns`; for
    flows every stored row is compared (its timeframe is Klaviyo's, not --from/--to).
    `conversion`: the `[reports] conversion_metric` setting; `exclude_bot_clicks`: the
    `[reports] exclude_bot_clicks` one.
    """
    check_channel(channel)
    picked = conversion_metric(db, conversion)
    fresh = ensure_rollups(db, conversion=conversion)
    days = local_days(db)
    period = in_zone(period, days)
    stored_rows = _stored(db, report)
    if report == "campaign-values":
        names = {c["campaign_id"]: c["name"] for c in campaigns_sent(db, period, channel)}
        kind = "campaigns"
        entities = campaign_entities(db, list(names))
        stored_rows = _by_campaign(stored_rows)
    else:
        names = dict(db.execute("SELECT id, name FROM flows WHERE deleted_at IS NULL"))
        kind = "flows"
        entities = {}
        # A row per flow message: the message's name tells two emails of one flow apart.
        message_names = dict(db.execute("SELECT id, name FROM flow_messages"))
    rows = []
    for stored in stored_rows:
        if stored["entity_id"] not in names or (channel and stored["channel"] != channel):
            continue
        timeframe = timeframe_period(stored["start"], stored["end"], stored["fetched_at"], days)
        theirs = stored["statistics"]
        row: dict[str, Any] = {
            "entity_id": stored["entity_id"],
            "name": names[stored["entity_id"]],
            "message_id": stored["message_id"],
            **({"message_name": message_names.get(stored["message_id"])} if kind == "flows" else {}),
            "channel": stored["channel"],
            "timeframe": timeframe.describe() if timeframe else stored["start"],
            "fetched_at": stored["fetched_at"],
        }
        if timeframe is None:
            row.update(agree=None, differences={}, note="unknown timeframe")
            rows.append(row)
            continue
        keys = entities.get(stored["entity_id"]) or [stored["message_id"]]
        sums = role_sums(db, "message", timeframe, keys)
        with_bots = counts_bots(stored["channel"], exclude_bot_clicks)
        bots = {key: sums.get(key, {}).get("bot_clicked", {}) for key in keys}
        with_bots_keys = [key for key in keys if bot_clicks(sums.get(key, {}))]
        both = clickers_of_both(db, with_bots_keys, timeframe.lo, timeframe.hi) if with_bots_keys else {}
        ours = {name: 0 for name in COUNTS}
        for key in keys:
            counts = message_counts(sums.get(key, {}), count_bots=with_bots, both=both.get(key, 0))
            for name, value in counts.items():
                ours[name] += value
        ours = add_rates(ours, stored["channel"])
        row["bots_counted"] = with_bots
        row["bot_clicks"] = sum(b.get("events", 0) for b in bots.values())
        row["bot_clickers"] = sum(b.get("profiles", 0) - both.get(k, 0) for k, b in bots.items())
        differences = {}
        for figure in COUNTS:
            mine, klaviyo = ours.get(figure), theirs.get(figure)
            row[figure], row[f"klaviyo_{figure}"] = mine, klaviyo
            tolerance = 0.01 if figure == "conversion_value" else 1e-9
            if klaviyo is not None and abs((mine or 0) - klaviyo) > tolerance:
                differences[figure] = {"events": mine, "klaviyo": klaviyo}
        row["differences"] = differences
        row["agree"] = "yes" if not differences else "no: " + ", ".join(differences)
        rows.append(row)
    rows.sort(key=lambda r: (r["name"] or "", r["message_id"] or "", r["entity_id"] or ""))
    all_columns = [
        *COLUMNS,
        Column("entity_id", "Id"),
        Column("message_id", "Message"),
        *(Column(f, f, "int") for f in COUNTS),
        *(Column(f"klaviyo_{f}", f, "int") for f in COUNTS),
    ]
    rows = sort_rows(rows, all_columns, sort)
    if limit is not None:
        rows = rows[:limit]
    agreeing = sum(1 for r in rows if r["agree"] == "yes")
    notes = [
        f"{agreeing} of {len(rows)} stored Klaviyo rows agree with the events on every"
        " count (each recomputed over Klaviyo's own timeframe)."
    ]
    if not rows:
        notes = [
            f"No stored Reporting API figures for {kind}"
            + (f" sent in {period.describe()}" if kind == "campaigns" else "")
            + ": run `klaviyo-etl sync metrics campaigns flows reports` first."
        ]
    notes = [*fresh.notes, *notes]
    return (
        Report(
            kind,
            f"{kind.title()}: events vs Klaviyo",
            COLUMNS if kind == "campaigns" else FLOW_COLUMNS,
            rows,
            period,
            meta={"source": "compare", "compared": len(rows), "agree": agreeing},
            notes=notes,
        )
        .set_conversion(picked)
        .set_currency(currency.of_conversions(db, picked, period))
    )
