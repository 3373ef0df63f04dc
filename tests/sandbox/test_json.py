"""What the server sends (`Api.respond`: the events page written from a template, the other
documents through orjson) is JSON-equal to the documents `Api.handle` builds, and the ids and
times it writes are the ones a seed always gave."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.sandbox import SandboxData
from klaviyo_etl.sandbox.api import Api
from klaviyo_etl.sandbox.ids import event_id, event_uuid
from klaviyo_etl.sandbox.render import PropertiesText, Renderer, encode_json, json_text
from klaviyo_etl.sandbox.wire import Request
from klaviyo_etl.timeutil import epoch_to_iso
from tests.helpers.sandbox import make_config

BASE = "http://127.0.0.1:8080"
SUBSCRIPTIONS = {"additional-fields[profile]": "subscriptions"}
# (path, params); {metric} and {profile} are filled from the data.
CASES = [
    ("/api/events", {}),
    ("/api/events", {"page[size]": "1000", "sort": "datetime"}),
    ("/api/events", {"page[size]": "300", "sort": "-datetime"}),
    ("/api/events", {"page[size]": "200", "fields[event]": "datetime,event_properties"}),
    ("/api/events", {"page[size]": "200", "fields[event]": "uuid,timestamp", "sort": "-datetime"}),
    ("/api/events", {"page[size]": "1", "sort": "datetime", "fields[event]": "datetime"}),
    ("/api/events", {"page[size]": "150", "include": "profile,metric"}),
    ("/api/events", {"page[size]": "150", "include": "metric,profile,attributions"}),
    ("/api/events", {"page[size]": "150", "include": "attributions", "fields[event]": "datetime"}),
    (
        "/api/events",
        {
            "page[size]": "400",
            "sort": "datetime",
            "filter": "and(greater-or-equal(datetime,2026-05-01T00:00:00+00:00),"
            "less-than(datetime,2026-07-01T00:00:00+00:00))",
        },
    ),
    ("/api/events", {"filter": 'equals(metric_id,"{metric}")', "sort": "-datetime"}),
    ("/api/events", {"filter": 'equals(profile_id,"{profile}")', "include": "profile"}),
    ("/api/profiles", {}),
    ("/api/profiles", {"page[size]": "100", "sort": "updated", **SUBSCRIPTIONS}),
    (
        "/api/profiles",
        {
            "page[size]": "100",
            "sort": "-updated",
            "additional-fields[profile]": "subscriptions,predictive_analytics",
        },
    ),
    (
        "/api/profiles",
        {
            "page[size]": "100",
            "sort": "updated",
            "filter": "greater-than(updated,2026-01-01T00:00:00+00:00)",
            **SUBSCRIPTIONS,
        },
    ),
    ("/api/profiles", {"page[size]": "50", "fields[profile]": "email,location.city", **SUBSCRIPTIONS}),
    # A windowed sync's requests: its start, then each window ascending (and the same, descending).
    ("/api/profiles", {"sort": "updated", "fields[profile]": "updated", "page[size]": "1"}),
    ("/api/profiles", {"page[size]": "100", "sort": "updated", "filter": "{window}", **SUBSCRIPTIONS}),
    ("/api/profiles", {"page[size]": "100", "sort": "-updated", "filter": "{window}", **SUBSCRIPTIONS}),
    (
        "/api/profiles",
        {
            "page[size]": "100",
            "sort": "updated",
            "filter": "{window}",
            "additional-fields[profile]": "subscriptions,predictive_analytics",
        },
    ),
    ("/api/profiles", {"page[size]": "30", "sort": "-created", "fields[profile]": "email,updated"}),
    (
        "/api/profiles",
        {
            "page[size]": "30",
            "fields[profile]": "email,subscriptions",
            "additional-fields[profile]": "subscriptions",
        },
    ),
    (
        "/api/profiles",
        {
            "filter": "greater-than(subscriptions.email.marketing.suppression.timestamp,2020-01-01T00:00:00Z)",
            "sort": "-subscriptions.email.marketing.suppression.timestamp",
            **SUBSCRIPTIONS,
        },
    ),
    ("/api/profiles", {"filter": 'equals(email,"{email}")', **SUBSCRIPTIONS}),
    ("/api/profiles", {"page[size]": "25", "sort": "email", "include": "push-tokens", **SUBSCRIPTIONS}),
    ("/api/lists/{list}/profiles", {"page[size]": "50", **SUBSCRIPTIONS}),
    ("/api/profiles", {"page[size]": "40", "include": "push-tokens,conversations", **SUBSCRIPTIONS}),
    ("/api/metrics", {}),
    ("/api/lists", {"include": "tags,flow-triggers"}),
    ("/api/campaigns", {"filter": "equals(messages.channel,'email')", "include": "campaign-messages,tags"}),
    ("/api/flows", {"include": "flow-actions,tags"}),
]


@pytest.fixture(scope="module")
def account() -> SandboxData:
    return SandboxData.generate(make_config())


def _pages(api: Api, path: str, params: dict, base: str = BASE, limit: int = 4) -> Iterator[dict]:
    """Up to `limit` pages of a walk; each page's `respond` is checked against its `handle`."""
    query = {name: [value] for name, value in params.items()}
    for _ in range(limit):
        request = Request("GET", path, query, b"", base)
        status, document = api.handle(request)
        sent_status, sent = api.respond(request)
        assert sent_status == status
        assert json.loads(sent) == json.loads(json.dumps(document))
        yield document
        after = document["links"].get("next")
        if not after:
            return
        split = urlsplit(after)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)


@pytest.mark.parametrize(("path", "params"), CASES)
def test_what_is_sent_is_json_equal_to_the_document(account: SandboxData, path: str, params: dict) -> None:
    profile = account.resources["profile"][account.profile_ids[3]]["attributes"]
    updated = sorted(p["attributes"]["updated"] for p in account.resources["profile"].values())
    names = {
        "metric": account.metric_ids[2],
        "profile": account.profile_ids[3],
        "email": profile["email"],
        "list": account.list_ids[0],
        "window": f"and(greater-than(updated,{updated[100]}),less-than(updated,{updated[-50]}))",
    }
    filled = {name: value.format(**names) for name, value in params.items()}
    pages = list(_pages(Api(account), path.format(**names), filled))
    assert pages[0]["data"]


def test_events_sent_after_the_account_changed_match_the_documents() -> None:
    # Deleted campaigns, renamed flows, forgotten profiles and late events all reach the
    # events page's template path through `event_properties` and the indexes.
    data = SandboxData.generate(make_config(events=3000, profiles=300))
    data.delete("campaign", next(iter(data.resources["campaign"])))
    data.touch("flow", next(iter(data.resources["flow"])))
    data.forget_profile(data.profile_ids[7])
    data.delete("event", event_id(data.events.num[20]))
    data.add_events(40)
    data.add_events(25, start=data.now - dt.timedelta(days=30), end=data.now - dt.timedelta(days=29))
    pages = list(_pages(Api(data), "/api/events", {"page[size]": "1000", "include": "profile,metric"}))
    assert sum(len(p["data"]) for p in pages) == len(data.ids("event"))


def test_kept_event_properties_follow_a_change_to_the_account() -> None:
    # One Api serves before and after: the texts it kept must not outlive the change.
    data = SandboxData.generate(make_config(events=3000, profiles=300))
    api = Api(data)
    params = {"page[size]": "1000"}
    before = [e for page in _pages(api, "/api/events", params) for e in page["data"]]
    flow = next(e for e in before if kc.PROP_FLOW in e["attributes"]["event_properties"])
    flow_id = flow["attributes"]["event_properties"][kc.PROP_FLOW]
    data.touch("flow", flow_id)
    after = {e["id"]: e for page in _pages(api, "/api/events", params) for e in page["data"]}
    renamed = data.resources["flow"][flow_id]["attributes"]["name"]
    assert "(edited" in renamed
    assert after[flow["id"]]["attributes"]["event_properties"]["Flow Name"] == renamed


def test_kept_event_properties_are_the_events_own() -> None:
    data = SandboxData.generate(make_config(events=4000, profiles=300))
    kept = PropertiesText(data)
    for i in range(len(data.events)):
        assert json.loads(kept(i)) == data.event_properties(i)
    assert 0 < len(kept.text) < len(data.events) / 4  # shared: most events reuse a text


@pytest.mark.parametrize("base", ['http://we"ird\\host:1', "http://hôte.example:8080", "http://h\tx"])
def test_a_host_that_needs_escaping_is_escaped_in_every_link(account: SandboxData, base: str) -> None:
    for page in _pages(Api(account), "/api/events", {"page[size]": "50", "include": "profile"}, base):
        assert page["data"][0]["links"]["self"].startswith(f"{base}/api/events/")


def test_ids_that_need_escaping_are_escaped() -> None:
    assert json_text("01HZX4B5K2") == "01HZX4B5K2"
    for text in ['a"b', "a\\b", "tab\there", "line\nbreak", "é-ü", "\x00", "\ud800"]:
        assert json.loads(f'"{json_text(text)}"') == text


@pytest.mark.parametrize(
    "payload",
    [
        {"data": [{"id": "x", "n": 1.5, "ok": True, "none": None}], "name": "Café ☕"},
        {1: "int key", None: "null key", 2.5: "float key"},  # orjson refuses: the stdlib writes it
        {"big": 2**70, "negative": -(2**65)},
        {"surrogate": "\ud800"},
    ],
)
def test_encode_json_is_json_equal_to_the_stdlib(payload: dict) -> None:
    assert json.loads(encode_json(payload)) == json.loads(json.dumps(payload, separators=(",", ":")))


def test_event_ids_and_uuids_are_the_ones_a_seed_always_gave() -> None:
    assert [(event_id(n), event_uuid(n)) for n in (1, 2, 12345, 10**9 + 7, 62**11 - 1)] == [
        ("3CP5nXw4Elq", "9e3779b9-7f4a-1c15-b39c-c0605e110d9c"),
        ("3CP5ueJ4ucR", "3c6ef372-fe94-182b-a739-80c0bafed5d1"),
        ("3Cltw1KS6cQ", "a12ce22b-4ed9-1e90-a1f8-e6e1479ec934"),
        ("nsrXiVRmXUy", "137d6fea-f54c-1375-8878-0024d27f90da"),
        ("3CP5ZLC2t4e", "6866e6d3-3cd0-136b-a87a-848f07dad532"),
    ]


def test_epoch_to_iso_agrees_with_datetime() -> None:
    rng = random.Random(5)
    edges = [0, -1, 3599, 3600, -3600, 86_399, 86_400, 1.9, -1.9, 253_402_300_799]
    for ts in edges + [rng.randrange(-(10**10), 2 * 10**10) for _ in range(20_000)]:
        assert epoch_to_iso(ts) == dt.datetime.fromtimestamp(int(ts), dt.UTC).isoformat(), ts


def _profile_walks(api: Api, data: SandboxData, base: str = BASE) -> list[dict]:
    """Every profile sent by a full walk and by a windowed one, each page checked against its
    document; the full walk's profiles."""
    updated = sorted(p["attributes"]["updated"] for p in data.resources["profile"].values())
    # Up to the sandbox's clock: a bound past it is refused (LIVE_BEHAVIOUR.md §11).
    now = epoch_to_iso(int(data.clock()))
    window = f"and(greater-than(updated,{updated[len(updated) // 2]}),less-than(updated,{now}))"
    params = {"page[size]": "100", "sort": "updated", **SUBSCRIPTIONS}
    for page in _pages(api, "/api/profiles", {**params, "filter": window}, base, limit=100):
        assert page["data"]
    full = [p for page in _pages(api, "/api/profiles", params, base, limit=100) for p in page["data"]]
    assert {p["id"] for p in full} == data.ids("profile")
    return full


def test_profiles_sent_after_the_account_changed_match_the_documents() -> None:
    # One Api before and after: updated, deleted, forgotten, new, suppressed profiles and
    # new events (their `last_event_date`) all reach the profile template.
    data = SandboxData.generate(make_config(events=3000, profiles=300))
    api = Api(data)
    _profile_walks(api, data)
    touched, suppressed = data.profile_ids[4], data.profile_ids[5]
    data.touch("profile", touched)
    data.delete("profile", data.profile_ids[6])
    data.forget_profile(data.profile_ids[7])
    (new,) = data.add("profile")
    data.add_events(200)
    stamp = int(data.now.timestamp()) - 60
    with data.lock:  # a bounce, as `generate` records one, with the version bumped
        data.resources["profile"][suppressed]["consent"]["suppression"].append(("HARD_BOUNCE", stamp))
        data.version += 1
    after = {p["id"]: p for p in _profile_walks(api, data)}
    assert after[touched]["attributes"]["properties"]["touched"] == 1
    assert after[new]["attributes"]["last_event_date"] is None
    marketing = after[suppressed]["attributes"]["subscriptions"]["email"]["marketing"]
    assert marketing["suppression"][-1] == {"reason": "HARD_BOUNCE", "timestamp": epoch_to_iso(stamp)}
    assert marketing["can_receive_email_marketing"] is False


ODD = ['q"uote', "back\\slash", "tab\tnew\nline", "\x00\x1f", "é-ü ☕ 𝄞", "\ud800", "</script>"]


def test_profiles_with_characters_needing_escapes_are_sent_as_their_documents() -> None:
    data = SandboxData.generate(make_config(events=300, profiles=20))
    template = next(iter(data.resources["profile"].values()))
    with data.lock:
        for n, text in enumerate(ODD):
            record = copy.deepcopy(template)
            del record["seq"]
            record["id"] = f"01ODD{n}{text}"
            attrs = record["attributes"]
            attrs.update(
                first_name=text, organization=f"{text} & Co", updated=epoch_to_iso(1_780_000_000 + n)
            )
            attrs["properties"] = {text: [text, {"nested": text}], "n": n}
            attrs["location"]["city"] = text
            record["consent"] = {
                **record["consent"],
                "email": f"ODD{text}",
                "sms": text,
                "sms_ts": record["consent"]["email_ts"] + n,  # its own time but for the first
                "suppression": [(text, 1_780_000_000)],
            }
            data.put("profile", record)
    renderer = Renderer(data, BASE, fields={}, additional={"profile": ["subscriptions"]}, include=set())
    for n in range(len(ODD)):
        record = data.resources["profile"][f"01ODD{n}{ODD[n]}"]
        assert json.loads(renderer.profile_json(record)) == json.loads(
            json.dumps(renderer.resource("profile", record))
        )
    for base in (BASE, 'http://we"ird\\host:1', "http://hôte.example:8080"):
        sent = {p["id"]: p for p in _profile_walks(Api(data), data, base)}
        for n, text in enumerate(ODD):
            profile = sent[f"01ODD{n}{text}"]
            assert profile["attributes"]["first_name"] == text
            assert profile["links"]["self"] == f"{base}/api/profiles/01ODD{n}{text}/"


@pytest.mark.parametrize("additional", [[], ["subscriptions"], ["predictive_analytics", "subscriptions"]])
@pytest.mark.parametrize("on_profiles", [True, False])
def test_the_profile_template_is_json_equal_to_the_resource(
    account: SandboxData, additional: list[str], on_profiles: bool
) -> None:
    renderer = Renderer(
        account, BASE, fields={}, additional={"profile": additional}, include=set(), on_profiles=on_profiles
    )
    profiles = list(account.resources["profile"].values())
    assert any(p["consent"]["suppression"] for p in profiles)
    assert any(not account.profile_last_ts[account.profile_index[p["id"]]] for p in profiles)
    for record in profiles:
        text = renderer.profile_json(record)
        assert text is not None
        assert json.loads(text) == json.loads(json.dumps(renderer.resource("profile", record)))


@pytest.mark.parametrize(
    ("options", "stored"),
    [
        ({"fields": {"profile": ["email"]}}, {}),
        ({"include": {"push-tokens"}}, {}),
        ({}, {"last_event_date": None}),  # what `SandboxData.add` stores
        ({}, {"subscriptions": "stored"}),
    ],
)
def test_the_profile_template_leaves_to_the_documents_what_it_does_not_write(
    account: SandboxData, options: dict, stored: dict
) -> None:
    record = copy.deepcopy(account.resources["profile"][account.profile_ids[1]])
    record["attributes"].update(stored)
    renderer = Renderer(
        account,
        BASE,
        **{"fields": {}, "additional": {"profile": ["subscriptions"]}, "include": set(), **options},
    )
    assert renderer.profile_json(record) is None
    assert json.loads(renderer.resource_json("profile", record)) == json.loads(
        json.dumps(renderer.resource("profile", record))
    )
