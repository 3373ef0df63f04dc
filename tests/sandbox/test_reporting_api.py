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

STATISTICS = REPORT_STATISTICS  # exactly what the sync asks Klaviyo for
SEND_CHANNEL = {"email": "email", "sms": "sms", "mobile_push": "push-notification"}


def expected_figures(
    events: list[dict], metric_names: dict[str, str], messages: dict[str, str], start: float, end: float
) -> dict[str, dict]:
    """Per message id: the conventions' figures over events in [start, end).

    `messages` maps message id -> channel for the messages of one kind (campaign or flow).
    """
    sets: dict[str, dict] = defaultdict(lambda: defaultdict(set))
    counts: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for event in events:
        ts = event["attributes"]["timestamp"]
        if not start <= ts < end:
            continue
        props = event["attributes"]["event_properties"]
        name = metric_names[event["relationships"]["metric"]["data"]["id"]]
        profile = event["relationships"]["profile"]["data"]["id"]
        message = props.get(kc.PROP_MESSAGE)
        if message in messages:
            role = {v: k for k, v in kc.CHANNEL_METRICS[messages[message]].items() if v}.get(name)
            if role in ("received", "bounced"):
                sets[message]["recipients"].add(profile)
            if role == "received":
                sets[message]["delivered"].add(profile)
            elif role in ("opened", "clicked", "unsubscribed", "bounced", "spam"):
                sets[message][role].add(profile)
                counts[message][role] += 1
        attributed = props.get(kc.PROP_ATTRIBUTED_MESSAGE)
        if name == kc.PLACED_ORDER and attributed in messages:
            sets[attributed]["converters"].add(profile)
            counts[attributed]["conversions"] += 1
            counts[attributed]["value"] += props[kc.PROP_VALUE]

    def rate(n, d):
        return n / d if d else 0.0

    out = {}
    for message in set(sets) | set(counts):
        s, c = sets[message], counts[message]
        delivered = len(s["delivered"])
        out[message] = {
            "recipients": len(s["recipients"]),
            "delivered": delivered,
            "opens": c["opened"],
            "opens_unique": len(s["opened"]),
            "open_rate": rate(len(s["opened"]), delivered),
            "clicks": c["clicked"],
            "clicks_unique": len(s["clicked"]),
            "click_rate": rate(len(s["clicked"]), delivered),
            "click_to_open_rate": rate(len(s["clicked"]), len(s["opened"])),
            "conversions": c["conversions"],
            "conversion_uniques": len(s["converters"]),
            "conversion_value": c["value"],
            "conversion_rate": rate(len(s["converters"]), delivered),
            "revenue_per_recipient": rate(c["value"], delivered),
            "unsubscribes": c["unsubscribed"],
            "unsubscribe_uniques": len(s["unsubscribed"]),
            "unsubscribe_rate": rate(len(s["unsubscribed"]), delivered),
            "bounced": len(s["bounced"]),
            "bounce_rate": rate(len(s["bounced"]), len(s["recipients"])),
            "spam_complaints": len(s["spam"]),
            "spam_complaint_rate": rate(len(s["spam"]), delivered),
        }
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
    placed = data.metric_ids[data.metric_by_name[kc.PLACED_ORDER]]
    if window is None:
        timeframe = {"key": "last_365_days"}
        today = data.now.replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = (today - timedelta(days=365)).timestamp(), today.timestamp()
    else:
        lo, hi = (data.now - timedelta(days=d) for d in window)
        timeframe = {"start": lo.isoformat(), "end": hi.isoformat()}
        start, end = lo.timestamp(), hi.timestamp()
    response = _report(
        client, kind, {"statistics": STATISTICS, "timeframe": timeframe, "conversion_metric_id": placed}
    )
    assert response.status_code == 200, response.text
    results = response.json()["data"]["attributes"]["results"]

    records = data.resources[f"{kind}-message"].values()
    messages = {m["id"]: m["channel"] for m in records}
    parents = {m["id"]: m[f"{kind}_id"] for m in records}
    metric_names = {m: data.resources["metric"][m]["attributes"]["name"] for m in data.ids("metric")}
    expected = expected_figures(all_events, metric_names, messages, start, end)
    assert expected, "the seeded account should have message activity in the window"
    got = {r["groupings"][f"{kind}_message_id"]: r for r in results}
    assert set(got) == set(expected)
    for message, figures in expected.items():
        row = got[message]
        assert row["groupings"] == {
            f"{kind}_id": parents[message],
            f"{kind}_message_id": message,
            "send_channel": SEND_CHANNEL[messages[message]],
        }
        for stat in STATISTICS:
            assert row["statistics"][stat] == pytest.approx(figures[stat], abs=0.006), (message, stat)
    assert any(r["statistics"]["conversions"] for r in results) or kind == "flow"


def test_report_filter_and_group_by(client: httpx.Client, data: SandboxData) -> None:
    placed = data.metric_ids[data.metric_by_name[kc.PLACED_ORDER]]
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
    placed = data.metric_ids[data.metric_by_name[kc.PLACED_ORDER]]
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
    placed = data.metric_ids[data.metric_by_name[kc.PLACED_ORDER]]
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
