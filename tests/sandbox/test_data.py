"""The generated account: deterministic, plausible, fast, and mutable the way Klaviyo changes."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from datetime import timedelta

import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.sandbox import SandboxConfig, SandboxData
from klaviyo_etl.sandbox.events import NONE
from klaviyo_etl.sandbox.generate import Generator
from klaviyo_etl.sandbox.ids import event_id
from klaviyo_etl.sandbox.store import AccountStore
from klaviyo_etl.timeutil import iso_to_epoch
from tests.helpers.sandbox import NOW, make_config, sandbox_config, spec, walk

DAY = 86_400


def campaign_status_enum() -> list[str]:
    """The campaign statuses the spec lists."""
    schema = spec()["components"]["schemas"]["CampaignResponseObjectResource"]
    return schema["properties"]["attributes"]["properties"]["status"]["enum"]


def _events(data: SandboxData) -> list[tuple[int, str, str, dict]]:
    """(ts, metric name, profile id, properties) for every event."""
    ev = data.events
    return [
        (ev.ts[i], data.metric_names[ev.metric[i]], data.profile_ids[ev.profile[i]], data.event_properties(i))
        for i in range(len(ev))
    ]


def test_same_seed_same_account_other_seed_other_account() -> None:
    a = SandboxData.generate(make_config())
    b = SandboxData.generate(make_config())
    c = SandboxData.generate(make_config(seed=12))
    for kind in ("profile", "campaign", "flow", "metric", "event", "tag"):
        assert a.ids(kind) == b.ids(kind)
    assert _events(a) == _events(b)
    assert [p["attributes"] for p in a.resources["profile"].values()] == [
        p["attributes"] for p in b.resources["profile"].values()
    ]
    assert a.ids("profile").isdisjoint(c.ids("profile"))


def test_generator_fills_a_bare_account_store_exactly_as_sandbox_data() -> None:
    # The generator depends on the store, not on SandboxData: a plain store filled with the
    # same seed holds the same account, so the mutation helpers add nothing to generation.
    config = make_config()
    store = AccountStore(config)
    Generator(store, random.Random(config.seed)).populate()
    data = SandboxData.generate(config)
    assert store.resources == data.resources
    assert store.members == data.members
    assert [store.event_properties(i) for i in range(len(store.events))] == [
        data.event_properties(i) for i in range(len(data.events))
    ]
    assert bytes(store.events.ts) == bytes(data.events.ts)


def test_sizes_follow_the_config(data: SandboxData) -> None:
    cfg = data.config
    assert len(data.events) == cfg.events
    for kind, n in (
        ("profile", cfg.profiles),
        ("campaign", cfg.campaigns),
        ("flow", cfg.flows),
        ("list", cfg.lists),
        ("segment", cfg.segments),
        ("form", cfg.forms),
        ("template", cfg.templates),
        ("tag", cfg.tags),
    ):
        assert len(data.ids(kind)) == n, kind
    stamps = list(data.events.ts)
    assert stamps == sorted(stamps)
    assert NOW.timestamp() - cfg.days * DAY <= stamps[0] and stamps[-1] < NOW.timestamp()


def test_metrics_use_klaviyos_names(data: SandboxData) -> None:
    names = {m["attributes"]["name"] for m in data.resources["metric"].values()}
    expected = {
        getattr(kc, n)
        for n in dir(kc)
        if n.isupper() and isinstance(getattr(kc, n), str) and not n.startswith("PROP_")
    }
    assert expected <= names
    used = {name for _, name, _, _ in _events(data)}
    for name in (
        kc.RECEIVED_EMAIL,
        kc.OPENED_EMAIL,
        kc.CLICKED_EMAIL,
        kc.RECEIVED_SMS,
        kc.RECEIVED_PUSH,
        kc.PLACED_ORDER,
        kc.ACTIVE_ON_SITE,
        kc.VIEWED_PRODUCT,
        kc.ADDED_TO_CART,
        kc.VIEWED_FORM,
        kc.SUBSCRIBED_TO_LIST,
    ):
        assert name in used, name


def test_campaigns_look_like_klaviyos(data: SandboxData) -> None:
    campaigns = list(data.resources["campaign"].values())
    channels = [c["channel"] for c in campaigns]
    assert set(channels) == {"email", "sms", "mobile_push"}
    assert channels.count("email") > len(campaigns) / 2
    statuses = [c["attributes"]["status"] for c in campaigns]
    assert sum(s in kc.SENT_STATUSES for s in statuses) > len(campaigns) / 2
    assert set(statuses) <= set(campaign_status_enum())
    for c in campaigns:
        messages = data.campaign_messages_of(c["id"])
        assert 1 <= len(messages) <= 2
        status, send_time = c["attributes"]["status"], c["attributes"]["send_time"]
        if status in ("Scheduled", "Preparing to schedule"):
            assert iso_to_epoch(send_time) > NOW.timestamp()
        elif status in ("Draft", "Unknown"):
            assert send_time is None and c["attributes"]["scheduled_at"] is None
        else:  # sent, or its send time came and it was cancelled or found no recipients
            assert iso_to_epoch(send_time) < NOW.timestamp()
            assert iso_to_epoch(c["attributes"]["scheduled_at"]) < iso_to_epoch(send_time)
        for m in messages:
            assert m["attributes"]["definition"]["channel"] == c["channel"]


def test_message_events_follow_their_sends(data: SandboxData) -> None:
    # `$message` names the campaign on campaign events and the flow message on flow events.
    campaigns = data.resources["campaign"]
    flow_messages = {m["id"]: m for m in data.resources["flow-message"].values()}
    received_at: dict[tuple[str, str], int] = {}
    flows_seen = set()
    for ts, name, profile, props in _events(data):
        message = props.get(kc.PROP_MESSAGE)
        if message is None:
            continue
        assert message in campaigns or message in flow_messages
        if message in flow_messages:
            assert props[kc.PROP_FLOW] == flow_messages[message]["flow_id"]
            flows_seen.add(props[kc.PROP_FLOW])
        else:
            assert campaigns[message]["attributes"]["status"] in kc.SENT_STATUSES
            assert ts >= iso_to_epoch(campaigns[message]["attributes"]["send_time"])
            assert kc.PROP_FLOW not in props
        channel = (campaigns.get(message) or flow_messages.get(message))["channel"]
        roles = {v: k for k, v in kc.CHANNEL_METRICS[channel].items() if v}
        assert name in roles, f"{name} on a {channel} message"
        if roles[name] in ("received", "bounced", "failed"):
            received_at.setdefault((message, profile), ts)
        else:  # opens, clicks, unsubscribes follow a receipt of the same message
            assert (message, profile) in received_at
            assert ts >= received_at[(message, profile)]
    assert flows_seen


def test_orders_attributed_within_the_window_and_some_not(data: SandboxData) -> None:
    received: dict[tuple[str, str], list[int]] = defaultdict(list)
    orders = []
    for ts, name, profile, props in _events(data):
        if name in (kc.RECEIVED_EMAIL, kc.RECEIVED_SMS, kc.RECEIVED_PUSH):
            received[(props[kc.PROP_MESSAGE], profile)].append(ts)
        if name == kc.PLACED_ORDER:
            orders.append((ts, profile, props))
    attributed = [o for o in orders if kc.PROP_ATTRIBUTED_MESSAGE in o[2]]
    assert attributed and len(attributed) < len(orders)
    flow_messages = {m["id"]: m for m in data.resources["flow-message"].values()}
    window = kc.ATTRIBUTION_WINDOW_DAYS * DAY
    for ts, profile, props in orders:
        assert props[kc.PROP_VALUE] > 0
        message = props.get(kc.PROP_ATTRIBUTED_MESSAGE)
        if message is None:
            continue
        assert any(0 < ts - r < window for r in received[(message, profile)])
        assert props[kc.PROP_ATTRIBUTED_CHANNEL] in kc.CAMPAIGN_CHANNELS
        if message in flow_messages:
            assert props[kc.PROP_ATTRIBUTED_FLOW] == flow_messages[message]["flow_id"]
        else:
            assert kc.PROP_ATTRIBUTED_FLOW not in props


def test_form_and_list_events_point_at_real_resources(data: SandboxData) -> None:
    for ts, name, profile, props in _events(data):
        if name in (kc.VIEWED_FORM, kc.SUBMITTED_FORM):
            form = data.resources["form"][props[kc.PROP_FORM_ID]]
            assert form["attributes"]["status"] == "live"
        if name == kc.SUBSCRIBED_TO_LIST:
            joined = data.members[props[kc.PROP_LIST_ID]][profile]
            assert iso_to_epoch(joined) == ts


def test_unsubscribes_change_consent() -> None:
    data = SandboxData.generate(make_config(profiles=3000, events=40_000))
    by_profile = {}
    for ts, name, profile, _ in _events(data):
        if name == kc.UNSUBSCRIBED:
            by_profile[profile] = ts
    assert by_profile, "expected a few email unsubscribes in the seeded account"
    for profile_id in by_profile:
        consent = data.resources["profile"][profile_id]["consent"]
        assert consent["email"] == "UNSUBSCRIBED"
        assert "UNSUBSCRIBE" in [reason for reason, _ in consent["suppression"]]


def test_a_million_events_generate_fast() -> None:
    start = time.perf_counter()
    data = SandboxData.generate(
        SandboxConfig(seed=3, profiles=20_000, events=1_000_000, campaigns=30, flows=6, now=NOW)
    )
    elapsed = time.perf_counter() - start
    assert len(data.events) == 1_000_000
    assert elapsed < 30, f"{elapsed:.1f}s"


# -- mutation helpers ---------------------------------------------------------------------------


def test_add_touch_delete(fresh) -> None:
    data, _server, client = fresh
    before = data.ids("profile")
    new = data.add("profile", 3)
    assert len(new) == 3 and data.ids("profile") == before | set(new)
    stamps = [iso_to_epoch(data.resources["profile"][p]["attributes"]["updated"]) for p in new]
    assert stamps == sorted(set(stamps)) and stamps[0] >= NOW.timestamp()

    # a campaign the default (non-archived) listing shows
    campaign_id = next(
        c["id"] for c in data.resources["campaign"].values() if not c["attributes"]["archived"]
    )
    old = dict(data.resources["campaign"][campaign_id]["attributes"])
    data.touch("campaign", campaign_id)
    now = data.resources["campaign"][campaign_id]["attributes"]
    assert now["name"] != old["name"] and iso_to_epoch(now["updated_at"]) > iso_to_epoch(old["updated_at"])
    changed, _ = walk(
        client,
        "/api/campaigns",
        {
            "filter": f"and(equals(messages.channel,'{data.resources['campaign'][campaign_id]['channel']}'),"
            f"greater-than(updated_at,{old['updated_at']}))"
        },
    )
    assert campaign_id in {c["id"] for c in changed}

    profile_id = next(p for p in data.members[data.list_ids[0]])
    data.delete("profile", profile_id)
    assert profile_id not in data.ids("profile")
    assert all(profile_id not in members for members in data.members.values())
    assert (
        client.get(
            f"/api/lists/{data.list_ids[0]}/profiles",
            params={"filter": "greater-than(joined_group_at,2000-01-01T00:00:00Z)", "page[size]": "100"},
        ).status_code
        == 200
    )

    flow_id = next(iter(data.resources["flow"]))
    actions = {a["id"] for a in data.flow_actions_of(flow_id)}
    data.delete("flow", flow_id)
    assert not actions & data.ids("flow-action")
    assert client.get(f"/api/flows/{flow_id}/flow-actions").status_code == 404

    list_id = data.list_ids[-1]
    data.delete("list", list_id)
    items, _ = walk(client, "/api/lists")
    assert list_id not in {i["id"] for i in items}
    with pytest.raises(KeyError):
        data.touch("list", list_id)


def test_clock_moves_and_stamps_follow(fresh) -> None:
    data, _server, _client = fresh
    data.now = data.now + timedelta(days=2)
    (profile_id,) = data.add("profile", 1)
    updated = data.resources["profile"][profile_id]["attributes"]["updated"]
    assert iso_to_epoch(updated) == (NOW + timedelta(days=2)).timestamp()


def test_add_events_now_and_late(fresh) -> None:
    data, _server, client = fresh
    total = len(data.events)
    recent = data.add_events(5)
    late = data.add_events(4, start=NOW - timedelta(days=20), end=NOW - timedelta(days=19))
    assert len(data.events) == total + 9
    assert data.ids("event") >= set(recent) | set(late)
    window = client.get(
        "/api/events",
        params={
            "filter": f"and(greater-or-equal(datetime,{(NOW - timedelta(days=20)).isoformat()}),"
            f"less-or-equal(datetime,{(NOW - timedelta(days=19)).isoformat()}))",
            "page[size]": "1000",
        },
    ).json()
    assert set(late) <= {e["id"] for e in window["data"]}
    newest = client.get(
        "/api/events",
        params={
            "filter": f"greater-or-equal(datetime,{(NOW - timedelta(hours=1)).isoformat()})",
            "page[size]": "1000",
        },
    ).json()
    assert set(recent) <= {e["id"] for e in newest["data"]}
    stamps = list(data.events.ts)
    assert stamps == sorted(stamps)


def test_delete_event(fresh) -> None:
    data, _server, client = fresh
    victim = event_id(data.events.num[10])
    data.delete("event", victim)
    assert victim not in data.ids("event")
    items, _ = walk(client, "/api/events", {"page[size]": "1000"})
    assert victim not in {i["id"] for i in items} and len(items) == len(data.events) - 1
    with pytest.raises(KeyError):
        data.delete("event", victim)


def test_membership_helpers(fresh) -> None:
    data, _server, client = fresh
    list_id = data.list_ids[1]
    outsider = next(p for p in data.ids("profile") if p not in data.members[list_id])
    data.add_member(list_id, outsider)
    items, _ = walk(client, f"/api/lists/{list_id}/profiles", {"page[size]": "100"})
    assert items[-1]["id"] == outsider  # joined now: last in joined_group_at order
    count = client.get(f"/api/lists/{list_id}", params={"additional-fields[list]": "profile_count"}).json()
    assert count["data"]["attributes"]["profile_count"] == len(data.members[list_id])
    data.remove_member(list_id, outsider)
    items, _ = walk(client, f"/api/lists/{list_id}/profiles", {"page[size]": "100"})
    assert outsider not in {i["id"] for i in items}
    with pytest.raises(KeyError):
        data.remove_member(list_id, outsider)
    segment_id = next(iter(data.resources["segment"]))
    data.add_member(segment_id, outsider)
    assert outsider in data.members[segment_id]


@pytest.mark.parametrize(
    "kind", ["list", "segment", "template", "form", "tag", "tag-group", "metric", "campaign", "flow"]
)
def test_add_each_kind_is_served(fresh, kind: str) -> None:
    data, _server, client = fresh
    (new_id,) = data.add(kind, 1)
    path = {"campaign": "/api/campaigns", "tag-group": "/api/tag-groups"}.get(kind, f"/api/{kind}s")
    params = {"filter": "equals(messages.channel,'email')"} if kind == "campaign" else {}
    items, _ = walk(client, path, params)
    assert new_id in {i["id"] for i in items}


def test_campaigns_come_in_every_status_and_only_sends_have_events() -> None:
    data = SandboxData.generate(make_config(campaigns=30))
    by_status = defaultdict(list)
    for c in data.resources["campaign"].values():
        by_status[c["attributes"]["status"]].append(c)
    not_sent = set(by_status) - set(kc.SENT_STATUSES)
    assert {
        "Cancelled",
        "Queued without Recipients",
        "Scheduled",
        "Draft",
        "Preparing to send",
        "Adding Recipients",
    } <= not_sent
    assert len({s for s in not_sent if s.startswith("Cancelled: ")}) >= 4
    assert {"Sent", "Variations Sent", "Sending"} <= set(by_status)
    with_events = {
        data.messages[m].parent_id
        for m in set(data.events.msg)
        if m != NONE and data.messages[m].kind == "campaign"
    }
    for status, campaigns in by_status.items():
        ids = {c["id"] for c in campaigns}
        if status in kc.SENT_STATUSES:
            assert ids <= with_events, status
        else:
            assert not ids & with_events, status
    # a cancelled or queued campaign had its send time, now past; a draft never had one
    for status in ("Cancelled", "Cancelled: No Recipients", "Queued without Recipients"):
        for c in by_status[status]:
            attrs = c["attributes"]
            assert iso_to_epoch(attrs["scheduled_at"]) < iso_to_epoch(attrs["send_time"]) < NOW.timestamp()
    assert all(c["attributes"]["send_time"] is None for c in by_status["Draft"])
    assert all(len(data.campaign_messages_of(c["id"])) == 2 for c in by_status["Variations Sent"])


def test_old_sends_are_archived_in_every_channel_and_one_flow_was_archived(data: SandboxData) -> None:
    archived = [c for c in data.resources["campaign"].values() if c["attributes"]["archived"]]
    assert {c["channel"] for c in archived} == set(kc.CAMPAIGN_CHANNELS)
    assert all(c["attributes"]["status"] in ("Sent", "Variations Sent") for c in archived)
    for c in archived:  # older than the channel's sends that stay listed
        listed = [
            o
            for o in data.resources["campaign"].values()
            if o["channel"] == c["channel"]
            and not o["attributes"]["archived"]
            and o["attributes"]["status"] == "Sent"
        ]
        assert all(o["attributes"]["send_time"] > c["attributes"]["send_time"] for o in listed)
    flows = [f for f in data.resources["flow"].values() if f["attributes"]["archived"]]
    assert len(flows) == 1 and flows[0]["attributes"]["status"] == "draft"
    # the tiny account the contract cassettes record has them too
    tiny = SandboxData.generate(sandbox_config("tiny", now=NOW))
    assert any(c["attributes"]["archived"] for c in tiny.resources["campaign"].values())
    assert any(f["attributes"]["archived"] for f in tiny.resources["flow"].values())


def test_a_second_placed_order_metric_records_fewer_orders(data: SandboxData) -> None:
    shopify = data.metric_named(kc.PLACED_ORDER, "Shopify")
    api = data.metric_named(kc.PLACED_ORDER, "API")
    assert data.metric_ids[shopify] != data.metric_ids[api]
    counts = {m: sum(1 for x in data.events.metric if x == m) for m in (shopify, api)}
    assert 0 < counts[api] < counts[shopify]
