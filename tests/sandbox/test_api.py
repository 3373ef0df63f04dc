"""Pagination, sorting and filtering of the sandbox's collections."""

from __future__ import annotations

import datetime as dt
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.endpoints import contract
from klaviyo_etl.sandbox import SandboxData
from klaviyo_etl.sandbox.api import Api
from klaviyo_etl.sandbox.wire import Request
from klaviyo_etl.timeutil import epoch_to_iso, iso_to_epoch
from tests.helpers.sandbox import make_config, walk

TOP_LEVEL = [
    ("/api/metrics", "metric", {}),
    ("/api/events", "event", {"page[size]": "1000"}),
    ("/api/events", "event", {}),
    ("/api/profiles", "profile", {"page[size]": "100"}),
    ("/api/profiles", "profile", {"page[size]": "7", "sort": "-updated"}),
    ("/api/lists", "list", {"page[size]": "3"}),
    ("/api/segments", "segment", {"page[size]": "2"}),
    ("/api/flows", "flow", {"page[size]": "3"}),
    ("/api/forms", "form", {"page[size]": "2"}),
    ("/api/templates", "template", {"page[size]": "3"}),
    ("/api/tags", "tag", {"page[size]": "2"}),
    ("/api/tag-groups", "tag-group", {"page[size]": "1"}),
]


@pytest.mark.parametrize(("path", "kind", "params"), TOP_LEVEL)
def test_walk_returns_every_id_exactly_once(
    client: httpx.Client, data: SandboxData, path: str, kind: str, params: dict
) -> None:
    items, pages = walk(client, path, params)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids))
    # /api/flows lists the archived flows only when asked (see test_archived_...)
    hidden = {
        i for i in data.ids(kind) if kind == "flow" and data.resources["flow"][i]["attributes"]["archived"]
    }
    assert set(ids) == data.ids(kind) - hidden
    assert all(item["type"] == kind for item in items)
    if "page[size]" in params and len(ids) > int(params["page[size]"]):
        assert pages > 1


def test_campaign_walks_per_channel_cover_all_campaigns(client: httpx.Client, data: SandboxData) -> None:
    # One walk per channel, and a second pass for the archived ones (hidden by default).
    seen: list[str] = []
    for channel in kc.CAMPAIGN_CHANNELS:
        for archived in ("", ",equals(archived,true)"):
            items, _ = walk(
                client,
                "/api/campaigns",
                {"filter": f"and(equals(messages.channel,'{channel}'){archived})", "page[size]": "2"},
            )
            assert all(data.resources["campaign"][c["id"]]["channel"] == channel for c in items)
            seen += [c["id"] for c in items]
    assert sorted(seen) == sorted(data.ids("campaign"))


def test_nested_collections_match_the_data(client: httpx.Client, data: SandboxData) -> None:
    for group_id, members in data.members.items():
        kind = "lists" if group_id in data.resources["list"] else "segments"
        items, _ = walk(client, f"/api/{kind}/{group_id}/profiles", {"page[size]": "17"})
        assert [i["id"] for i in items] == sorted(
            members, key=lambda p: (members[p], data.resources["profile"][p]["seq"])
        )
        assert {i["id"]: i["attributes"]["joined_group_at"] for i in items} == members
    actions_seen, messages_seen = set(), set()
    for flow_id in data.ids("flow"):
        actions, _ = walk(client, f"/api/flows/{flow_id}/flow-actions", {"page[size]": "2"})
        actions_seen |= {a["id"] for a in actions}
        for action in actions:
            messages, _ = walk(client, f"/api/flow-actions/{action['id']}/flow-messages")
            messages_seen |= {m["id"] for m in messages}
    assert actions_seen == data.ids("flow-action")
    assert messages_seen == data.ids("flow-message")
    for campaign_id in data.ids("campaign"):
        body = client.get(f"/api/campaigns/{campaign_id}/campaign-messages").json()
        assert {m["id"] for m in body["data"]} == {m["id"] for m in data.campaign_messages_of(campaign_id)}


@pytest.mark.parametrize("field", ["created", "updated", "email"])
@pytest.mark.parametrize("descending", [False, True])
def test_profiles_sort(client: httpx.Client, field: str, descending: bool) -> None:
    params = {"sort": f"{'-' if descending else ''}{field}", "page[size]": "40"}
    items, _ = walk(client, "/api/profiles", params)
    values = [i["attributes"][field] for i in items]
    assert values == sorted(values, reverse=descending)


def test_events_sort_descending_walks_everything(client: httpx.Client, data: SandboxData) -> None:
    items, _ = walk(client, "/api/events", {"sort": "-datetime", "page[size]": "500"})
    stamps = [i["attributes"]["timestamp"] for i in items]
    assert stamps == sorted(stamps, reverse=True)
    assert {i["id"] for i in items} == data.ids("event")


def test_events_datetime_window_matches_direct_count(client: httpx.Client, data: SandboxData) -> None:
    lo = data.now - timedelta(days=30)
    hi = data.now - timedelta(days=10)
    flt = f"and(greater-or-equal(datetime,{lo.isoformat()}),less-than(datetime,{hi.isoformat()}))"
    items, _ = walk(client, "/api/events", {"filter": flt, "page[size]": "250"})
    expected = sum(1 for t in data.events.ts if lo.timestamp() <= t < hi.timestamp())
    assert len(items) == expected > 0
    assert all(lo.timestamp() <= iso_to_epoch(i["attributes"]["datetime"]) < hi.timestamp() for i in items)
    # greater-than / less-or-equal with the Z suffix and a timestamp filter agree too
    z = lo.strftime("%Y-%m-%dT%H:%M:%SZ")
    gt, _ = walk(client, "/api/events", {"filter": f"greater-than(datetime,{z})", "page[size]": "1000"})
    assert len(gt) == sum(1 for t in data.events.ts if t > lo.timestamp())
    ts_items, _ = walk(
        client,
        "/api/events",
        {"filter": f"greater-than(timestamp,{int(lo.timestamp())})", "page[size]": "1000"},
    )
    assert {i["id"] for i in ts_items} == {i["id"] for i in gt}


def test_events_metric_and_profile_filters(client: httpx.Client, data: SandboxData) -> None:
    opened = data.metric_ids[data.metric_named("Opened Email")]
    items, _ = walk(client, "/api/events", {"filter": f"equals(metric_id,'{opened}')", "page[size]": "100"})
    assert items and all(i["relationships"]["metric"]["data"]["id"] == opened for i in items)
    assert len(items) == sum(1 for m in data.events.metric if data.metric_ids[m] == opened)
    profile = data.profile_ids[data.events.profile[0]]
    mine, _ = walk(client, "/api/events", {"filter": f'equals(profile_id,"{profile}")'})
    assert mine and all(i["relationships"]["profile"]["data"]["id"] == profile for i in mine)
    none = client.get("/api/events", params={"filter": "equals(metric_id,'nope')"}).json()
    assert none["data"] == [] and "next" not in none["links"]


def test_profiles_updated_and_id_filters(client: httpx.Client, data: SandboxData) -> None:
    cutoff = data.now - timedelta(days=40)
    items, _ = walk(
        client,
        "/api/profiles",
        {"filter": f"greater-than(updated,{cutoff.isoformat()})", "page[size]": "100"},
    )
    expected = {
        p["id"]
        for p in data.resources["profile"].values()
        if iso_to_epoch(p["attributes"]["updated"]) > cutoff.timestamp()
    }
    assert {i["id"] for i in items} == expected and expected
    some = sorted(data.ids("profile"))[:3]
    listed = ",".join(f'"{p}"' for p in some)
    body = client.get("/api/profiles", params={"filter": f"any(id,[{listed}])"}).json()
    assert sorted(i["id"] for i in body["data"]) == some
    email = data.resources["profile"][some[0]]["attributes"]["email"]
    body = client.get("/api/profiles", params={"filter": f"equals(email,'{email}')"}).json()
    assert [i["id"] for i in body["data"]] == [some[0]]


def test_resource_filters(client: httpx.Client, data: SandboxData) -> None:
    flow = next(iter(data.resources["flow"].values()))
    word = flow["attributes"]["name"].split()[0]
    body = client.get("/api/flows", params={"filter": f"contains(name,'{word}')"}).json()
    assert flow["id"] in {f["id"] for f in body["data"]}
    assert all(word.lower() in f["attributes"]["name"].lower() for f in body["data"])
    sent, _ = walk(
        client, "/api/campaigns", {"filter": "and(equals(messages.channel,'email'),equals(status,'Sent'))"}
    )
    assert sent and all(c["attributes"]["status"] == "Sent" for c in sent)
    metric = client.get("/api/metrics", params={"filter": "equals(integration.name,'Shopify')"}).json()
    assert {m["attributes"]["name"] for m in metric["data"]} >= {"Placed Order"}
    actions = client.get(
        f"/api/flows/{flow['id']}/flow-actions", params={"filter": "equals(action_type,'SEND_EMAIL')"}
    ).json()
    assert actions["data"] and all(
        a["attributes"]["definition"]["type"] == "send-email" for a in actions["data"]
    )


def _archived(data: SandboxData, kind: str) -> set[str]:
    return {i for i, r in data.resources[kind].items() if r["attributes"]["archived"]}


@pytest.mark.parametrize("channel", kc.CAMPAIGN_CHANNELS)
def test_archived_campaigns_are_hidden_unless_the_filter_asks(
    client: httpx.Client, data: SandboxData, channel: str
) -> None:
    mine = {i for i, c in data.resources["campaign"].items() if c["channel"] == channel}
    archived = _archived(data, "campaign") & mine
    assert archived, f"the account has archived {channel} campaigns"
    listed = {}
    for name, extra in (
        ("default", ""),
        ("true", ",equals(archived,true)"),
        ("false", ",equals(archived,false)"),
    ):
        items, _ = walk(
            client, "/api/campaigns", {"filter": f"and(equals(messages.channel,'{channel}'){extra})"}
        )
        listed[name] = {c["id"] for c in items}
    assert listed["default"] == listed["false"] == mine - archived
    assert listed["true"] == archived
    # any(id, ...) does not reveal them either
    ids = ",".join(f'"{i}"' for i in sorted(archived))
    body = client.get(
        "/api/campaigns", params={"filter": f"and(equals(messages.channel,'{channel}'),any(id,[{ids}]))"}
    ).json()
    assert body["data"] == []


def test_archived_flows_are_hidden_unless_the_filter_asks(client: httpx.Client, data: SandboxData) -> None:
    archived = _archived(data, "flow")
    assert archived
    default, _ = walk(client, "/api/flows")
    only, _ = walk(client, "/api/flows", {"filter": "equals(archived,true)"})
    others, _ = walk(client, "/api/flows", {"filter": "equals(archived,false)"})
    assert {f["id"] for f in default} == {f["id"] for f in others} == data.ids("flow") - archived
    assert {f["id"] for f in only} == archived
    assert all(f["attributes"]["archived"] for f in only)
    # their actions and messages are still served
    for flow_id in archived:
        actions, _ = walk(client, f"/api/flows/{flow_id}/flow-actions")
        assert {a["id"] for a in actions} == {a["id"] for a in data.flow_actions_of(flow_id)}


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/api/events", {"filter": "equals(uuid,'x')"}, "filter"),
        ("/api/events", {"filter": "contains(metric_id,'x')"}, "filter"),
        ("/api/profiles", {"filter": "greater-or-equal(updated,2026-01-01T00:00:00Z)"}, "filter"),
        ("/api/profiles", {"filter": "or(equals(id,'a'),equals(id,'b'))"}, "filter"),
        ("/api/profiles", {"filter": "equals(email,unquoted)"}, "filter"),
        ("/api/profiles", {"filter": "greater-than(updated,2026-13-45T00:00:00Z)"}, "filter"),
        ("/api/profiles", {"filter": "equals(email,'a'"}, "filter"),
        ("/api/campaigns", {"filter": "equals(status,'Sent')"}, "filter"),
        ("/api/campaigns", {"filter": "equals(messages.channel,'fax')"}, "filter"),
        ("/api/events", {"page[size]": "1001"}, "page[size]"),
        ("/api/events", {"page[size]": "0"}, "page[size]"),
        ("/api/lists", {"page[size]": "11"}, "page[size]"),
        ("/api/metrics", {"page[size]": "10"}, "page[size]"),
        ("/api/profiles", {"page[cursor]": "not-a-cursor"}, "page[cursor]"),
        ("/api/profiles", {"sort": "first_name"}, "sort"),
        ("/api/profiles", {"include": "lists"}, "include"),
        ("/api/profiles", {"fields[profile]": "favourite_colour"}, "fields[profile]"),
        ("/api/profiles", {"additional-fields[profile]": "everything"}, "additional-fields[profile]"),
        ("/api/profiles", {"colour": "blue"}, "colour"),
    ],
)
def test_invalid_queries_are_400(client: httpx.Client, path: str, params: dict, parameter: str) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["status"] == 400 and error["code"] == "invalid"
    assert error["source"] == {"parameter": parameter}
    assert error["detail"]


def test_cursor_walk_survives_changes_between_pages(fresh) -> None:
    data, _server, client = fresh
    first = client.get("/api/profiles", params={"page[size]": "50"}).json()
    seen = [p["id"] for p in first["data"]]
    deleted = seen[0]
    data.delete("profile", deleted)
    added = data.add("profile", 2)
    url = first["links"]["next"]
    while url:
        body = client.get(url).json()
        seen += [p["id"] for p in body["data"]]
        url = body["links"].get("next")
    assert len(seen) == len(set(seen))
    assert set(seen) == data.ids("profile") | {deleted}
    assert seen[-2:] == added  # new profiles sort last in the default order


def test_links_use_the_request_host(server, data: SandboxData) -> None:
    with httpx.Client(
        base_url=server.url.replace("127.0.0.1", "localhost"),
        headers={"Authorization": f"Klaviyo-API-Key {data.config.api_key}", "revision": "2026-07-15"},
    ) as c:
        body = c.get("/api/events", params={"page[size]": "5"}).json()
    assert body["links"]["next"].startswith(f"http://localhost:{server.port}/api/events/")
    assert body["data"][0]["links"]["self"].startswith(f"http://localhost:{server.port}/")


def test_iso_helpers_round_trip() -> None:
    assert epoch_to_iso(iso_to_epoch("2026-05-01T10:00:00Z")) == "2026-05-01T10:00:00+00:00"


# -- datetime ranges on the sort field (cut from one sorted index) -----------------------------

RANGE_OPS = ("greater-than", "greater-or-equal", "less-than", "less-or-equal", "equals")


def _walk_api(api: Api, path: str, params: dict) -> list[str]:
    """Every id of a walk through `Api.respond`, in the order sent."""
    query = {name: [value] for name, value in params.items()}
    ids: list[str] = []
    while True:
        status, body = api.respond(Request("GET", path, query, b"", "http://sandbox"))
        assert status == 200
        document = json.loads(body)
        ids += [item["id"] for item in document["data"]]
        after = document["links"].get("next")
        if not after:
            return ids
        split = urlsplit(after)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)


def _holds(op: str, actual: float, bound: float) -> bool:
    return {
        "greater-than": actual > bound,
        "greater-or-equal": actual >= bound,
        "less-than": actual < bound,
        "less-or-equal": actual <= bound,
        "equals": actual == bound,
    }[op]


def _expected(records: list[dict], value, terms: list[tuple[str, str]], descending: bool) -> list[str]:
    """What filtering and sorting each record gives: datetime comparisons by epoch (a record
    without a value matches none), ordered by the stored value, then creation."""
    found = [
        r
        for r in records
        if value(r) is not None
        and all(_holds(op, iso_to_epoch(value(r)), iso_to_epoch(b)) for op, b in terms)
    ]
    found.sort(key=lambda r: (value(r), r["seq"]), reverse=descending)
    return [r["id"] for r in found]


def _range_filter(field: str, terms: list[tuple[str, str]]) -> str:
    parts = [f"{op}({field},{bound})" for op, bound in terms]
    return parts[0] if len(parts) == 1 else f"and({','.join(parts)})"


def _bounds(values: list[str]) -> list[str]:
    """Bounds at stored values (equality edges), a second either side, and beyond them all."""
    ordered = sorted(set(values), key=iso_to_epoch)
    picks = [ordered[0], ordered[len(ordered) // 3], ordered[len(ordered) // 2], ordered[-1]]
    out = []
    for iso in picks:
        ts = iso_to_epoch(iso)
        out += [iso, epoch_to_iso(ts - 1), epoch_to_iso(ts + 1)]
    return [*out, "2000-01-01T00:00:00+00:00", "2100-01-01T00:00:00+00:00"]


def _check_ranges(
    api: Api, data: SandboxData, path: str, kind: str, field: str, size: str, ops, more_bounds=()
) -> int:
    """Walk every one- and two-term range of `ops` over `field`'s bounds (and `more_bounds`),
    both sort ways, against `_expected`; returns how many walks returned something."""
    records = list(data.resources[kind].values())
    if path.startswith("/api/flows/"):
        records = data.flow_actions_of(path.split("/")[3])

    def value(r: dict) -> str | None:
        if field.startswith("subscriptions."):  # the latest suppression's time
            suppression = r["consent"]["suppression"]
            return epoch_to_iso(suppression[-1][1]) if suppression else None
        return r["attributes"].get(field)

    bounds = [*_bounds([value(r) for r in records if value(r) is not None]), *more_bounds]
    term_sets = [[(op, b)] for op in ops for b in bounds]
    lower = [op for op in ops if op.startswith("greater")]
    upper = [op for op in ops if op.startswith("less")]
    term_sets += [
        [(lo, a), (hi, b)] for lo in lower for hi in upper for a in bounds[::3] for b in bounds[1::3]
    ]
    nonempty = 0
    for terms in term_sets:
        for descending in (False, True):
            params = {
                "filter": _range_filter(field, terms),
                "sort": f"{'-' if descending else ''}{field}",
                "page[size]": size,
            }
            got = _walk_api(api, path, params)
            assert got == _expected(records, value, terms, descending), params
            nonempty += bool(got)
    return nonempty


@pytest.fixture
def ranges_account() -> SandboxData:
    data = SandboxData.generate(make_config(profiles=300, events=3000))
    # The walks probe bounds past every value, up to 2100: with the clock past them, none is
    # refused as a bound in the future (LIVE_BEHAVIOUR.md §11), and the ranges are what is tested.
    data.clock_skew = dt.timedelta(days=36_600)
    return data


@pytest.mark.parametrize(
    ("path", "kind", "field", "size"),
    [
        ("/api/profiles", "profile", "updated", "100"),
        ("/api/profiles", "profile", "created", "37"),
        ("/api/templates", "template", "updated", "3"),
        ("/api/forms", "form", "created_at", "1"),
    ],
)
def test_datetime_ranges_on_the_sort_field_match_filtering_each_record(
    ranges_account: SandboxData, path: str, kind: str, field: str, size: str
) -> None:
    ops = contract().by_path(path).filter_fields[field]
    assert _check_ranges(Api(ranges_account), ranges_account, path, kind, field, size, ops) > 10


def test_ranges_of_a_scoped_collection_match_filtering_each_record(ranges_account: SandboxData) -> None:
    api = Api(ranges_account)
    for flow_id in ranges_account.ids("flow"):
        path = f"/api/flows/{flow_id}/flow-actions"
        _check_ranges(api, ranges_account, path, "flow-action", "updated", "2", RANGE_OPS)


def test_ranges_on_a_field_most_records_lack_match_filtering_each_record(ranges_account: SandboxData) -> None:
    # Only suppressed profiles have a suppression timestamp: the others sort first and match
    # no comparison.
    field = "subscriptions.email.marketing.suppression.timestamp"
    suppressed = [p for p in ranges_account.resources["profile"].values() if p["consent"]["suppression"]]
    assert 3 < len(suppressed) < 150
    ops = contract().by_path("/api/profiles").filter_fields[field]
    _check_ranges(Api(ranges_account), ranges_account, "/api/profiles", "profile", field, "100", ops)


def test_ranges_follow_the_account_as_it_changes(ranges_account: SandboxData) -> None:
    # One Api throughout: its sorted index and cached queries must not outlive a change.
    data = ranges_account
    api = Api(data)
    ops = ("greater-than", "less-than")

    def check() -> None:
        _check_ranges(api, data, "/api/profiles", "profile", "updated", "100", ops)

    api.warm()  # as `sandbox serve` does before serving
    check()
    oldest = min(data.resources["profile"].values(), key=lambda p: p["attributes"]["updated"])
    data.touch("profile", oldest["id"])  # updated now: from the first window to the last
    check()
    data.touch("profile", data.profile_ids[9])
    api.warm()  # built again for the changed account
    check()
    data.delete("profile", data.profile_ids[10])
    data.forget_profile(data.profile_ids[11])
    data.add("profile", 3)
    check()
    with data.lock:  # suppressed: what `generate` does for a bounce, with the version bumped
        data.resources["profile"][data.profile_ids[12]]["consent"]["suppression"].append(
            ("HARD_BOUNCE", int(data.now.timestamp()) - 100)
        )
        data.version += 1
    field = "subscriptions.email.marketing.suppression.timestamp"
    _check_ranges(api, data, "/api/profiles", "profile", field, "100", ("greater-than", "less-or-equal"))


def test_ranges_over_values_out_of_epoch_order_or_missing_match_filtering_each_record(
    ranges_account: SandboxData,
) -> None:
    # Stored times in another offset sort apart from their instant, and a profile without
    # `updated` matches no comparison: such ranges are not one slice of the sorted index.
    data = ranges_account
    api = Api(data)
    profiles = sorted(data.resources["profile"].values(), key=lambda p: p["attributes"]["updated"])
    with data.lock:
        for p in profiles[-60::4]:  # the latest: the densest stretch of `updated`
            ts = iso_to_epoch(p["attributes"]["updated"])
            shifted = dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=-9)))
            p["attributes"]["updated"] = shifted.isoformat()
        profiles[5]["attributes"]["updated"] = None
        data.version += 1
    by_text = [p["attributes"]["updated"] for p in profiles[-80:]]
    assert sorted(by_text) != sorted(by_text, key=iso_to_epoch)  # the offsets do disorder them
    bounds = [p["attributes"]["updated"] for p in profiles[-60::8]]
    ops = ("greater-than", "less-than")
    assert _check_ranges(api, data, "/api/profiles", "profile", "updated", "100", ops, bounds) > 10


def test_events_come_with_their_datetime_in_both_shapes_klaviyo_sends(client: httpx.Client) -> None:
    """LIVE_BEHAVIOUR.md §9: some `datetime`s are ISO 8601 with a "T", others space-separated
    with microseconds (Python's `str()` of the time); both name the second `timestamp` does,
    and the `fields[event]` path renders them the same."""
    for params in ({"page[size]": "1000"}, {"page[size]": "1000", "fields[event]": "datetime,timestamp"}):
        items, _ = walk(client, "/api/events", params)
        shapes = {"T": 0, " ": 0}
        for item in items:
            text, ts = item["attributes"]["datetime"], item["attributes"]["timestamp"]
            shapes[text[10]] += 1
            moment = dt.datetime.fromisoformat(text)
            assert moment.utcoffset() == timedelta(0)
            assert int(moment.timestamp()) == ts
            if text[10] == " ":
                assert len(text) == 32 and moment.microsecond > 0, text
            else:
                assert text == epoch_to_iso(ts)
        assert min(shapes.values()) > len(items) // 3, shapes


@pytest.mark.parametrize(
    ("path", "bound"),
    [
        ("/api/events", "greater-or-equal(datetime,{t})"),
        ("/api/events", "less-than(datetime,{t})"),
        ("/api/profiles", "greater-than(updated,{t})"),
        ("/api/campaigns", "and(equals(messages.channel,'email'),greater-or-equal(updated_at,{t}))"),
    ],
)
def test_a_bound_ahead_of_klaviyos_clock_on_an_incremental_field_is_refused(
    client: httpx.Client, data: SandboxData, path: str, bound: str
) -> None:
    """LIVE_BEHAVIOUR.md §11: Klaviyo answers 400 "End date may not be in the future"."""
    ahead = epoch_to_iso(data.clock() + 3600).replace("+00:00", "Z")
    refused = client.get(path, params={"filter": bound.format(t=ahead)})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["detail"] == f"End date may not be in the future: {ahead}"
    behind = epoch_to_iso(data.clock() - 3600).replace("+00:00", "Z")
    assert client.get(path, params={"filter": bound.format(t=behind)}).status_code == 200


def test_a_future_bound_on_a_field_that_is_not_incremental_is_still_answered(
    client: httpx.Client, data: SandboxData
) -> None:
    ahead = epoch_to_iso(data.clock() + 86_400).replace("+00:00", "Z")
    flt = f"and(equals(messages.channel,'email'),less-than(scheduled_at,{ahead}))"
    assert client.get("/api/campaigns", params={"filter": flt}).status_code == 200
