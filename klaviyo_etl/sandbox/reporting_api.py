"""Klaviyo's Reporting API (campaign/flow values reports) and metric aggregates, computed from
the sandbox's own events.

Figures follow the definitions in `klaviyo_etl.conventions`, so a report fetched from the
sandbox must equal the same figure counted directly over the synced events: that equality is
what the report tests check, end to end.
"""

from __future__ import annotations

import json
import math
import uuid
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from klaviyo_etl import conventions as kc
from klaviyo_etl.endpoints import contract
from klaviyo_etl.sandbox.data import SandboxData
from klaviyo_etl.sandbox.events import NONE
from klaviyo_etl.sandbox.filters import FilterError, Term, as_epoch, matches, parse_filter
from klaviyo_etl.sandbox.store import MessageInfo, bot_click
from klaviyo_etl.sandbox.wire import Request, bad_request
from klaviyo_etl.timeutil import epoch_to_iso

# How the Reporting API names channels (it says push-notification where messages say mobile_push).
SEND_CHANNEL = {"email": "email", "sms": "sms", "mobile_push": "push-notification"}
MAX_TIMEFRAME = timedelta(days=366)
SUPPORTED_GROUPINGS = {
    "campaign": (
        "campaign_id",
        "campaign_message_id",
        "campaign_message_name",
        "send_channel",
        "variation",
        "variation_name",
    ),
    "flow": (
        "flow_id",
        "flow_message_id",
        "flow_message_name",
        "flow_name",
        "send_channel",
        "variation",
        "variation_name",
    ),
}
REQUIRED_GROUPINGS = {
    "campaign": ("campaign_id", "campaign_message_id"),
    "flow": ("flow_id", "flow_message_id"),
}
DEFAULT_GROUPINGS = {
    "campaign": ["campaign_id", "campaign_message_id", "send_channel"],
    "flow": ["flow_id", "flow_message_id", "send_channel"],
}
SMS_SEGMENT_PRICE = 0.01  # dollars per SMS segment, for text_message_spend/roi


def _bad(detail: str, pointer: str) -> Exception:
    return bad_request(detail, pointer=pointer)


def _zone(name: object) -> ZoneInfo | None:
    """The IANA timezone `name`; None when it names none."""
    try:
        return ZoneInfo(name) if isinstance(name, str) else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _iso(text: str) -> datetime:
    """An ISO 8601 datetime as written (naive when it has no offset). Raises ValueError."""
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


def _wall_clock(text: str, zone: ZoneInfo) -> datetime:
    """An ISO datetime's wall-clock time read in `zone`, its offset ignored (spec
    `CustomTimeframe`: "Offset is ignored and the company timezone is used"), as UTC."""
    naive = _iso(text).replace(tzinfo=None)
    return naive.replace(tzinfo=zone).astimezone(UTC)


def timeframe_bounds(timeframe: Any, now: datetime, timezone: str = "UTC") -> tuple[datetime, datetime]:
    """[start, end) of a Reporting API timeframe as UTC instants, its days counted in the
    company's `timezone` (`SandboxConfig.timezone`), as Klaviyo counts them (LIVE_BEHAVIOUR.md
    §6, §8): a key from the company's today, custom bounds read on the company's clock."""
    if not isinstance(timeframe, dict):
        raise _bad(
            "timeframe must be an object with 'key' or 'start' and 'end'.", "/data/attributes/timeframe"
        )
    zone = _zone(timezone) or ZoneInfo("UTC")
    if "key" in timeframe:
        return _keyed(timeframe["key"], now, zone)
    try:
        start = _wall_clock(timeframe["start"], zone)
        end = _wall_clock(timeframe["end"], zone)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise _bad("A custom timeframe needs ISO 'start' and 'end'.", "/data/attributes/timeframe") from exc
    if end <= start:
        raise _bad("timeframe end must be after start.", "/data/attributes/timeframe")
    if end - start > MAX_TIMEFRAME:
        raise _bad("timeframe may span at most one year.", "/data/attributes/timeframe")
    return start, end


def _keyed(key: str, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """A timeframe key's [start, end) from the company's today, as UTC instants."""
    start, end = _keyed_days(key, now.astimezone(zone).replace(tzinfo=None))
    return start.replace(tzinfo=zone).astimezone(UTC), end.replace(tzinfo=zone).astimezone(UTC)


def _keyed_days(key: str, now: datetime) -> tuple[datetime, datetime]:
    """A timeframe key's [start, end) on the wall clock of `now` (naive, the company's)."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    year = today.replace(month=1, day=1)
    previous_month = (month - timedelta(days=1)).replace(day=1)
    days = {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90, "last_365_days": 365}
    if key in days:
        return today - timedelta(days=days[key]), today
    months = {"last_3_months": 3, "last_12_months": 12}
    if key in months:
        start = month
        for _ in range(months[key]):
            start = (start - timedelta(days=1)).replace(day=1)
        return start, month
    table = {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "this_week": (week, week + timedelta(days=7)),
        "last_week": (week - timedelta(days=7), week),
        "this_month": (month, (month + timedelta(days=32)).replace(day=1)),
        "last_month": (previous_month, month),
        "this_year": (year, year.replace(year=year.year + 1)),
        "last_year": (year.replace(year=year.year - 1), year),
    }
    if key not in table:
        raise _bad(f"Unknown timeframe key {key!r}.", "/data/attributes/timeframe/key")
    return table[key]


@dataclass
class MessageFigures:
    """Counters for one message over the timeframe."""

    recipients: set = field(default_factory=set)
    delivered: set = field(default_factory=set)
    opens: int = 0
    openers: set = field(default_factory=set)
    clicks: int = 0
    clickers: set = field(default_factory=set)
    unsubscribes: int = 0
    unsubscribers: set = field(default_factory=set)
    bounced: set = field(default_factory=set)
    failed: set = field(default_factory=set)
    spam: set = field(default_factory=set)
    conversions: int = 0
    converters: set = field(default_factory=set)
    conversion_value: float = 0.0

    def statistics(self, channel: str) -> dict[str, float | int | None]:
        def rate(n: float, d: float) -> float:
            return n / d if d else 0.0

        recipients = len(self.recipients)
        delivered = len(self.delivered)
        value = round(self.conversion_value, 2)
        bounced_or_failed = len(self.bounced | self.failed)
        segments = delivered if channel == "sms" else 0
        # SMS has no opens: the sandbox answers null for its open rates (live: unknown, see
        # LIVE_BEHAVIOUR.md §5).
        has_opens = kc.CHANNEL_METRICS[channel]["opened"] is not None
        spend = round(segments * SMS_SEGMENT_PRICE, 2)
        return {
            "recipients": recipients,
            "delivered": delivered,
            "delivery_rate": rate(delivered, recipients),
            "opens": self.opens,
            "opens_unique": len(self.openers),
            "open_rate": rate(len(self.openers), delivered) if has_opens else None,
            "clicks": self.clicks,
            "clicks_unique": len(self.clickers),
            "click_rate": rate(len(self.clickers), delivered),
            "click_to_open_rate": rate(len(self.clickers), len(self.openers)) if has_opens else None,
            "conversions": self.conversions,
            "conversion_uniques": len(self.converters),
            "conversion_value": value,
            "conversion_rate": rate(len(self.converters), delivered),
            "revenue_per_recipient": round(rate(value, delivered), 2),
            "average_order_value": round(rate(value, self.conversions), 2),
            "unsubscribes": self.unsubscribes,
            "unsubscribe_uniques": len(self.unsubscribers),
            "unsubscribe_rate": rate(len(self.unsubscribers), delivered),
            "bounced": len(self.bounced),
            "bounce_rate": rate(len(self.bounced), recipients),
            "failed": len(self.failed),
            "failed_rate": rate(len(self.failed), recipients),
            "bounced_or_failed": bounced_or_failed,
            "bounced_or_failed_rate": rate(bounced_or_failed, recipients),
            "spam_complaints": len(self.spam),
            "spam_complaint_rate": rate(len(self.spam), delivered),
            "message_segment_count_sum": segments,
            "text_message_credit_usage_amount": segments,
            "text_message_spend": spend,
            "text_message_roi": rate(value, spend),
        }


def message_figures(
    data: SandboxData, kind: str, conversion_metric: int | None, start: float, end: float
) -> dict[int, MessageFigures]:
    """Figures per message index of `kind` ('campaign' | 'flow') over events in [start, end)."""
    events = data.events
    roles: dict[int, str] = {}  # every metric of a role's name plays the role, under its own id
    for by_role in kc.CHANNEL_METRICS.values():
        for role, name in by_role.items():
            for m in data.metrics_named.get(name or "", []):
                roles[m] = role
    lo = bisect_left(events.ts, math.ceil(start))
    hi = bisect_left(events.ts, math.ceil(end))
    messages = data.messages
    out: dict[int, MessageFigures] = {}
    deleted = events.deleted
    skip_bots = data.config.exclude_bot_clicks  # the account's setting (LIVE_BEHAVIOUR.md §12)
    ev_msg, ev_attr, ev_metric, ev_profile = events.msg, events.attr, events.metric, events.profile
    for i in range(lo, hi):
        mi = ev_msg[i]
        ai = ev_attr[i]
        if mi == NONE and ai == NONE:
            continue
        if deleted and events.num[i] in deleted:
            continue
        m = ev_metric[i]
        p = ev_profile[i]
        if mi != NONE:
            if messages[mi].kind != kind:
                continue
            role = roles.get(m)
            if role is None:
                continue
            f = out.get(mi)
            if f is None:
                f = out[mi] = MessageFigures()
            if role == "received":
                f.recipients.add(p)
                f.delivered.add(p)
            elif role == "bounced":
                f.recipients.add(p)
                f.bounced.add(p)
            elif role == "failed":  # an SMS that was not delivered: not a bounce
                f.recipients.add(p)
                f.failed.add(p)
            elif role == "opened":
                f.opens += 1
                f.openers.add(p)
            elif role == "clicked":
                if skip_bots and bot_click(events.num[i]):
                    continue
                f.clicks += 1
                f.clickers.add(p)
            elif role == "unsubscribed":
                f.unsubscribes += 1
                f.unsubscribers.add(p)
            elif role == "spam":
                f.spam.add(p)
        elif m == conversion_metric and messages[ai].kind == kind:
            f = out.get(ai)
            if f is None:
                f = out[ai] = MessageFigures()
            f.conversions += 1
            f.converters.add(p)
            f.conversion_value += events.value[i]
    return out


def _groupings(data: SandboxData, message: MessageInfo, group_by: list[str]) -> dict[str, str]:
    parent_kind = message.kind
    parent = data.resources[parent_kind].get(message.parent_id)
    values = {
        "campaign_id": message.parent_id,
        "flow_id": message.parent_id,
        "campaign_message_id": message.id,
        "flow_message_id": message.id,
        "campaign_message_name": message.label,
        "flow_message_name": message.label,
        "flow_name": parent["attributes"]["name"] if parent else None,
        "send_channel": SEND_CHANNEL[message.channel],
        "variation": message.id,
        "variation_name": message.label,
    }
    return {g: values[g] for g in group_by}


def _report_filter(text: str | None, kind: str) -> list[Term]:
    if not text:
        return []
    terms = parse_filter(text)
    allowed = set(SUPPORTED_GROUPINGS[kind])
    seen = set()
    for term in terms:
        if term.field not in allowed:
            raise FilterError(f"'{term.field}' is not a valid filter field for this report")
        if term.op not in ("equals", "contains-any", "any"):
            raise FilterError(f"'{term.op}' is not a valid operator; use equals or contains-any")
        if term.field in seen:
            raise FilterError(f"only one filter per attribute ('{term.field}')")
        seen.add(term.field)
    return terms


def _row_matches(groupings: dict[str, str], terms: list[Term]) -> bool:
    for term in terms:
        actual = groupings[term.field]
        if term.field == "send_channel":
            value = term.value
            fix = {"mobile_push": "push-notification"}
            value = [fix.get(v, v) for v in value] if isinstance(value, list) else fix.get(value, value)
            term = Term(term.op, term.field, value)
        op = "any" if term.op == "contains-any" else term.op
        if not matches(Term(op, term.field, term.value), actual):
            return False
    return True


def _body(request: Request, expected_type: str) -> dict:
    try:
        body = json.loads(request.body or b"{}")
        resource = body["data"]
        attributes = resource["attributes"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad("Request body must be a JSON:API document with data.attributes.", "/data") from exc
    if resource.get("type") != expected_type:
        raise _bad(f"data.type must be '{expected_type}'.", "/data/type")
    if not isinstance(attributes, dict):
        raise _bad("data.attributes must be an object.", "/data/attributes")
    return attributes


def values_report(data: SandboxData, request: Request, path: str) -> dict:
    spec = contract().report(path)
    kind = "campaign" if "campaign" in path else "flow"
    attributes = _body(request, spec.type)
    for name in ("statistics", "timeframe", "conversion_metric_id"):
        if name not in attributes:
            raise _bad(f"'{name}' is required.", f"/data/attributes/{name}")
    statistics = attributes["statistics"]
    if not isinstance(statistics, list) or not statistics:
        raise _bad("statistics must be a non-empty list.", "/data/attributes/statistics")
    for stat in statistics:
        if stat not in (spec.statistics or []):
            raise _bad(f"'{stat}' is not a valid statistic.", "/data/attributes/statistics")
    group_by = attributes.get("group_by") or DEFAULT_GROUPINGS[kind]
    for g in group_by:
        if g not in (spec.group_by or []):
            raise _bad(f"'{g}' is not a valid group_by value.", "/data/attributes/group_by")
        if g not in SUPPORTED_GROUPINGS[kind]:
            raise _bad(f"group_by '{g}' is not supported by the sandbox.", "/data/attributes/group_by")
    for g in REQUIRED_GROUPINGS[kind]:
        if g not in group_by:
            raise _bad(
                f"group_by must include {', '.join(REQUIRED_GROUPINGS[kind])}.", "/data/attributes/group_by"
            )
    conversion_metric = data.metric_index.get(attributes["conversion_metric_id"])
    if conversion_metric is None:
        raise _bad(
            "conversion_metric_id is not a metric of this account.", "/data/attributes/conversion_metric_id"
        )
    start, end = timeframe_bounds(attributes["timeframe"], data.now, data.config.timezone)
    try:
        terms = _report_filter(attributes.get("filter"), kind)
    except FilterError as exc:
        raise _bad(str(exc), "/data/attributes/filter") from exc

    figures = message_figures(data, kind, conversion_metric, start.timestamp(), end.timestamp())
    results = []
    parents: list[str] = []
    message_ids: list[str] = []
    for mi in sorted(figures, key=lambda i: (data.messages[i].parent_id, i)):
        message = data.messages[mi]
        groupings = _groupings(data, message, group_by)
        if not _row_matches(_groupings(data, message, list(SUPPORTED_GROUPINGS[kind])), terms):
            continue
        stats = figures[mi].statistics(message.channel)
        results.append({"groupings": groupings, "statistics": {s: stats[s] for s in statistics}})
        if message.parent_id not in parents:
            parents.append(message.parent_id)
        message_ids.append(message.id)

    base = f"{request.base_url}{request.path.rstrip('/')}/"
    if kind == "campaign":
        relationships = {
            "campaigns": {
                "data": [{"type": "campaign", "id": c} for c in parents],
                "links": {"self": f"{base}relationships/campaigns/", "related": f"{base}campaigns/"},
            },
        }
    else:
        relationships = {
            "flows": {
                "data": [{"type": "flow", "id": f} for f in parents],
                "links": {"self": f"{base}relationships/flows/", "related": f"{base}flows/"},
            },
            "flow-messages": {
                "data": [{"type": "flow-message", "id": m} for m in message_ids],
                "links": {"self": f"{base}relationships/flow-messages/", "related": f"{base}flow-messages/"},
            },
        }
    return {
        "data": {
            "type": spec.type,
            "id": str(uuid.uuid4()),
            "attributes": {"results": results},
            "relationships": relationships,
        },
        "links": {"self": base},
    }


INTERVALS = ("hour", "day", "week", "month")


def _instant(value: Any, zone: ZoneInfo) -> float:
    """A filter's datetime bound as epoch seconds: with an offset, that instant; without, the
    wall-clock time in the query's timezone."""
    text = getattr(value, "text", value)
    if isinstance(text, str):
        try:
            parsed = _iso(text)
        except ValueError as exc:
            raise FilterError(f"invalid datetime {text!r}") from exc
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=zone).timestamp()
    return as_epoch(value)


def _interval_starts(start: int, end: float, interval: str, zone: ZoneInfo) -> list[int]:
    """Where each interval from `start` to `end` begins (epoch seconds): hours, days and
    months on `zone`'s clock (a day is 23 or 25 hours on a DST change), weeks from `start`."""
    if interval == "hour":  # whole hours of the zone's clock: on :30 UTC at +05:30
        local = datetime.fromtimestamp(start, zone)
        t = int(local.replace(minute=0, second=0, microsecond=0).timestamp())
        return list(range(t, math.ceil(end), 3600)) if t < end else []
    wall = datetime.fromtimestamp(start, zone).replace(tzinfo=None)
    if interval == "day":
        wall = wall.replace(hour=0, minute=0, second=0, microsecond=0)
    elif interval == "month":
        wall = wall.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    dates: list[int] = []
    while (t := int(wall.replace(tzinfo=zone).timestamp())) < end:
        dates.append(t)
        if interval == "month":
            wall = (wall + timedelta(days=32)).replace(day=1)
        else:
            wall += timedelta(days=7 if interval == "week" else 1)
    return dates


def metric_aggregates(data: SandboxData, request: Request) -> dict:
    """POST /api/metric-aggregates: count, sum_value (of the `$value` each event carries)
    and unique per interval, no `by`; the intervals and the filter's bounds without an offset
    are in the query's `timezone` (spec: default UTC), as Klaviyo processes them."""
    attributes = _body(request, "metric-aggregate")
    timezone = attributes.get("timezone") or "UTC"
    zone = _zone(timezone)
    if zone is None:
        raise _bad(f"timezone {timezone!r} is not an IANA timezone.", "/data/attributes/timezone")
    metric = data.metric_index.get(attributes.get("metric_id", ""))
    if metric is None:
        raise _bad("metric_id is not a metric of this account.", "/data/attributes/metric_id")
    measurements = attributes.get("measurements") or []
    allowed = ["count", "sum_value", "unique"]
    if not measurements or any(m not in allowed for m in measurements):
        raise _bad(f"measurements must be a subset of {allowed}.", "/data/attributes/measurements")
    interval = attributes.get("interval", "day")
    if interval not in INTERVALS:
        raise _bad("interval must be hour, day, week or month.", "/data/attributes/interval")
    if attributes.get("by"):
        raise _bad("'by' is not supported by the sandbox.", "/data/attributes/by")
    filters = attributes.get("filter")
    if not isinstance(filters, list) or not filters:
        raise _bad(
            "filter must list greater-or-equal and less-than datetime bounds.", "/data/attributes/filter"
        )
    start = end = None
    try:
        for text in filters:
            for term in parse_filter(text):
                if term.field != "datetime":
                    raise FilterError(f"filter on '{term.field}' is not supported by the sandbox")
                if term.op == "greater-or-equal":
                    start = _instant(term.value, zone)
                elif term.op == "less-than":
                    end = _instant(term.value, zone)
                else:
                    raise FilterError("use greater-or-equal(datetime,...) and less-than(datetime,...)")
    except FilterError as exc:
        raise _bad(str(exc), "/data/attributes/filter") from exc
    if start is None or end is None or end <= start:
        raise _bad("filter needs greater-or-equal and less-than datetime bounds.", "/data/attributes/filter")

    dates = _interval_starts(int(start), end, interval, zone)
    counts = [0] * len(dates)
    sums = [0.0] * len(dates)
    uniques: list[set] = [set() for _ in dates]
    events = data.events
    lo = bisect_left(events.ts, int(start))
    hi = bisect_left(events.ts, math.ceil(end))
    bucket = 0
    for i in range(lo, hi):
        if events.metric[i] != metric or (events.deleted and events.num[i] in events.deleted):
            continue
        ts = events.ts[i]
        while bucket + 1 < len(dates) and dates[bucket + 1] <= ts:
            bucket += 1
        counts[bucket] += 1
        sums[bucket] += data.event_value(i) or 0.0  # the `$value` the event carries
        uniques[bucket].add(events.profile[i])
    values = {"count": counts, "sum_value": [round(s, 2) for s in sums], "unique": [len(u) for u in uniques]}
    base = f"{request.base_url}{request.path.rstrip('/')}/"
    return {
        "data": {
            "type": "metric-aggregate",
            "id": str(uuid.uuid4()),
            "attributes": {
                "dates": [
                    epoch_to_iso(d) if timezone == "UTC" else datetime.fromtimestamp(d, zone).isoformat()
                    for d in dates
                ],
                "data": [{"dimensions": [], "measurements": {m: values[m] for m in measurements}}],
            },
            "links": {"self": base},
        },
        "links": {"self": base},
    }
