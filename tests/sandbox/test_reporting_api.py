"""The Reporting API figures equal a direct count, per klaviyo_etl.conventions, over the events
a client can fetch from /api/events: the same comparison our reports make against the sync."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import httpx
import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.sandbox import SandboxData
from klaviyo_etl.sandbox.events import NONE
from klaviyo_etl.sandbox.reporting_api import timeframe_bounds
from klaviyo_etl.sandbox.store import BOT_CLICK
from klaviyo_etl.sync.streams.reporting import REPORT_STATISTICS
from klaviyo_etl.timeutil import iso_to_epoch
from tests.helpers.sandbox import ACCOUNT, make_client, walk

STATISTICS = REPORT_STATISTICS  # exactly what the sync asks Klaviyo for (and the rest below)
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
    "bounced_or_failed",
    "spam_complaints",
)
SEND_CHANNEL = {"email": "email", "sms": "sms", "mobile_push": "push-notification"}


RATES = {  # rate -> (numerator, denominator), per klaviyo_etl.conventions
    "delivery_rate": ("delivered", "recipients"),
    "open_rate": ("opens_unique", "delivered"),
    "click_rate": ("clicks_unique", "delivered"),
    "click_to_open_rate": ("clicks_unique", "opens_unique"),
    "conversion_rate": ("conversion_uniques", "delivered"),
    "revenue_per_recipient": ("conversion_value", "delivered"),
    "unsubscribe_rate": ("unsubscribe_uniques", "delivered"),
    "bounce_rate": ("bounced", "recipients"),
    "failed_rate": ("failed", "recipients"),
    "bounced_or_failed_rate": ("bounced_or_failed", "recipients"),
    "spam_complaint_rate": ("spam_complaints", "delivered"),
}


def expected_figures(
    events: list[dict],
    metric_names: dict[str, str],
    entities: dict[str, str],
    start: float,
    end: float,
    conversion_metric: str,
) -> dict[str, dict]:
    """Per entity: the conventions' figures over events in [start, end).

    An entity is what `$message` names, as live Klaviyo does: the campaign on campaign events,
    the flow message on flow events. `entities` maps its id -> channel.
    """
    sets: dict[str, dict] = defaultdict(lambda: defaultdict(set))
    counts: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for event in events:
        ts = event["attributes"]["timestamp"]
        if not start <= ts < end:
            continue
        props = event["attributes"]["event_properties"]
        metric = event["relationships"]["metric"]["data"]["id"]
        name = metric_names[metric]
        profile = event["relationships"]["profile"]["data"]["id"]
        entity = props.get(kc.PROP_MESSAGE)
        if entity in entities:
            role = {v: k for k, v in kc.CHANNEL_METRICS[entities[entity]].items() if v}.get(name)
            if role in ("received", "bounced", "failed"):
                sets[entity]["recipients"].add(profile)
            if role == "received":
                sets[entity]["delivered"].add(profile)
            elif role == "clicked" and props[BOT_CLICK] is True:
                pass  # a bot's click: left out of clicks, as Klaviyo does by default (§12)
            elif role in ("opened", "clicked", "unsubscribed", "bounced", "failed", "spam"):
                sets[entity][role].add(profile)
                counts[entity][role] += 1
        attributed = props.get(kc.PROP_ATTRIBUTED_MESSAGE)
        if metric == conversion_metric and attributed in entities:
            sets[attributed]["converters"].add(profile)
            counts[attributed]["conversions"] += 1
            counts[attributed]["value"] += props[kc.PROP_VALUE]

    out = {}
    for entity in set(sets) | set(counts):
        s, c = sets[entity], counts[entity]
        out[entity] = {
            "recipients": len(s["recipients"]),
            "delivered": len(s["delivered"]),
            "opens": c["opened"],
            "opens_unique": len(s["opened"]),
            "clicks": c["clicked"],
            "clicks_unique": len(s["clicked"]),
            "conversions": c["conversions"],
            "conversion_uniques": len(s["converters"]),
            "conversion_value": c["value"],
            "unsubscribes": c["unsubscribed"],
            "unsubscribe_uniques": len(s["unsubscribed"]),
            "bounced": len(s["bounced"]),
            "failed": len(s["failed"]),
            "bounced_or_failed": len(s["bounced"] | s["failed"]),
            "spam_complaints": len(s["spam"]),
        }
        for rate, (n, d) in RATES.items():
            out[entity][rate] = out[entity][n] / out[entity][d] if out[entity][d] else 0.0
        if kc.CHANNEL_METRICS[entities[entity]]["opened"] is None:  # SMS: no opens, no open rates
            out[entity]["open_rate"] = out[entity]["click_to_open_rate"] = None
    return out


@pytest.fixture(scope="module")
def all_events(client: httpx.Client) -> list[dict]:
    items, _ = walk(client, "/api/events", {"page[size]": "1000"})
    return items


def _report(client: httpx.Client, kind: str, attributes: dict) -> httpx.Response:
    return client.post(
        f"/api/{kind}-values-reports",
        json={"data": {"type": f"{kind}-values-report", "attributes": attributes}},
    )


@pytest.mark.parametrize("kind", ["campaign", "flow"])
@pytest.mark.parametrize("window", [None, (45, 10)])
def test_values_report_equals_direct_count(
    client: httpx.Client, data: SandboxData, all_events: list[dict], kind: str, window: tuple[int, int] | None
) -> None:
    placed = data.metric_ids[data.metric_named(kc.PLACED_ORDER, "Shopify")]
    if window is None:
        timeframe = {"key": "last_365_days"}
        today = data.now.replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = (today - timedelta(days=365)).timestamp(), today.timestamp()
    else:
        lo, hi = (data.now - timedelta(days=d) for d in window)
        timeframe = {"start": lo.isoformat(), "end": hi.isoformat()}
        start, end = lo.timestamp(), hi.timestamp()
    statistics = sorted({*STATISTICS, *COUNTS, *RATES})
    response = _report(
        client, kind, {"statistics": statistics, "timeframe": timeframe, "conversion_metric_id": placed}
    )
    assert response.status_code == 200, response.text
    results = response.json()["data"]["attributes"]["results"]

    records = data.resources[f"{kind}-message"].values()
    parents = {m["id"]: m[f"{kind}_id"] for m in records}
    channels = {m["id"]: m["channel"] for m in records}
    # what `$message` names: the campaign (campaign events), the flow message (flow events)
    entity_key = "campaign_id" if kind == "campaign" else "flow_message_id"
    if kind == "campaign":
        entities = {c["id"]: c["channel"] for c in data.resources["campaign"].values()}
    else:
        entities = channels
    metric_names = {m: data.resources["metric"][m]["attributes"]["name"] for m in data.ids("metric")}
    expected = expected_figures(all_events, metric_names, entities, start, end, placed)
    assert expected, "the seeded account should have message activity in the window"
    rows: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        message = r["groupings"][f"{kind}_message_id"]
        assert r["groupings"] == {
            f"{kind}_id": parents[message],
            f"{kind}_message_id": message,
            "send_channel": SEND_CHANNEL[channels[message]],
        }
        rows[r["groupings"][entity_key]].append(r["statistics"])
    assert set(rows) == set(expected)
    for entity, figures in expected.items():
        # an A/B campaign has a row per message; they reach disjoint profiles, so counts add up
        for stat in COUNTS:
            got = sum(row[stat] for row in rows[entity])
            assert got == pytest.approx(figures[stat], abs=0.006), (entity, stat)
        if len(rows[entity]) == 1:
            for stat in statistics:
                if figures.get(stat, 0.0) is None:
                    assert rows[entity][0][stat] is None, (entity, stat)
                elif stat in figures:
                    assert rows[entity][0][stat] == pytest.approx(figures[stat], abs=0.006), (entity, stat)
    assert any(r["statistics"]["conversions"] for r in results) or kind == "flow"


def test_report_filter_and_group_by(client: httpx.Client, data: SandboxData) -> None:
    placed = data.metric_ids[data.metric_named(kc.PLACED_ORDER, "Shopify")]
    base = {
        "statistics": ["recipients"],
        "timeframe": {"key": "last_365_days"},
        "conversion_metric_id": placed,
    }
    everything = _report(client, "campaign", base).json()["data"]["attributes"]["results"]
    campaigns = sorted({r["groupings"]["campaign_id"] for r in everything})
    chosen = campaigns[:2]
    listed = ",".join(f'"{c}"' for c in chosen)
    for flt in (f"any(campaign_id,[{listed}])", f"contains-any(campaign_id,[{listed}])"):
        subset = _report(client, "campaign", {**base, "filter": flt}).json()
        assert {r["groupings"]["campaign_id"] for r in subset["data"]["attributes"]["results"]} == set(chosen)
    sms = _report(client, "campaign", {**base, "filter": 'equals(send_channel,"sms")'}).json()
    assert {r["groupings"]["send_channel"] for r in sms["data"]["attributes"]["results"]} == {"sms"}
    named = _report(
        client,
        "campaign",
        {**base, "group_by": ["campaign_id", "campaign_message_id", "campaign_message_name"]},
    ).json()
    row = named["data"]["attributes"]["results"][0]
    assert set(row["groupings"]) == {"campaign_id", "campaign_message_id", "campaign_message_name"}
    assert named["data"]["relationships"]["campaigns"]["data"]


@pytest.mark.parametrize(
    "change",
    [
        {"statistics": []},
        {"statistics": ["happiness"]},
        {"timeframe": {"key": "last_decade"}},
        {"timeframe": {"start": "2024-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}},
        {"conversion_metric_id": "nope"},
        {"group_by": ["send_channel"]},
        {"filter": "equals(colour,'red')"},
        {"timeframe": None},
    ],
)
def test_invalid_report_requests_are_400(client: httpx.Client, data: SandboxData, change: dict) -> None:
    placed = data.metric_ids[data.metric_named(kc.PLACED_ORDER, "Shopify")]
    attributes = {
        "statistics": ["recipients"],
        "timeframe": {"key": "last_30_days"},
        "conversion_metric_id": placed,
        **change,
    }
    attributes = {k: v for k, v in attributes.items() if v is not None}
    response = _report(client, "campaign", attributes)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["source"]["pointer"].startswith("/data")


def _weekly_aggregate(
    client: httpx.Client, metric: str, start: datetime, end: datetime, measurements: list[str]
) -> dict:
    """The attributes of a metric aggregate by week over [start, end)."""
    filters = [f"greater-or-equal(datetime,{start.isoformat()})", f"less-than(datetime,{end.isoformat()})"]
    attributes = {"metric_id": metric, "measurements": measurements, "interval": "week", "filter": filters}
    response = client.post(
        "/api/metric-aggregates", json={"data": {"type": "metric-aggregate", "attributes": attributes}}
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["attributes"]


def _events_of(events: list[dict], metric: str, start: datetime, end: datetime) -> list[dict]:
    """The served events of `metric` in [start, end)."""
    return [
        e
        for e in events
        if e["relationships"]["metric"]["data"]["id"] == metric
        and start.timestamp() <= e["attributes"]["timestamp"] < end.timestamp()
    ]


def test_metric_aggregate_counts_match(
    client: httpx.Client, data: SandboxData, all_events: list[dict]
) -> None:
    placed = data.metric_ids[data.metric_named(kc.PLACED_ORDER, "Shopify")]
    start, end = data.now - timedelta(days=28), data.now - timedelta(days=7)
    attrs = _weekly_aggregate(client, placed, start, end, ["count", "sum_value", "unique"])
    assert len(attrs["dates"]) == 3
    measured = attrs["data"][0]["measurements"]
    orders = _events_of(all_events, placed, start, end)
    assert sum(measured["count"]) == len(orders) > 0
    assert sum(measured["sum_value"]) == pytest.approx(
        sum(e["attributes"]["event_properties"]["$value"] for e in orders), abs=0.05
    )
    week_starts = [iso_to_epoch(d) for d in attrs["dates"]]
    for k, ws in enumerate(week_starts):
        in_week = [e for e in orders if ws <= e["attributes"]["timestamp"] < ws + 7 * 86_400]
        assert measured["count"][k] == len(in_week)
        assert measured["unique"][k] == len({e["relationships"]["profile"]["data"]["id"] for e in in_week})


@pytest.mark.parametrize("name", [kc.VIEWED_PRODUCT, kc.ADDED_TO_CART])
def test_metric_aggregate_sum_value_sums_the_value_each_event_carries(
    client: httpx.Client, data: SandboxData, all_events: list[dict], name: str
) -> None:
    # "sum_value: perform a summation of the Event Value" (Klaviyo's supported metrics and
    # attributes guide): a Viewed Product event carries a price but no `$value`, so it adds 0.
    metric = data.metric_ids[data.metric_named(name)]
    start, end = data.now - timedelta(days=28), data.now
    measured = _weekly_aggregate(client, metric, start, end, ["count", "sum_value"])["data"][0][
        "measurements"
    ]
    served = _events_of(all_events, metric, start, end)
    assert sum(measured["count"]) == len(served) > 0
    assert sum(measured["sum_value"]) == pytest.approx(
        sum(e["attributes"]["event_properties"].get("$value", 0) for e in served), abs=0.05
    )


def _rows(
    client: httpx.Client, kind: str, data: SandboxData, metric: str | None = None, **extra
) -> list[dict]:
    attributes = {
        "statistics": ["recipients", "delivered", "conversions", "conversion_value"],
        "timeframe": {"key": "last_365_days"},
        "conversion_metric_id": metric or data.metric_ids[data.metric_named(kc.PLACED_ORDER, "Shopify")],
        **extra,
    }
    response = _report(client, kind, attributes)
    assert response.status_code == 200, response.text
    return response.json()["data"]["attributes"]["results"]


def test_an_ab_campaign_reports_one_row_per_campaign_message(
    client: httpx.Client, data: SandboxData, all_events: list[dict]
) -> None:
    # Events name only the campaign; the Reporting API still splits it by campaign message.
    (ab,) = [c for c in data.resources["campaign"].values() if c["attributes"]["status"] == "Variations Sent"]
    messages = {m["id"] for m in data.campaign_messages_of(ab["id"])}
    assert len(messages) == 2
    rows = [r for r in _rows(client, "campaign", data) if r["groupings"]["campaign_id"] == ab["id"]]
    assert {r["groupings"]["campaign_message_id"] for r in rows} == messages
    assert all(r["statistics"]["recipients"] > 0 for r in rows)
    receipts = {
        e["relationships"]["profile"]["data"]["id"]
        for e in all_events
        if e["attributes"]["event_properties"].get(kc.PROP_MESSAGE) == ab["id"]
        and e["relationships"]["metric"]["data"]["id"]
        == data.metric_ids[data.metric_named(kc.RECEIVED_EMAIL)]
    }
    assert sum(r["statistics"]["delivered"] for r in rows) == len(receipts)


def test_archived_campaigns_and_flows_keep_their_events_and_figures(
    client: httpx.Client, data: SandboxData, all_events: list[dict]
) -> None:
    archived_campaigns = {i for i, c in data.resources["campaign"].items() if c["attributes"]["archived"]}
    archived_flows = {i for i, f in data.resources["flow"].items() if f["attributes"]["archived"]}
    assert archived_campaigns and archived_flows
    campaign_rows = _rows(client, "campaign", data)
    flow_rows = _rows(client, "flow", data)
    assert archived_campaigns <= {r["groupings"]["campaign_id"] for r in campaign_rows}
    assert archived_flows <= {r["groupings"]["flow_id"] for r in flow_rows}
    named = {e["attributes"]["event_properties"].get(kc.PROP_MESSAGE) for e in all_events}
    flows = {e["attributes"]["event_properties"].get(kc.PROP_FLOW) for e in all_events}
    assert archived_campaigns <= named and archived_flows <= flows
    # an archived flow stopped sending when it was archived
    for flow_id in archived_flows:
        archived_at = iso_to_epoch(data.resources["flow"][flow_id]["attributes"]["updated"])
        receipts = [
            e["attributes"]["timestamp"]
            for e in all_events
            if e["attributes"]["event_properties"].get(kc.PROP_FLOW) == flow_id
            and data.metric_names[data.metric_index[e["relationships"]["metric"]["data"]["id"]]]
            in (kc.RECEIVED_EMAIL, kc.RECEIVED_SMS, kc.RECEIVED_PUSH)
        ]
        assert receipts and max(receipts) < archived_at + 900


def test_campaigns_that_were_not_sent_have_no_rows(sandbox_factory) -> None:
    with sandbox_factory("default", **{**ACCOUNT, "campaigns": 30}) as sb, make_client(sb.server) as client:
        data = sb.data
        unsent = [
            c["id"]
            for c in data.resources["campaign"].values()
            if c["attributes"]["status"] not in kc.SENT_STATUSES
        ]
        sent = [
            c["id"]
            for c in data.resources["campaign"].values()
            if c["attributes"]["status"] in kc.SENT_STATUSES
        ]
        assert len(unsent) >= 10
        reported = {r["groupings"]["campaign_id"] for r in _rows(client, "campaign", data)}
        # every send but the one going out today (last_365_days ends at midnight)
        sending = {c for c in sent if data.resources["campaign"][c]["attributes"]["status"] == "Sending"}
        assert set(sent) - sending <= reported <= set(sent)
        listed = ",".join(f'"{c}"' for c in unsent)
        assert _rows(client, "campaign", data, filter=f"contains-any(campaign_id,[{listed}])") == []


def test_conversions_come_from_exactly_the_given_conversion_metric(sandbox_factory) -> None:
    # Big enough for both integrations' orders to be attributed to messages.
    with sandbox_factory("default", **{**ACCOUNT, "profiles": 1500, "events": 10_000}) as sb:
        data = sb.data
        events = data.events
        with make_client(sb.server) as client:
            totals = {}
            for integration in ("Shopify", "API"):
                m = data.metric_named(kc.PLACED_ORDER, integration)
                metric = data.metric_ids[m]
                rows = _rows(client, "flow", data, metric) + _rows(client, "campaign", data, metric)
                attributed = [
                    data.event_properties(i)
                    for i in range(len(events))
                    if events.metric[i] == m and events.attr[i] != NONE
                ]
                assert attributed, f"some {integration} orders are attributed"
                assert all(kc.PROP_ATTRIBUTED_MESSAGE in props for props in attributed)
                got = sum(r["statistics"]["conversions"] for r in rows)
                assert got == len(attributed)
                value = sum(props[kc.PROP_VALUE] for props in attributed)
                assert sum(r["statistics"]["conversion_value"] for r in rows) == pytest.approx(
                    value, abs=0.05
                )
                totals[integration] = got
    assert 0 < totals["API"] < totals["Shopify"]


def test_sms_failures_count_as_failed_not_bounced_and_sms_has_no_open_rates(
    client: httpx.Client, data: SandboxData, all_events: list[dict]
) -> None:
    failed_metric = data.metric_ids[data.metric_named(kc.FAILED_SMS)]
    failures = {
        (e["attributes"]["event_properties"][kc.PROP_MESSAGE], e["relationships"]["profile"]["data"]["id"])
        for e in all_events
        if e["relationships"]["metric"]["data"]["id"] == failed_metric
    }
    assert failures
    attributes = {
        "statistics": [
            "recipients",
            "delivered",
            "bounced",
            "failed",
            "failed_rate",
            "bounced_or_failed",
            "open_rate",
            "click_to_open_rate",
            "click_rate",
        ],
        "timeframe": {"key": "last_365_days"},
        "conversion_metric_id": data.metric_ids[data.metric_named(kc.PLACED_ORDER, "Shopify")],
    }
    by_channel: dict[str, list[dict]] = defaultdict(list)
    for kind in ("campaign", "flow"):
        for row in _report(client, kind, attributes).json()["data"]["attributes"]["results"]:
            by_channel[row["groupings"]["send_channel"]].append(row["statistics"])
    sms = by_channel["sms"]
    assert sms and all(s["bounced"] == 0 for s in sms)
    assert all(s["open_rate"] is None and s["click_to_open_rate"] is None for s in sms)
    assert all(isinstance(s["click_rate"], float) for s in sms)
    assert all(s["bounced_or_failed"] == s["failed"] for s in sms)
    assert all(s["failed_rate"] == pytest.approx(s["failed"] / s["recipients"]) for s in sms)
    assert all(s["recipients"] == s["delivered"] + s["failed"] for s in sms)
    campaign_failures = {f for f in failures if f[0] in data.resources["campaign"]}
    flow_failures = {f for f in failures if f[0] in data.resources["flow-message"]}
    assert sum(s["failed"] for s in sms) == len(campaign_failures) + len(flow_failures)
    # email and push keep their bounces and open rates
    for channel in ("email", "push-notification"):
        rows = by_channel[channel]
        assert rows and all(s["failed"] == 0 and isinstance(s["open_rate"], float) for s in rows)
    assert sum(s["bounced"] for s in by_channel["email"]) > 0


def _aggregate_in(client: httpx.Client, metric: str, interval: str, first: str, end: str, zone: str) -> dict:
    attributes = {
        "metric_id": metric,
        "measurements": ["count"],
        "interval": interval,
        "timezone": zone,
        "filter": [f"greater-or-equal(datetime,{first})", f"less-than(datetime,{end})"],
    }
    response = client.post(
        "/api/metric-aggregates", json={"data": {"type": "metric-aggregate", "attributes": attributes}}
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["attributes"]


def test_metric_aggregates_cut_days_and_hours_on_the_querys_timezone(client: httpx.Client, data: SandboxData):
    # Spec: `timezone` "used for processing the query", default UTC; bounds without an offset
    # are that zone's wall clock.
    metric = data.metric_ids[data.metric_named(kc.OPENED_EMAIL)]
    ny = _aggregate_in(
        client, metric, "day", "2026-10-31T00:00:00", "2026-11-03T00:00:00", "America/New_York"
    )
    assert ny["dates"] == [
        "2026-10-31T00:00:00-04:00",
        "2026-11-01T00:00:00-04:00",
        "2026-11-02T00:00:00-05:00",
    ]
    starts = [iso_to_epoch(d) for d in ny["dates"]]
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [
        86_400,
        90_000,
    ]  # 1 November: 25 hours
    india = _aggregate_in(
        client, metric, "hour", "2026-05-01T00:00:00", "2026-05-01T03:00:00", "Asia/Kolkata"
    )
    assert india["dates"] == [f"2026-05-01T0{h}:00:00+05:30" for h in range(3)]
    utc = _aggregate_in(client, metric, "day", "2026-05-01T00:00:00", "2026-05-02T00:00:00", "UTC")
    assert utc["dates"] == ["2026-05-01T00:00:00+00:00"]
    bad = client.post(
        "/api/metric-aggregates",
        json={
            "data": {
                "type": "metric-aggregate",
                "attributes": {
                    "metric_id": metric,
                    "measurements": ["count"],
                    "timezone": "Mars/Olympus",
                    "filter": [
                        "greater-or-equal(datetime,2026-05-01T00:00:00)",
                        "less-than(datetime,2026-05-02T00:00:00)",
                    ],
                },
            }
        },
    )
    assert (
        bad.status_code == 400 and bad.json()["errors"][0]["source"]["pointer"] == "/data/attributes/timezone"
    )


def test_a_custom_timeframe_is_read_on_the_companys_clock():
    # Spec `CustomTimeframe`: "Offset is ignored and the company timezone is used".
    now = datetime.fromisoformat("2026-11-02T03:00:00+00:00")  # 1 November, 22:00 in New York
    frame = {"start": "2026-11-01T00:00:00+00:00", "end": "2026-11-02T00:00:00+00:00"}
    start, end = timeframe_bounds(frame, now, "America/New_York")
    assert (start.isoformat(), end.isoformat()) == ("2026-11-01T04:00:00+00:00", "2026-11-02T05:00:00+00:00")
    start, end = timeframe_bounds({"key": "yesterday"}, now, "America/New_York")
    assert (start.isoformat(), end.isoformat()) == ("2026-10-31T04:00:00+00:00", "2026-11-01T04:00:00+00:00")
    start, end = timeframe_bounds({"key": "today"}, now, "Asia/Kolkata")  # already 2 November there
    assert (start.isoformat(), end.isoformat()) == ("2026-11-01T18:30:00+00:00", "2026-11-02T18:30:00+00:00")


def test_bot_clicks_are_left_out_of_clicks_unless_the_account_counts_them(sandbox_factory) -> None:
    # LIVE_BEHAVIOUR.md §12: with the account's "exclude bot clicks" setting on (the default),
    # clicks, unique clicks, the click rate and the click-to-open rate count people's clicks only.
    with sandbox_factory("default", **ACCOUNT) as sb, make_client(sb.server) as client:
        data = sb.data
        clicked = {data.metric_ids[data.metric_named(n)] for n in (kc.CLICKED_EMAIL, kc.CLICKED_SMS)}
        items, _ = walk(client, "/api/events", {"page[size]": "1000"})
        clicks: dict[bool, list[tuple[str, str]]] = defaultdict(list)  # bot? -> (entity, profile)
        for e in items:
            if e["relationships"]["metric"]["data"]["id"] in clicked:
                props = e["attributes"]["event_properties"]
                if kc.PROP_MESSAGE in props:
                    clicks[props[BOT_CLICK]].append(
                        (props[kc.PROP_MESSAGE], e["relationships"]["profile"]["data"]["id"])
                    )
        assert clicks[True] and clicks[False]
        statistics = [
            "clicks",
            "clicks_unique",
            "click_rate",
            "click_to_open_rate",
            "delivered",
            "opens_unique",
        ]

        def totals() -> tuple[int, int, list[dict]]:
            rows = [
                row["statistics"]
                for kind in ("campaign", "flow")
                for row in _rows(client, kind, data, statistics=statistics)
            ]
            return sum(r["clicks"] for r in rows), sum(r["clicks_unique"] for r in rows), rows

        people = clicks[False]
        count, unique, rows = totals()
        assert (count, unique) == (len(people), len(set(people)))
        for r in rows:
            assert r["click_rate"] == pytest.approx(
                r["clicks_unique"] / r["delivered"] if r["delivered"] else 0
            )
        data.config.exclude_bot_clicks = False  # an account made before 2024-08-27 that kept them
        everyone = people + clicks[True]
        assert totals()[:2] == (len(everyone), len(set(everyone)))
        assert len(set(everyone)) > len(set(people))
