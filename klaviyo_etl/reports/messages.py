"""Campaign and flow performance, with the figures defined in `klaviyo_etl.conventions`.

Figures come from the rollups (see `rollups.py`): per message and role, distinct profiles,
events and value. A campaign or flow sums its messages and recomputes the rates from the
sums, as Klaviyo does. Campaigns are picked by send time and counted over all their events;
flows never stop sending, so they are counted over the events inside the period.

Live accounts put the campaign id in a campaign event's `$message` (and `$attributed_message`);
older data and our sandbox used the campaign-message id. The rollups keep the raw id, and a
campaign sums the entities keyed by its own id AND by its messages' ids, so both conventions
give the campaign its figures. Only sent campaigns count (`conventions.SENT_STATUSES`),
archived ones included. SMS has no opens: its open rate and click-to-open rate are None.
Bots' clicks (`Bot Click` true) are left out of clicks and click rates, as Klaviyo leaves them
out by default, and a note says how many (LIVE_BEHAVIOUR.md §12). An account whose Klaviyo
setting counts them drops its channel from `[reports] exclude_bot_clicks`: the rollups keep bots'
clicks apart ('bot_clicked'), so the reports add them back without a rebuild, taking off the
profiles with both kinds of click once (`rollups.clickers_of_both`), and the note says so.

`--source klaviyo` reads Klaviyo's own Reporting API figures stored by `sync reports` in
`report_values` instead, in the same row shape, so the two can be set side by side.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Any

import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.db.conversion import conversion_metric
from klaviyo_etl.db.local_days import local_days
from klaviyo_etl.db.rollups import clickers_of_both, ensure_rollups
from klaviyo_etl.errors import UsageError, refuse_blank
from klaviyo_etl.reports import currency
from klaviyo_etl.reports.model import IDENTITY, KEY, USEFUL, Column, Report, sort_rows
from klaviyo_etl.reports.periods import Period, account_periods, change_pct, timeframe_period
from klaviyo_etl.wording import counted

# Counts a campaign or flow adds up over its messages (Klaviyo statistic names).
COUNTS = (
    "recipients",
    "delivered",
    "opens",
    "opens_unique",
    "clicks",
    "clicks_unique",
    "conversions",
    "conversion_uniques",
    "conversion_value",
    "unsubscribes",
    "unsubscribe_uniques",
    "bounced",
    "failed",
    "spam_complaints",
)
# Rates recomputed from the summed counts: name -> (numerator, denominator).
RATES = {
    "open_rate": ("opens_unique", "delivered"),
    "click_rate": ("clicks_unique", "delivered"),
    "click_to_open_rate": ("clicks_unique", "opens_unique"),
    "conversion_rate": ("conversion_uniques", "delivered"),
    "revenue_per_recipient": ("conversion_value", "delivered"),
    "unsubscribe_rate": ("unsubscribe_uniques", "delivered"),
    "bounce_rate": ("bounced", "recipients"),
    "failed_rate": ("failed", "recipients"),
    "spam_complaint_rate": ("spam_complaints", "delivered"),
}
# (statistic, role in the rollups, which measure of the role)
_FROM_ROLES = (
    ("recipients", "recipients", "profiles"),
    ("delivered", "received", "profiles"),
    ("opens", "opened", "events"),
    ("opens_unique", "opened", "profiles"),
    ("clicks", "clicked", "events"),
    ("clicks_unique", "clicked", "profiles"),
    ("conversions", "conversion", "events"),
    ("conversion_uniques", "conversion", "profiles"),
    ("conversion_value", "conversion", "value"),
    ("unsubscribes", "unsubscribed", "events"),
    ("unsubscribe_uniques", "unsubscribed", "profiles"),
    ("bounced", "bounced", "profiles"),
    ("failed", "failed", "profiles"),
    ("spam_complaints", "spam", "profiles"),
)

FIGURE_COLUMNS = [
    Column("recipients", "Recipients", "int", KEY, short="Recip."),
    Column("delivered", "Delivered", "int", USEFUL),
    Column("opens_unique", "Opens", "int"),
    Column("open_rate", "Open rate", "rate", KEY),
    Column("clicks_unique", "Clicks", "int"),
    Column("click_rate", "Click rate", "rate", KEY),
    Column("click_to_open_rate", "CTOR", "rate"),
    Column("conversions", "Conversions", "int", KEY, short="Conv."),
    Column("conversion_rate", "Conv. rate", "rate", USEFUL),
    Column("conversion_value", "Revenue", "money", KEY),
    Column("revenue_per_recipient", "Rev/recip.", "money"),
    Column("unsubscribes", "Unsubs", "int"),
    Column("bounced", "Bounces", "int"),
    Column("failed", "Failed", "int"),
    Column("spam_complaints", "Spam", "int"),
]
# Present in every row (JSON/CSV) but left out of the terminal table to keep it readable.
EXTRA_COLUMNS = [
    Column("opens", "Opens (all)", "int"),
    Column("clicks", "Clicks (all)", "int"),
    Column("conversion_uniques", "Converters", "int"),
    Column("unsubscribe_uniques", "Unsubscribers", "int"),
    Column("unsubscribe_rate", "Unsub rate", "rate"),
    Column("bounce_rate", "Bounce rate", "rate"),
    Column("failed_rate", "Failed rate", "rate"),
    Column("spam_complaint_rate", "Spam rate", "rate"),
]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


# Rates that need opens: not applicable (None) on a channel without them (SMS).
OPEN_RATES = ("open_rate", "click_to_open_rate")


def has_opens(channel: str | None) -> bool:
    """False for a channel Klaviyo records no opens on (SMS); unknown channels are given opens."""
    roles = kc.CHANNEL_METRICS.get(channel or "")
    return roles is None or roles.get("opened") is not None


def add_rates(figures: dict[str, Any], channel: str | None = None) -> dict[str, Any]:
    """Fill in every rate from the counts (a zero denominator gives 0.0); on a channel
    without opens (SMS) the open rate and click-to-open rate are None."""
    for name, (num, den) in RATES.items():
        if figures.get(num) is None or figures.get(den) is None:
            figures.setdefault(name, None)
        else:
            value = _ratio(figures[num], figures[den])
            figures[name] = round(value, 2 if name == "revenue_per_recipient" else 6)
    if not has_opens(channel):
        figures.update(dict.fromkeys(OPEN_RATES))
    if figures.get("conversion_value") is not None:
        figures["conversion_value"] = round(figures["conversion_value"], 2)
    return figures


def _empty_counts() -> dict[str, float]:
    return {name: 0 for name in COUNTS}


def role_sums(
    db: sqlite_utils.Database, kind: str, period: Period | None, ids: list[str] | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """{entity_id: {role: {profiles, events, value}}} for messages or forms.

    Without a period: all time. With one: events inside it, and each profile counted once
    per entity and role (see the prev_day note in rollups.py).
    """
    params: list[Any] = [kind]
    if period is None or (period.start is None and period.end is None):
        sql = "SELECT entity_id, role, profiles, events, value FROM rollup_entity_totals WHERE kind = ?"
    else:
        sql = (
            "SELECT entity_id, role,"
            " sum(CASE WHEN prev_day = '' OR prev_day < ? THEN profiles ELSE 0 END),"
            " sum(events), total(value) FROM rollup_entity_days"
            " WHERE kind = ? AND day >= ? AND day < ?"
        )
        params = [period.lo, kind, period.lo, period.hi]
    if ids is not None:
        if not ids:
            return {}
        sql += f" AND entity_id IN ({','.join('?' * len(ids))})"
        params += ids
    if period is not None and not (period.start is None and period.end is None):
        sql += " GROUP BY entity_id, role"
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for entity_id, role, profiles, events, value in db.execute(sql, params).fetchall():
        out[entity_id][role] = {"profiles": profiles or 0, "events": events or 0, "value": value or 0.0}
    return out


def message_counts(
    roles: dict[str, dict[str, float]], *, count_bots: bool = False, both: int = 0
) -> dict[str, float]:
    """One message's counts from its role sums. `count_bots`: its bots' clicks count as clicks
    too, and `both` (`rollups.clickers_of_both`) profiles that clicked as people and as bots
    count once among the clickers."""
    counts = _empty_counts()
    for statistic, role, measure in _FROM_ROLES:
        counts[statistic] = roles.get(role, {}).get(measure, 0)
    if count_bots:
        bots = roles.get("bot_clicked", {})
        counts["clicks"] += bots.get("events", 0)
        counts["clicks_unique"] += bots.get("profiles", 0) - both
    return counts


def bot_clicks(roles: dict[str, dict[str, float]]) -> int:
    """One message's clicks by bots (their `Bot Click` true)."""
    return int(roles.get("bot_clicked", {}).get("events", 0))


def counts_bots(channel: str | None, exclude_bot_clicks: Collection[str]) -> bool:
    """Whether a channel's bots' clicks count as clicks: not when `[reports] exclude_bot_clicks`
    names it (the default names every channel Klaviyo marks bots' clicks on)."""
    return channel in kc.BOT_CLICK_CHANNELS and channel not in exclude_bot_clicks


def both_kinds(
    db: sqlite_utils.Database,
    sums: dict[str, dict[str, dict[str, float]]],
    channels: dict[str, str | None],
    exclude_bot_clicks: Collection[str],
    period: Period | None = None,
) -> dict[str, int]:
    """`rollups.clickers_of_both` for the messages (id -> channel) whose bots' clicks count and
    that have any; nothing read when none does."""
    wanted = [
        mid
        for mid, channel in channels.items()
        if bot_clicks(sums.get(mid, {})) and counts_bots(channel, exclude_bot_clicks)
    ]
    if not wanted:
        return {}
    whole = period is None or (period.start is None and period.end is None)
    return clickers_of_both(db, wanted, None if whole else period.lo, None if whole else period.hi)


def bot_note(left_out: int, counted_in: int = 0) -> list[str]:
    """What was done with bots' clicks, when there were any (LIVE_BEHAVIOUR.md §12): an account
    whose Klaviyo setting differs from `[reports] exclude_bot_clicks` sees other clicks there."""
    notes = []
    if left_out:
        notes.append(
            f"{counted(left_out, 'bot click', grouped=True)} (Bot Click true) left out of clicks and"
            " click rates, as Klaviyo does by default ([reports] exclude_bot_clicks)."
        )
    if counted_in:
        notes.append(
            f"{counted(counted_in, 'bot click', grouped=True)} (Bot Click true) counted in clicks and"
            " click rates, as [reports] exclude_bot_clicks asks (Klaviyo leaves them out by default)."
        )
    return notes


def unknown_metric_notes(db: sqlite_utils.Database, channels: Iterable[str | None]) -> list[str]:
    """A note per channel of the rows whose deliveries no synced metric records under a name
    the reports know (`conventions.known_as`): they count 0, as every SMS delivery did once
    Klaviyo renamed its SMS metrics (LIVE_BEHAVIOUR.md §13), and a 0 must not pass for no
    sends. Nothing when no metric is synced at all."""
    synced = {name for (name,) in db.execute("SELECT name FROM metrics WHERE deleted_at IS NULL")}
    notes = []
    for channel in sorted({c for c in channels if c in kc.CHANNEL_METRICS}):
        received = kc.CHANNEL_METRICS[channel]["received"] or ""
        names = kc.known_as(received)
        if synced and not synced & set(names):
            listed = " or ".join(f'"{n}"' for n in names)
            notes.append(
                f"No {channel} deliveries counted: no synced metric is named {listed}"
                " (has Klaviyo renamed it?)."
            )
    return notes


def _sum_into(total: dict[str, float], counts: dict[str, float]) -> None:
    for name in COUNTS:
        total[name] += counts.get(name) or 0


def check_channel(channel: str | None) -> str | None:
    """--channel as given (None: every channel); a blank one is refused, not read as all."""
    refuse_blank("--channel", channel, f"one of {', '.join(kc.CAMPAIGN_CHANNELS)}")
    if channel and channel not in kc.CAMPAIGN_CHANNELS:
        raise UsageError(f"--channel {channel!r} is not one of {', '.join(kc.CAMPAIGN_CHANNELS)}")
    return channel


def _send_time_filter(period: Period) -> tuple[str, list[str]]:
    return (
        "coalesce(c.send_time, c.scheduled_at) >= ? AND coalesce(c.send_time, c.scheduled_at) < ?",
        [period.utc_lo, period.utc_hi],
    )


# Drafts, scheduled, queued and cancelled campaigns may carry a planned send time but never sent.
_SENT = ", ".join("?" * len(kc.SENT_STATUSES))


def campaigns_sent(db: sqlite_utils.Database, period: Period, channel: str | None) -> list[dict]:
    """Campaigns with a sent status (`conventions.SENT_STATUSES`) sent in the period, archived
    ones included."""
    where, params = _send_time_filter(period)
    sql = (
        "SELECT c.id, c.name, c.channel, c.status, coalesce(c.send_time, c.scheduled_at)"
        f" FROM campaigns c WHERE c.deleted_at IS NULL AND {where}"
        f" AND lower(coalesce(c.status, '')) IN ({_SENT})"
    )
    params += [s.lower() for s in kc.SENT_STATUSES]
    if channel:
        sql += " AND c.channel = ?"
        params.append(channel)
    return [
        {"campaign_id": cid, "name": name, "channel": ch, "status": status, "send_time": sent}
        for cid, name, ch, status, sent in db.execute(sql, params).fetchall()
    ]


def campaign_entities(db: sqlite_utils.Database, campaign_ids: list[str]) -> dict[str, list[str]]:
    """The rollup entity ids of each campaign: its own id first (live `$message`), then its
    messages' ids (the campaign-message convention)."""
    out: dict[str, list[str]] = {cid: [cid] for cid in campaign_ids}
    for cid, mids in _campaign_messages(db, campaign_ids).items():
        out[cid].extend(m for m in mids if m != cid)
    return out


def _campaign_messages(db: sqlite_utils.Database, campaign_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for start in range(0, len(campaign_ids), 500):
        chunk = campaign_ids[start : start + 500]
        for mid, cid in db.execute(
            "SELECT id, campaign_id FROM campaign_messages WHERE deleted_at IS NULL"
            f" AND campaign_id IN ({','.join('?' * len(chunk))})",
            chunk,
        ).fetchall():
            out[cid].append(mid)
    return out


CAMPAIGN_COLUMNS = [
    Column("name", "Campaign", priority=IDENTITY),
    Column("channel", "Channel", priority=USEFUL),
    Column("send_time", "Sent", "datetime", KEY),
    *FIGURE_COLUMNS,
]
CAMPAIGN_JSON_COLUMNS = [
    Column("campaign_id", "Campaign id"),
    Column("status", "Status"),
    *CAMPAIGN_COLUMNS,
    *EXTRA_COLUMNS,
]


def campaign_report(
    db: sqlite_utils.Database,
    period: Period,
    compare: Period | None = None,
    *,
    channel: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    source: str = "events",
    conversion: str | None = None,
    exclude_bot_clicks: Collection[str] = kc.BOT_CLICK_CHANNELS,
) -> Report:
    """Per campaign sent in the period: every figure, from events (default) or from Klaviyo.

    `meta.totals` sums every campaign of the period (before --limit); with `compare` it
    also holds the campaigns sent in the compare period and the change of each figure.
    `conversion` is the `[reports] conversion_metric` setting (None: the default rule),
    `exclude_bot_clicks` the `[reports] exclude_bot_clicks` one.
    """
    check_channel(channel)
    if source not in ("events", "klaviyo"):
        raise UsageError(f"--source {source!r} must be events or klaviyo")
    period, compare = account_periods(db, period, compare)
    picked = conversion_metric(db, conversion)
    rows, notes = _campaign_rows(db, period, channel, source, conversion, exclude_bot_clicks)
    totals: dict[str, Any] = {"campaigns": len(rows), **_totals(rows)}
    meta: dict[str, Any] = {"source": source, "totals": totals}
    if compare:
        before, _ = _campaign_rows(db, compare, channel, source, conversion, exclude_bot_clicks)
        meta["previous_totals"] = {"campaigns": len(before), **_totals(before)}
        meta["change_pct"] = {k: change_pct(v, meta["previous_totals"].get(k)) for k, v in totals.items()}
    rows = sort_rows(rows, CAMPAIGN_JSON_COLUMNS, sort, default="send_time:desc")
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        notes.append(
            f"No campaigns sent in {period.describe()}" + (f" on {channel}" if channel else "") + "."
        )
    report = Report("campaigns", "Campaigns", CAMPAIGN_COLUMNS, rows, period, compare, meta=meta, notes=notes)
    report.fields = ["campaign_id", "name", "channel", "status", "send_time", *COUNTS, *RATES]
    if compare:
        report.previous_rows = before
    return report.set_conversion(picked).set_currency(currency.of_conversions(db, picked, period))


def figure_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The totals of campaign or flow rows (see `_totals`), e.g. of several accounts' rows."""
    return _totals(rows)


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts summed over rows (rows without figures skipped) and the rates recomputed; the
    open rate and click-to-open rate only over the rows of channels with opens (None if none)."""
    total = _empty_counts()
    opening = _empty_counts()
    for row in rows:
        if row.get("recipients") is not None:
            _sum_into(total, row)
            if has_opens(row.get("channel")):
                _sum_into(opening, row)
    add_rates(total)
    if any(has_opens(r.get("channel")) for r in rows if r.get("recipients") is not None):
        with_opens = add_rates(opening)
        total.update({name: with_opens[name] for name in OPEN_RATES})
    else:
        total.update(dict.fromkeys(OPEN_RATES))
    return total


def _campaign_rows(
    db: sqlite_utils.Database,
    period: Period,
    channel: str | None,
    source: str,
    conversion: str | None = None,
    exclude_bot_clicks: Collection[str] = kc.BOT_CLICK_CHANNELS,
) -> tuple[list[dict[str, Any]], list[str]]:
    campaigns = campaigns_sent(db, period, channel)
    notes: list[str] = []
    if source == "events":
        notes.extend(ensure_rollups(db, conversion=conversion).notes)
        by_campaign = campaign_entities(db, [c["campaign_id"] for c in campaigns])
        entity_ids = [m for mids in by_campaign.values() for m in mids]
        sums = role_sums(db, "message", None, entity_ids)
        channels = {mid: row["channel"] for row in campaigns for mid in by_campaign[row["campaign_id"]]}
        both = both_kinds(db, sums, channels, exclude_bot_clicks)
        left_out = counted_in = 0
        for row in campaigns:
            total = _empty_counts()
            with_bots = counts_bots(row["channel"], exclude_bot_clicks)
            for mid in by_campaign.get(row["campaign_id"], []):
                roles = sums.get(mid, {})
                _sum_into(total, message_counts(roles, count_bots=with_bots, both=both.get(mid, 0)))
                if with_bots:
                    counted_in += bot_clicks(roles)
                else:
                    left_out += bot_clicks(roles)
            row.update(add_rates(total, row["channel"]))
        notes.extend(bot_note(left_out, counted_in))
        notes.extend(unknown_metric_notes(db, (row["channel"] for row in campaigns)))
    else:
        stored = klaviyo_values(db, "campaign-values", [c["campaign_id"] for c in campaigns])
        timeframe = stored_timeframe(db)
        begins = timeframe.lo if timeframe and timeframe.start else ""
        ends = timeframe.hi if timeframe and timeframe.end else "~"
        # Send times are UTC instants; the timeframe's days are the account's.
        sent_from = timeframe.utc_lo if timeframe and timeframe.start else ""
        sent_until = timeframe.utc_hi if timeframe and timeframe.end else "~"  # sorts after any time
        missing = older = newer = 0
        for row in campaigns:
            figures = stored.get(row["campaign_id"])
            if figures is None:
                # `sync reports` asks only about campaigns sent in its timeframe
                sent = row["send_time"] or ""
                if sent < sent_from:
                    older += 1
                elif sent >= sent_until:
                    newer += 1
                else:
                    missing += 1
                figures = dict.fromkeys([*COUNTS, *RATES])
            row.update(figures)
            if not has_opens(row["channel"]):
                row.update(dict.fromkeys(OPEN_RATES))
        if missing:
            notes.append(
                f"{missing} campaign(s) have no stored Reporting API figures;"
                " run `klaviyo-etl sync reports` to fetch them"
            )
        if older:
            notes.append(
                f"{older} campaign(s) sent before {begins}, where Klaviyo's stored figures begin,"
                " have none (the Reporting API reports on the 365 days before the day of the fetch)"
            )
        if newer:
            notes.append(
                f"{newer} campaign(s) sent since {ends}, where Klaviyo's stored figures end, have"
                " none yet (a `klaviyo-etl sync reports` on a later day fetches them)"
            )
    return campaigns, notes


def stored_timeframe(db: sqlite_utils.Database) -> Period | None:
    """The days the newest stored Reporting API figures cover (None: none stored)."""
    row = db.execute(
        "SELECT timeframe_start, timeframe_end, fetched_at FROM report_values"
        " ORDER BY fetched_at DESC LIMIT 1"
    ).fetchone()
    return timeframe_period(*row, local_days(db)) if row else None


def klaviyo_values(
    db: sqlite_utils.Database,
    report: str,
    entity_ids: list[str] | None = None,
    key: tuple[str, ...] = ("entity_id",),
) -> dict[Any, dict[str, Any]]:
    """Stored Reporting API statistics summed per entity (or per `key` columns).

    The newest fetch of each (entity, message, channel) is used; counts are added across
    messages and rates recomputed from the sums, so a one-message campaign shows exactly
    Klaviyo's numbers and a multi-message one the same aggregate Klaviyo's UI shows.
    """
    sql = (
        "SELECT entity_id, message_id, channel, statistics, fetched_at, timeframe_start,"
        " timeframe_end FROM report_values WHERE report = ?"
    )
    params: list[Any] = [report]
    rows = db.execute(sql, params).fetchall()
    wanted = set(entity_ids) if entity_ids is not None else None
    newest: dict[tuple, tuple] = {}
    for entity_id, message_id, channel, statistics, fetched_at, start, end in rows:
        if wanted is not None and entity_id not in wanted:
            continue
        k = (entity_id, message_id, channel)
        rank = (fetched_at or "", end or "", start or "")
        if k not in newest or rank > newest[k][0]:
            newest[k] = (rank, statistics)
    grouped: dict[Any, list[dict]] = defaultdict(list)
    for (entity_id, message_id, channel), (_rank, statistics) in newest.items():
        values = {"entity_id": entity_id, "message_id": message_id, "channel": channel}
        group = tuple(values[k] for k in key)
        grouped[group if len(key) > 1 else group[0]].append(json.loads(statistics or "{}"))
    out = {}
    for group, stats_list in grouped.items():
        if len(stats_list) == 1:
            figures = {name: stats_list[0].get(name) for name in (*COUNTS, *RATES)}
            if figures.get("conversion_value") is not None:
                figures["conversion_value"] = round(figures["conversion_value"], 2)
        else:
            figures = {name: sum((s.get(name) or 0) for s in stats_list) for name in COUNTS}
            add_rates(figures)
        out[group] = figures
    return out


FLOW_COLUMNS = [
    Column("name", "Flow", priority=IDENTITY),
    Column("channel", "Channel", priority=KEY),
    *FIGURE_COLUMNS,
]
FLOW_MESSAGE_COLUMNS = [
    Column("flow_name", "Flow", priority=IDENTITY, min_width=16),
    Column("name", "Message", priority=IDENTITY, min_width=16),
    Column("channel", "Channel", priority=USEFUL),
    *FIGURE_COLUMNS,
]


FLOW_CHANGES = ("recipients", "open_rate", "click_rate", "conversion_value")


def flow_report(
    db: sqlite_utils.Database,
    period: Period,
    *,
    by: str = "flow",
    channel: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
    source: str = "events",
    compare: Period | None = None,
    conversion: str | None = None,
    exclude_bot_clicks: Collection[str] = kc.BOT_CLICK_CHANNELS,
) -> Report:
    """Per flow and channel (by='flow') or per flow message (by='message'), over the
    events inside the period; with `compare`, each row also gets `<figure>_previous` and
    `<figure>_change_pct` for recipients, open rate, click rate and revenue. Archived flows
    keep their history. `conversion`: the `[reports] conversion_metric` setting;
    `exclude_bot_clicks`: the `[reports] exclude_bot_clicks` one."""
    period, compare = account_periods(db, period, compare)
    picked = conversion_metric(db, conversion)
    bots = {"conversion": conversion, "exclude_bot_clicks": exclude_bot_clicks}
    report = _flow_rows(db, period, by=by, channel=channel, source=source, **bots)
    key = ("message_id",) if by == "message" else ("flow_id", "channel")
    report.meta["totals"] = {"rows": len(report.rows), **_totals(report.rows)}
    if compare:
        if source == "klaviyo":
            raise UsageError(
                "--compare needs --source events (stored Klaviyo figures cover"
                " the timeframe they were fetched for)"
            )
        before = _flow_rows(db, compare, by=by, channel=channel, source=source, **bots)
        previous = {tuple(r[k] for k in key): r for r in before.rows}
        for row in report.rows:
            old = previous.get(tuple(row[k] for k in key), {})
            for figure in FLOW_CHANGES:
                row[f"{figure}_previous"] = old.get(figure)
                row[f"{figure}_change_pct"] = change_pct(row.get(figure), old.get(figure))
        report.columns = [
            *report.columns,
            *(Column(f"{f}_change_pct", f"Δ {f.replace('_', ' ')}", "pct") for f in FLOW_CHANGES[::3]),
        ]
        report.compare = compare
        report.meta["previous_totals"] = {"rows": len(before.rows), **_totals(before.rows)}
        report.previous_rows = before.rows
    json_columns = [
        Column("flow_id", "Flow id"),
        Column("message_id", "Message id"),
        Column("flow_name", "Flow"),
        Column("status", "Status"),
        *report.columns,
        *EXTRA_COLUMNS,
        *(Column(f"{f}_change_pct", f, "pct") for f in FLOW_CHANGES),
    ]
    report.rows = sort_rows(report.rows, json_columns, sort)
    if limit is not None:
        report.rows = report.rows[:limit]
    ids = ["flow_id", "flow_name", "message_id", "name"] if by == "message" else ["flow_id", "name", "status"]
    changes = [f"{f}_{end}" for f in FLOW_CHANGES for end in ("previous", "change_pct")] if compare else []
    report.fields = [*ids, "channel", *COUNTS, *RATES, *changes]
    return report.set_conversion(picked).set_currency(currency.of_conversions(db, picked, period))


def _flow_rows(
    db: sqlite_utils.Database,
    period: Period,
    *,
    by: str,
    channel: str | None,
    source: str,
    conversion: str | None = None,
    exclude_bot_clicks: Collection[str] = kc.BOT_CLICK_CHANNELS,
) -> Report:
    check_channel(channel)
    if by not in ("flow", "message"):
        raise UsageError(f"--by {by!r} must be flow or message")
    if source not in ("events", "klaviyo"):
        raise UsageError(f"--source {source!r} must be events or klaviyo")
    flows = {
        fid: {"name": name, "status": status}
        for fid, name, status in db.execute(
            "SELECT id, name, status FROM flows WHERE deleted_at IS NULL"
        ).fetchall()
    }
    deleted_flows = {r[0] for r in db.execute("SELECT id FROM flows WHERE deleted_at IS NOT NULL").fetchall()}
    messages: dict[str, dict[str, Any]] = {}
    for mid, fid, name, ch in db.execute(
        "SELECT id, flow_id, name, channel FROM flow_messages WHERE deleted_at IS NULL"
    ):
        messages[mid] = {"flow_id": fid, "name": name, "channel": ch}
    notes: list[str] = []
    if source == "events":
        notes.extend(ensure_rollups(db, conversion=conversion).notes)
        # Messages seen only through events (flow_messages not synced yet) still count.
        for mid, fid, ch in db.execute(
            "SELECT entity_id, flow_id, channel FROM rollup_entities"
            " WHERE kind = 'message' AND flow_id IS NOT NULL"
        ).fetchall():
            info = messages.setdefault(mid, {"flow_id": fid, "name": None, "channel": ch})
            info["channel"] = info["channel"] or ch
        messages = {m: i for m, i in messages.items() if i["flow_id"] and i["flow_id"] not in deleted_flows}
        sums = role_sums(db, "message", period, list(messages))
        channels = {mid: info["channel"] for mid, info in messages.items()}
        both = both_kinds(db, sums, channels, exclude_bot_clicks, period)
        per_message = {
            mid: add_rates(
                message_counts(
                    sums.get(mid, {}),
                    count_bots=counts_bots(ch, exclude_bot_clicks),
                    both=both.get(mid, 0),
                ),
                ch,
            )
            for mid, ch in channels.items()
        }
        shown = [mid for mid, ch in channels.items() if not channel or ch == channel]
        notes.extend(
            bot_note(
                sum(
                    bot_clicks(sums.get(m, {}))
                    for m in shown
                    if not counts_bots(channels[m], exclude_bot_clicks)
                ),
                sum(
                    bot_clicks(sums.get(m, {})) for m in shown if counts_bots(channels[m], exclude_bot_clicks)
                ),
            )
        )
        notes.extend(
            unknown_metric_notes(
                db, (i["channel"] for i in messages.values() if not channel or i["channel"] == channel)
            )
        )
    else:
        stored = klaviyo_values(db, "flow-values", None, key=("entity_id", "message_id", "channel"))
        per_message = {}
        for (fid, mid, ch), figures in stored.items():
            if fid in deleted_flows:
                continue
            info = messages.setdefault(mid, {"flow_id": fid, "name": None, "channel": ch})
            info["channel"] = info["channel"] or ch
            per_message[mid] = figures
            if not has_opens(info["channel"]):
                figures.update(dict.fromkeys(OPEN_RATES))
        messages = {m: i for m, i in messages.items() if m in per_message}
        notes.append(
            "Klaviyo figures as stored by the last `sync reports` (their timeframe, not --from/--to)."
        )
    rows: list[dict[str, Any]] = []
    if by == "message":
        for mid, info in messages.items():
            if channel and info["channel"] != channel:
                continue
            flow = flows.get(info["flow_id"], {})
            rows.append(
                {
                    "flow_id": info["flow_id"],
                    "flow_name": flow.get("name"),
                    "message_id": mid,
                    "name": info["name"],
                    "channel": info["channel"],
                    **per_message[mid],
                }
            )
        columns = list(FLOW_MESSAGE_COLUMNS)
    else:
        totals: dict[tuple[str, str | None], dict[str, float]] = {}
        for mid, info in messages.items():
            if channel and info["channel"] != channel:
                continue
            total = totals.setdefault((info["flow_id"], info["channel"]), _empty_counts())
            _sum_into(total, per_message[mid])
        for fid in flows:
            if not channel and not any(k[0] == fid for k in totals):
                totals[(fid, None)] = _empty_counts()  # a flow that sent nothing yet
        for (fid, ch), total in totals.items():
            flow = flows.get(fid, {})
            rows.append(
                {
                    "flow_id": fid,
                    "name": flow.get("name"),
                    "status": flow.get("status"),
                    "channel": ch,
                    **add_rates(total, ch),
                }
            )
        columns = list(FLOW_COLUMNS)
    rows.sort(
        key=lambda r: (r.get("flow_name") or r.get("name") or "", r.get("name") or "", r.get("channel") or "")
    )
    if not rows:
        notes.append("No flows" + (f" on {channel}" if channel else "") + " in the database.")
    # Flows seen only through their events (`sync events` alone): figures, but no names yet.
    unnamed = [r for r in rows if r["name"] is None or (by == "message" and r["flow_name"] is None)]
    if unnamed:
        what, streams = ("flow message", "flows flow_messages") if by == "message" else ("flow", "flows")
        notes.append(
            f"{counted(len(unnamed), what)} not synced yet, named –: `klaviyo-etl sync {streams}` names them."
        )
    return Report(
        "flows",
        "Flows" if by == "flow" else "Flow messages",
        columns,
        rows,
        period,
        meta={"source": source, "by": by},
        notes=notes,
    )
