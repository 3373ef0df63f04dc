"""The event properties the store builds follow live Klaviyo's conventions (LIVE_BEHAVIOUR.md §1,
§4, §5, §12): what `$message` names, what a deleted campaign leaves behind, metric names that
several integrations share, and which clicks a bot made."""

from __future__ import annotations

from collections import Counter

import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.sandbox import SandboxData
from klaviyo_etl.sandbox.events import NONE
from klaviyo_etl.sandbox.ids import event_num
from klaviyo_etl.sandbox.store import BOT_CLICK, SMS_FAILURE_TYPES, bot_click
from tests.helpers.sandbox import walk


def _message_events(data: SandboxData, kind: str) -> list[tuple[int, dict]]:
    """(storage index, event_properties) of every event sent by a message of `kind`."""
    events = data.events
    return [
        (i, data.event_properties(i))
        for i in range(len(events))
        if events.msg[i] != NONE and data.messages[events.msg[i]].kind == kind
    ]


def test_campaign_events_carry_the_campaign_id_in_message(data: SandboxData) -> None:
    campaign_events = _message_events(data, "campaign")
    assert campaign_events
    names = Counter()
    for i, props in campaign_events:
        message = data.messages[data.events.msg[i]]  # the campaign message it came from
        campaign = data.resources["campaign"][message.parent_id]
        assert props[kc.PROP_MESSAGE] == campaign["id"] != message.id
        assert props["Campaign Name"] == campaign["attributes"]["name"]
        assert kc.PROP_FLOW not in props
        names[data.metric_names[data.events.metric[i]]] += 1
    # every channel's events follow it, not only email's
    assert {kc.RECEIVED_EMAIL, kc.OPENED_EMAIL, kc.RECEIVED_SMS, kc.RECEIVED_PUSH} <= set(names)
    # flow events, by contrast, name the flow message, and the flow in $flow
    flow_events = _message_events(data, "flow")
    assert flow_events
    for i, props in flow_events:
        message = data.messages[data.events.msg[i]]
        assert props[kc.PROP_MESSAGE] == message.id
        assert props[kc.PROP_FLOW] == message.parent_id
        assert message.id in data.resources["flow-message"]


def test_attributed_orders_name_the_campaign_or_the_flow_message(data: SandboxData) -> None:
    events = data.events
    seen = set()
    for i in range(len(events)):
        if events.attr[i] == NONE:
            continue
        props = data.event_properties(i)
        message = data.messages[events.attr[i]]
        if message.kind == "campaign":
            assert props[kc.PROP_ATTRIBUTED_MESSAGE] == message.parent_id
            assert kc.PROP_ATTRIBUTED_FLOW not in props
        else:
            assert props[kc.PROP_ATTRIBUTED_MESSAGE] == message.id
            assert props[kc.PROP_ATTRIBUTED_FLOW] == message.parent_id
        seen.add(message.kind)
    assert seen == {"campaign", "flow"}


def test_a_deleted_campaigns_events_keep_its_name_and_lose_the_message_id(fresh) -> None:
    data, _server, client = fresh
    events = data.events
    # a sent campaign with receipts and an attributed order
    i = next(
        i
        for i in range(len(events))
        if events.attr[i] != NONE and data.messages[events.attr[i]].kind == "campaign"
    )
    campaign_id = data.messages[events.attr[i]].parent_id
    name = data.resources["campaign"][campaign_id]["attributes"]["name"]
    data.delete("campaign", campaign_id)

    items, _ = walk(client, "/api/events", {"page[size]": "1000"})
    mine = [
        e["attributes"]["event_properties"]
        for e in items
        if e["attributes"]["event_properties"].get("Campaign Name") == name
    ]
    assert mine, "the deleted campaign's events are still served"
    assert all(kc.PROP_MESSAGE not in props for props in mine)
    served = [e["attributes"]["event_properties"] for e in items]
    assert all(props.get(kc.PROP_MESSAGE) != campaign_id for props in served)
    assert all(props.get(kc.PROP_ATTRIBUTED_MESSAGE) != campaign_id for props in served)


def test_failed_sms_events_carry_a_failure_type(data: SandboxData) -> None:
    failed = data.metric_named(kc.FAILED_SMS)
    types = [
        data.event_properties(i)["Failure Type"]
        for i in range(len(data.events))
        if data.events.metric[i] == failed
    ]
    assert types and set(types) <= set(SMS_FAILURE_TYPES)


def test_every_placed_order_metric_is_counted_under_its_own_id(data: SandboxData) -> None:
    placed = data.metrics_named[kc.PLACED_ORDER]
    assert len(placed) == 2
    integrations = {
        data.resources["metric"][data.metric_ids[m]]["attributes"]["integration"]["name"]: m for m in placed
    }
    assert set(integrations) == {"Shopify", "API"}
    assert data.metric_named(kc.PLACED_ORDER, "API") == integrations["API"]
    with pytest.raises(ValueError, match="say which integration"):
        data.metric_named(kc.PLACED_ORDER)
    # the profiles' order totals count both integrations' orders
    per_metric = Counter(m for m in data.events.metric if m in placed)
    assert sum(data.profile_orders) == per_metric[integrations["Shopify"]] + per_metric[integrations["API"]]


def test_every_placed_order_names_its_currency(data: SandboxData) -> None:
    # LIVE_BEHAVIOUR.md §7: an integration sends the order's currency with its value; the
    # reports say what their money is in from it.
    placed = set(data.metrics_named[kc.PLACED_ORDER])  # both integrations' metrics
    orders = [data.event_properties(i) for i in range(len(data.events)) if data.events.metric[i] in placed]
    assert orders
    assert {props["$currency_code"] for props in orders} == {"USD"}
    assert all(isinstance(props[kc.PROP_VALUE], float) for props in orders)


def test_clicks_say_whether_a_bot_made_them(data: SandboxData, client) -> None:
    # LIVE_BEHAVIOUR.md §12: every Clicked Email and Clicked SMS carries `Bot Click`, a JSON
    # boolean; some clicks are a bot's, most a person's, and an event keeps its answer.
    clicks = {data.metric_ids[data.metric_named(name)] for name in (kc.CLICKED_EMAIL, kc.CLICKED_SMS)}
    items, _ = walk(client, "/api/events", {"page[size]": "1000"})
    served = [e for e in items if e["relationships"]["metric"]["data"]["id"] in clicks]
    assert served
    flags = [e["attributes"]["event_properties"][BOT_CLICK] for e in served]
    assert all(isinstance(flag, bool) for flag in flags)
    assert 0 < flags.count(True) < flags.count(False)
    assert flags == [bot_click(event_num(e["id"])) for e in served]
    others = [e for e in items if e["relationships"]["metric"]["data"]["id"] not in clicks]
    assert not any(BOT_CLICK in e["attributes"]["event_properties"] for e in others)


def test_sms_metrics_carry_the_text_message_names_klaviyo_gave_them_in_july_2026(
    data: SandboxData, client
) -> None:
    # LIVE_BEHAVIOUR.md §13: the SMS metrics are named "... Text Message" now, and the SMS
    # campaigns' and flows' events come under those names.
    metrics, _ = walk(client, "/api/metrics")
    names = {m["id"]: m["attributes"]["name"] for m in metrics}
    renamed = {
        "Sent Text Message",
        "Received Text Message",
        "Clicked Text Message",
        "Failed to Deliver Text Message",
        "Unsubscribed from Text Messaging Marketing",
    }
    assert renamed <= set(names.values())
    assert not {n for n in names.values() if n.endswith("SMS") or "from SMS" in n}
    sms = {
        names[data.metric_ids[data.events.metric[i]]]
        for i in range(len(data.events))
        if data.events.msg[i] != NONE and data.messages[data.events.msg[i]].channel == "sms"
    }
    assert (
        {"Received Text Message", "Clicked Text Message", "Failed to Deliver Text Message"} <= sms <= renamed
    )
