"""The Reporting API figures equal a direct count, per klaviyo_etl.conventions, over the events
a client can fetch from /api/events: the same comparison our reports make against the sync."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import httpx
import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.sandbox import SandboxData
from klaviyo_etl.sync.streams.reporting import REPORT_STATISTICS
from klaviyo_etl.timeutil import iso_to_epoch
from tests.helpers.sandbox import walk

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


def test_metric_aggregate_counts_match(
    client: httpx.Client, data: SandboxData, all_events: list[dict]
) -> None:
    placed = data.metric_ids[data.metric_named(kc.PLACED_ORDER, "Shopify")]
    start, end = data.now - timedelta(days=28), data.now - timedelta(days=7)
    body = {
        "data": {
            "type": "metric-aggregate",
            "attributes": {
                "metric_id": placed,
                "measurements": ["count", "sum_value", "unique"],
                "interval": "week",
                "filter": [
                    f"greater-or-equal(datetime,{start.isoformat()})",
                    f"less-than(datetime,{end.isoformat()})",
                ],
            },
        }
    }
    response = client.post("/api/metric-aggregates", json=body)
    assert response.status_code == 200, response.text
    attrs = response.json()["data"]["attributes"]
    assert len(attrs["dates"]) == 3
    measured = attrs["data"][0]["measurements"]
    orders = [
        e
        for e in all_events
        if e["relationships"]["metric"]["data"]["id"] == placed
        and start.timestamp() <= e["attributes"]["timestamp"] < end.timestamp()
    ]
    assert sum(measured["count"]) == len(orders) > 0
    assert sum(measured["sum_value"]) == pytest.approx(
        sum(e["attributes"]["event_properties"]["$value"] for e in orders), abs=0.05
    )
    week_starts = [iso_to_epoch(d) for d in attrs["dates"]]
    for k, ws in enumerate(week_starts):
        in_week = [e for e in orders if ws <= e["attributes"]["timestamp"] < ws + 7 * 86_400]
        assert measured["count"][k] == len(in_week)
        assert measured["unique"][k] == len({e["relationships"]["profile"]["data"]["id"] for e in in_week})
