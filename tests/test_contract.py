"""Client contract tests: every request the sync makes, replayed from vcrpy cassettes.

Each test sends the request a stream sends (same path, and the params the stream's own
`params(...)` returns, which is what its `run` sends), inside a cassette under `cassettes/`, and checks the answer has what our models and
repositories read. Replay is offline and refuses any request the cassette lacks, so a
change to a request's shape or headers fails here until `make cassettes` re-records it
(against the sandbox, or a real account when KLAVIYO_API_KEY is set) — which is when a
server that disagrees would say so. See `tests/helpers/contract.py` for the modes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from contextlib import aclosing
from types import SimpleNamespace

import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.client import RequestStats
from klaviyo_etl.db.repositories import TABLES
from klaviyo_etl.endpoints import REVISION
from klaviyo_etl.errors import BadRequest
from klaviyo_etl.models import Page, Resource
from klaviyo_etl.sandbox import SandboxConfig
from klaviyo_etl.sync.streams import ReportingStream, build_streams
from klaviyo_etl.sync.streams.reporting import REPORT_STATISTICS
from klaviyo_etl.timeutil import parse_time
from tests.helpers.contract import (
    ANCHOR_FILE,
    CANONICAL_BASE,
    REDACTED_AUTH,
    SANDBOX_NOW,
    Recorder,
    Session,
    Target,
    cassette_files,
    cassette_requests,
    klaviyo_target,
    recording,
    replay_target,
    write_anchor,
)

STREAMS = build_streams()
JSONAPI = "application/vnd.api+json"


@pytest.fixture(scope="module")
def target(sandbox_factory):
    if not recording():
        yield replay_target()
        return
    key = os.environ.get("KLAVIYO_API_KEY")
    if key:
        t = klaviyo_target(key)
        write_anchor("klaviyo", t.now)
        yield t
        return
    with sandbox_factory("tiny", now=SANDBOX_NOW) as sb:
        write_anchor("sandbox", SANDBOX_NOW)
        yield Target("sandbox", sb.server.url, sb.config.api_key, SANDBOX_NOW, recording=True)


@pytest.fixture(scope="module")
def recorder(target) -> Recorder:
    return Recorder(target)


# -- the request shapes the streams send -------------------------------------------------------


def resource_params(name: str, variant: str | None = None, mark: dt.datetime | None = None) -> dict:
    """What `ResourceStream.run` sends for one variant; no mark is a first (full) scan."""
    return STREAMS[name].params(variant, mark)


def child_params(name: str, mark: dt.datetime | None = None) -> dict:
    """What `ChildStream.run` sends for one parent."""
    return STREAMS[name].params(mark)


def window_params(name: str, lo: dt.datetime, hi: dt.datetime | None, **override) -> dict:
    """What `WindowedStream.fetch` sends for one window (hi=None: the open-ended last one)."""
    return {**STREAMS[name].params(lo, hi), **override}


# -- checks shared by every test ---------------------------------------------------------------


def check_sent(session: Session, count: int | None = None) -> None:
    """The headers Klaviyo requires, the key on every request, and only to our base URL."""
    assert session.sent, "no request was sent"
    if count is not None:
        # distinct requests: while recording a live account, a 429 makes the client send one twice
        assert len({(r.method, str(r.url), r.content) for r in session.sent}) == count
    base = session.target.base_url
    for request in session.sent:
        assert str(request.url).startswith(base + "/api/"), request.url
        assert request.headers["revision"] == REVISION == "2026-07-15"
        assert request.headers["accept"] == JSONAPI
        assert request.headers["authorization"] == f"Klaviyo-API-Key {session.target.api_key}"


def require(target: Target, items: list, what: str) -> None:
    """Sandbox cassettes always have data; a real account may simply lack some (no SMS)."""
    if not items and target.real_account:
        pytest.skip(f"the recorded account has no {what}")
    assert items, f"no {what} in the response"


async def get_page(session: Session, path: str, params: dict) -> Page:
    body = await session.client.get(path, params)
    page = Page.parse(body)
    assert isinstance(page, Page)
    return page


def assert_types(resources: list[Resource], expected: str) -> None:
    assert {r.type for r in resources} <= {expected}, {r.type for r in resources}


def assert_has(resource: Resource, *keys: str) -> None:
    missing = [k for k in keys if k not in resource.attributes]
    assert not missing, f"{resource.type} {resource.id} lacks {missing}"


def assert_sorted(resources: list[Resource], field: str) -> None:
    values = [parse_time(r.attributes[field]) for r in resources if r.attributes.get(field)]
    assert values == sorted(values), f"not sorted by {field}"


def row_of(resource: Resource) -> dict:
    return TABLES[resource.type].to_row(resource)


# -- metrics -----------------------------------------------------------------------------------


async def test_metrics(recorder: Recorder):
    with recorder.cassette("metrics") as s:
        async with s.make_client():
            page = await get_page(s, "/api/metrics", resource_params("metrics"))
    check_sent(s, 1)
    require(s.target, page.data, "metrics")
    assert_types(page.data, "metric")
    for m in page.data:
        assert_has(m, "name", "created", "updated", "integration")
        row = row_of(m)
        assert row["name"] and row["integration_name"] and row["integration_category"]


# -- events ------------------------------------------------------------------------------------


async def test_events_earliest(recorder: Recorder):
    """The first request of a first sync: the oldest event, one row, one field."""
    stream = STREAMS["events"]
    with recorder.cassette("events_earliest") as s:
        async with s.make_client() as client:
            earliest = await stream.earliest(SimpleNamespace(client=client, stats=RequestStats()))
    check_sent(s, 1)
    params = s.sent[0].url.params
    assert dict(params) == {k: str(v) for k, v in stream.earliest_params().items()}
    assert params["sort"] == "datetime" and params["fields[event]"] == "datetime"
    assert params["page[size]"] == "1"
    body = json.loads(s.responses[0].content)
    assert len(body["data"]) == 1
    assert set(body["data"][0]["attributes"]) == {"datetime"}  # the sparse fieldset is honoured
    require(s.target, [earliest] if earliest else [], "events")
    assert earliest <= s.target.now


async def test_events_window(recorder: Recorder, target: Target):
    lo, hi = target.now - dt.timedelta(days=2), target.now - dt.timedelta(days=1)
    with recorder.cassette("events_window") as s:
        async with s.make_client():
            page = await get_page(s, "/api/events", window_params("events", lo, hi))
    check_sent(s, 1)
    require(s.target, page.data, "events in the window")
    assert_types(page.data, "event")
    assert_sorted(page.data, "datetime")
    for e in page.data:
        assert_has(e, "datetime", "timestamp", "uuid", "event_properties")
        assert isinstance(e.attributes["event_properties"], dict)
        when = parse_time(e.attributes["datetime"])
        assert lo <= when < hi
        assert e.attributes["timestamp"] == int(when.timestamp())
        row = row_of(e)
        assert row["metric_id"] and row["profile_id"], "events must relate a metric and a profile"
        assert row["datetime"] and row["timestamp"]


async def test_events_pagination_follows_next_links(recorder: Recorder, target: Target):
    """The open-ended last window, in pages of 5 so `links.next` must be followed (3 pages)."""
    lo = target.now - dt.timedelta(days=3)
    params = window_params("events", lo, None, **{"page[size]": 5})
    pages: list[Page] = []
    with recorder.cassette("events_pages") as s:
        async with (
            s.make_client() as client,
            aclosing(client.pages("/api/events", params, parse=Page.parse_json)) as stream,
        ):
            async for page in stream:
                pages.append(page)
                if len(pages) == 3:
                    break
    check_sent(s, len(pages))
    if len(pages) < 2 and target.real_account:
        pytest.skip("the recorded account has under 6 events in the last 3 days")
    assert len(pages) == 3
    ids = [e.id for p in pages for e in p.data]
    assert len(ids) == 15 and len(set(ids)) == 15, "pages overlap or are short"
    assert_sorted([e for p in pages for e in p.data], "datetime")
    for i, page in enumerate(pages[:-1]):
        nxt = page.links.next
        assert nxt and ("page%5Bcursor%5D=" in nxt or "page[cursor]=" in nxt)
        follow = s.sent[i + 1].url
        assert follow.params.get("page[cursor]"), "the next request must carry the cursor"
        # the next link's path and query were sent, against our own base URL
        assert follow.path.rstrip("/") == "/api/events"
        assert str(follow).startswith(target.base_url)


async def test_bad_filter_is_a_one_line_bad_request(recorder: Recorder):
    with recorder.cassette("error_bad_filter") as s:
        async with s.make_client() as client:
            with pytest.raises(BadRequest) as info:
                await client.get("/api/events", {"filter": 'equals(not_a_field,"x")'})
    check_sent(s, 1)  # a 400 is final: never retried
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("400: bad request (GET /api/events): ")
    assert info.value.status == 400 and info.value.detail
    assert info.value.exit_code == 1


# -- profiles ----------------------------------------------------------------------------------


async def test_profiles_earliest(recorder: Recorder):
    stream = STREAMS["profiles"]
    with recorder.cassette("profiles_earliest") as s:
        async with s.make_client() as client:
            earliest = await stream.earliest(SimpleNamespace(client=client, stats=RequestStats()))
    check_sent(s, 1)
    params = s.sent[0].url.params
    assert dict(params) == {k: str(v) for k, v in stream.earliest_params().items()}
    assert params["sort"] == "updated" and params["fields[profile]"] == "updated"
    body = json.loads(s.responses[0].content)
    assert len(body["data"]) == 1 and set(body["data"][0]["attributes"]) == {"updated"}
    require(s.target, [earliest] if earliest else [], "profiles")
    assert earliest <= s.target.now


async def test_profiles_window_with_subscriptions(recorder: Recorder, target: Target):
    lo, hi = target.now - dt.timedelta(days=10), target.now
    params = window_params("profiles", lo, hi)
    assert params["additional-fields[profile]"] == "subscriptions"
    with recorder.cassette("profiles_window") as s:
        async with s.make_client():
            page = await get_page(s, "/api/profiles", params)
    check_sent(s, 1)
    require(s.target, page.data, "profiles updated in the last 10 days")
    assert_types(page.data, "profile")
    assert_sorted(page.data, "updated")
    for p in page.data:
        assert_has(p, "email", "phone_number", "created", "updated", "location", "subscriptions")
        # profiles only have `greater-than`: the stream asks for > lo - 1 s
        assert lo - dt.timedelta(seconds=1) < parse_time(p.attributes["updated"]) < hi
    rows = [row_of(p) for p in page.data]
    assert any(r["email"] for r in rows)
    assert any(r.get("email_consent") for r in rows), "subscriptions.email.marketing.consent is read"


# -- incremental collections: a full scan, then a scan from a watermark in the middle of it ------


async def full_then_incremental(
    session: Session, path: str, params_for, field: str, endpoint, what: str
) -> tuple[Page, Page, Resource]:
    """Scan `path` as a first run does, then as the next run does from a watermark equal to
    the middle row's `field` (what the stream stores: the latest value it saw).

    Checks the filter the stream builds is accepted and means what the stream assumes: the
    row at exactly the watermark is read again (never skipped), every later row of the full
    scan comes back, and rows older than the watermark do not."""
    full = await get_page(session, path, params_for(None))
    require(session.target, full.data, what)
    assert_sorted(full.data, field)
    boundary = full.data[len(full.data) // 2]
    mark = parse_time(boundary.attributes[field])
    incremental = await get_page(session, path, params_for(mark))
    strict = "greater-or-equal" not in set(endpoint.incremental_filter_operators or [])
    floor = mark - dt.timedelta(seconds=1) if strict else mark  # `> mark - 1s` or `>= mark`
    ids = {r.id for r in incremental.data}
    assert boundary.id in ids, "the row at the watermark must be re-read"
    assert {r.id for r in full.data if parse_time(r.attributes[field]) >= mark} <= ids
    for r in incremental.data:
        value = parse_time(r.attributes[field])
        assert value > floor if strict else value >= floor, (r.id, value, mark)
    older = {r.id for r in full.data if parse_time(r.attributes[field]) <= mark - dt.timedelta(seconds=1)}
    assert not ids & older, "rows older than the watermark came back"
    assert_sorted(incremental.data, field)
    return full, incremental, boundary


def both(full: Page, incremental: Page) -> list[Resource]:
    return full.data + incremental.data


@pytest.mark.parametrize("name", ["lists", "segments"])
async def test_lists_and_segments(recorder: Recorder, name: str):
    stream = STREAMS[name]
    with recorder.cassette(name) as s:
        async with s.make_client():
            full, inc, _ = await full_then_incremental(
                s,
                stream.endpoint.path,
                lambda mark: resource_params(name, mark=mark),
                "updated",
                stream.endpoint,
                name,
            )
    check_sent(s, 2)
    kind = name[:-1]
    assert_types(both(full, inc), kind)
    extra = ("opt_in_process",) if kind == "list" else ("is_active", "is_processing", "is_starred")
    for r in both(full, inc):
        assert_has(r, "name", "created", "updated", *extra)
        assert row_of(r)["name"]
    for page in (full, inc):
        assert_types(page.included, "tag")
        assert_tags_included(page)


def assert_tags_included(page: Page) -> None:
    """`include=tags`: every referenced tag arrives in `included`, as a tag."""
    referenced = {t for r in page.data for t in r.related_ids("tags")}
    included = {r.id for r in page.included if r.type == "tag"}
    assert referenced <= included
    for r in page.data:
        assert isinstance((r.relationships or {}).get("tags", {}).get("data"), list)


@pytest.mark.parametrize("group", ["lists", "segments"])
async def test_group_members(recorder: Recorder, group: str):
    """GET /api/{lists|segments}/{id}/profiles: profiles with `joined_group_at`."""
    stream = STREAMS[f"{group[:-1]}_members"]
    with recorder.cassette(stream.name) as s:
        async with s.make_client():
            parents = await get_page(s, f"/api/{group}", resource_params(group))
            require(s.target, parents.data, group)
            parent = parents.data[0]
            full, inc, _ = await full_then_incremental(
                s,
                stream.endpoint.path.replace("{id}", parent.id),
                lambda mark: child_params(stream.name, mark),
                "joined_group_at",
                stream.endpoint,
                f"members of the first {group[:-1]}",
            )
    check_sent(s, 3)
    assert all(r.url.path.rstrip("/") == f"/api/{group}/{parent.id}/profiles" for r in s.sent[1:])
    assert_types(both(full, inc), "profile")
    for p in both(full, inc):
        assert_has(p, "email", "joined_group_at")


# -- campaigns and flows -----------------------------------------------------------------------


@pytest.mark.parametrize("channel", kc.CAMPAIGN_CHANNELS)
async def test_campaigns(recorder: Recorder, channel: str):
    """The required channel filter is accepted (alone and and-ed with the watermark), and
    messages come included, on that channel."""
    stream = STREAMS["campaigns"]
    assert f'equals(messages.channel,"{channel}")' in resource_params("campaigns", channel)["filter"]
    with recorder.cassette(f"campaigns_{channel}") as s:
        async with s.make_client():
            full, inc, _ = await full_then_incremental(
                s,
                "/api/campaigns",
                lambda mark: resource_params("campaigns", channel, mark),
                "updated_at",
                stream.endpoint,
                f"{channel} campaigns",
            )
    check_sent(s, 2)
    assert s.sent[1].url.params["filter"].startswith("and(equals(messages.channel,")
    for page in (full, inc):
        assert_types(page.data, "campaign")
        assert {r.type for r in page.included} <= {"campaign-message", "tag"}
        messages = {r.id: r for r in page.included if r.type == "campaign-message"}
        for c in page.data:
            assert_has(c, "name", "status", "archived", "send_strategy", "created_at", "updated_at")
            row = row_of(c)
            assert row["name"] and row["status"] and row["created_at"] and row["updated_at"]
            ids = c.related_ids("campaign-messages")
            assert ids, f"campaign {c.id} has no campaign-messages relationship"
            assert set(ids) <= set(messages), "included campaign-messages are missing"
        for m in messages.values():
            assert m.attributes["definition"]["channel"] == channel
            row = row_of(m)
            assert row["channel"] == channel and row["campaign_id"] in {c.id for c in page.data}
            assert row["created_at"] and row["updated_at"]


async def test_flows_include_actions(recorder: Recorder):
    stream = STREAMS["flows"]
    with recorder.cassette("flows") as s:
        async with s.make_client():
            full, inc, _ = await full_then_incremental(
                s,
                "/api/flows",
                lambda mark: resource_params("flows", mark=mark),
                "updated",
                stream.endpoint,
                "flows",
            )
    check_sent(s, 2)
    for page in (full, inc):
        assert_types(page.data, "flow")
        actions = {r.id: r for r in page.included if r.type == "flow-action"}
        assert {r.type for r in page.included} <= {"flow-action", "tag"}
        for f in page.data:
            assert_has(f, "name", "status", "archived", "trigger_type", "created", "updated")
            ids = f.related_ids("flow-actions")
            assert set(ids) <= set(actions), "included flow-actions are missing"
            for a in ids:
                assert actions[a].related_id("flow") == f.id
        require(s.target, list(actions), "flow actions")
        for a in actions.values():
            assert_has(a, "definition", "created", "updated")
            assert a.attributes["definition"]["type"]
            assert row_of(a)["flow_id"]
        assert_tags_included(page)


async def test_archived_campaigns_and_flows_come_only_with_the_archived_filter(recorder: Recorder):
    """Klaviyo lists archived campaigns and flows only when the filter asks for them: the
    streams' archived variants send `equals(archived,true)` (and-ed with the campaigns'
    channel), and what comes back is archived, with its messages or actions included."""
    campaigns = resource_params("campaigns", "email:archived")
    flows = resource_params("flows", "archived")
    assert campaigns["filter"] == 'and(equals(messages.channel,"email"),equals(archived,true))'
    assert flows["filter"] == "equals(archived,true)"
    with recorder.cassette("archived") as s:
        async with s.make_client():
            default = await get_page(s, "/api/campaigns", resource_params("campaigns", "email"))
            archived = await get_page(s, "/api/campaigns", campaigns)
            archived_flows = await get_page(s, "/api/flows", flows)
    check_sent(s, 3)
    assert s.sent[1].url.params["filter"] == campaigns["filter"]
    assert s.sent[2].url.params["filter"] == flows["filter"]
    require(s.target, archived.data, "archived email campaigns")
    assert all(row_of(c)["archived"] == 1 for c in archived.data)
    assert not {c.id for c in archived.data} & {c.id for c in default.data}
    assert all(row_of(c)["archived"] == 0 for c in default.data)
    messages = {r.id for r in archived.included if r.type == "campaign-message"}
    assert all(set(c.related_ids("campaign-messages")) <= messages for c in archived.data)
    require(s.target, archived_flows.data, "archived flows")
    assert all(row_of(f)["archived"] == 1 for f in archived_flows.data)
    actions = {r.id for r in archived_flows.included if r.type == "flow-action"}
    assert all(set(f.related_ids("flow-actions")) <= actions for f in archived_flows.data)


def _send_actions(page: Page) -> list[Resource]:
    return [
        r
        for r in page.included
        if r.type == "flow-action"
        and str((r.attributes.get("definition") or {}).get("type", "")).startswith("send-")
    ]


async def test_flow_messages(recorder: Recorder):
    stream = STREAMS["flow_messages"]
    with recorder.cassette("flow_messages") as s:
        async with s.make_client():
            flows = await get_page(s, "/api/flows", resource_params("flows"))
            sends = _send_actions(flows)
            require(s.target, sends, "send actions in flows")
            action = sends[0]
            full, inc, _ = await full_then_incremental(
                s,
                stream.endpoint.path.replace("{id}", action.id),
                lambda mark: child_params("flow_messages", mark),
                "updated",
                stream.endpoint,
                "flow messages",
            )
    check_sent(s, 3)
    assert_types(both(full, inc), "flow-message")
    for m in both(full, inc):
        assert_has(m, "channel", "definition", "created", "updated")
        row = row_of(m)
        assert row["flow_action_id"] == action.id
        assert row["channel"] and row["created"] and row["updated"]


# -- forms, templates, tags --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,field,keys",
    [
        ("forms", "updated_at", ("name", "status", "ab_test", "created_at", "updated_at")),
        ("templates", "updated", ("name", "editor_type", "created", "updated")),
    ],
)
async def test_forms_and_templates(recorder: Recorder, name: str, field: str, keys: tuple):
    stream = STREAMS[name]
    with recorder.cassette(name) as s:
        async with s.make_client():
            full, inc, _ = await full_then_incremental(
                s,
                stream.endpoint.path,
                lambda mark: resource_params(name, mark=mark),
                field,
                stream.endpoint,
                name,
            )
    check_sent(s, 2)
    assert_types(both(full, inc), name[:-1])
    for r in both(full, inc):
        assert_has(r, *keys)
        assert row_of(r)["name"]


async def test_tags(recorder: Recorder):
    """Tags have no incremental field: always a full scan, no sort, no filter."""
    params = resource_params("tags")
    assert set(params) == {"page[size]"}
    with recorder.cassette("tags") as s:
        async with s.make_client():
            page = await get_page(s, "/api/tags", params)
    check_sent(s, 1)
    require(s.target, page.data, "tags")
    assert_types(page.data, "tag")
    for t in page.data:
        assert_has(t, "name")
        row = row_of(t)
        assert row["name"] and row["tag_group_id"]


# -- the account -------------------------------------------------------------------------------


async def test_accounts(recorder: Recorder):
    """The key's own account: one object, no pages, no filter, sort or page size; the
    timezone and preferred currency the reports and `check` read land in their columns."""
    params = resource_params("accounts")
    assert params == {}
    with recorder.cassette("accounts") as s:
        async with s.make_client():
            body = await s.client.get("/api/accounts", params)
    check_sent(s, 1)
    page = Page.parse(body)
    assert len(page.data) == 1 and "next" not in (body.get("links") or {})
    assert_types(page.data, "account")
    (account,) = page.data
    assert_has(account, "timezone", "preferred_currency", "contact_information", "test_account")
    row = row_of(account)
    assert row["timezone"] and re.fullmatch(r"[A-Z]{3}", row["preferred_currency"])
    assert row["organization_name"] and row["test_account"] in (0, 1)


# -- Reporting API -----------------------------------------------------------------------------


@pytest.mark.parametrize("report", ReportingStream.REPORTS, ids=[r[0] for r in ReportingStream.REPORTS])
async def test_values_report(recorder: Recorder, report: tuple):
    name, path, rtype, id_key, message_key, table = report
    stream = ReportingStream()
    with recorder.cassette(f"report_{name}") as s:
        async with s.make_client() as client:
            metrics = await get_page(s, "/api/metrics", resource_params("metrics"))
            placed = [m.id for m in metrics.data if m.attributes.get("name") == kc.PLACED_ORDER]
            require(s.target, placed, f"{kc.PLACED_ORDER!r} metric")
            source = "campaigns" if table == "campaigns" else "flows"
            entities = await get_page(
                s, f"/api/{source}", resource_params(source, "email" if source == "campaigns" else None)
            )
            ids = sorted(e.id for e in entities.data)[: stream.BATCH]
            require(s.target, ids, source)
            body = await client.post(path, stream.body(rtype, id_key, ids, placed[0], s.target.now.date()))
    check_sent(s, 3)
    post = s.sent[2]
    assert post.method == "POST" and post.url.path == path
    sent_body = json.loads(post.content)
    assert sent_body["data"]["attributes"]["statistics"] == REPORT_STATISTICS
    data = body["data"]
    assert data["type"] == rtype
    results = data["attributes"]["results"]
    require(s.target, results, f"{name} results")
    for item in results:
        g = item["groupings"]
        assert g[id_key] in ids and g[message_key] and g["send_channel"]
        stats = item["statistics"]
        assert set(REPORT_STATISTICS) <= set(stats), set(REPORT_STATISTICS) - set(stats)
        # SMS has no opens: its open rate and click-to-open rate may be null (the sandbox's
        # choice; LIVE_BEHAVIOUR.md), which our reports show as n/a.
        no_opens = {"open_rate", "click_to_open_rate"} if g["send_channel"] == "sms" else set()
        assert all(isinstance(stats[k], int | float) for k in REPORT_STATISTICS if k not in no_opens)
        assert all(stats[k] is None or isinstance(stats[k], int | float) for k in no_opens)


# -- fields revision 2026-07-15 moved, and the request body type it declares ---------------------


async def test_flow_action_rows_get_their_action_type(recorder: Recorder):
    stream = STREAMS["flows"]
    with recorder.cassette("flows", replay_only=True) as s:
        async with s.make_client():
            page, _, _ = await full_then_incremental(
                s,
                "/api/flows",
                lambda mark: resource_params("flows", mark=mark),
                "updated",
                stream.endpoint,
                "flows",
            )
    actions = [r for r in page.included if r.type == "flow-action"]
    assert actions
    assert all(row_of(a)["action_type"] for a in actions)


async def test_flow_message_rows_get_their_name(recorder: Recorder):
    with recorder.cassette("flow_messages", replay_only=True) as s:
        async with s.make_client():
            flows = await get_page(s, "/api/flows", resource_params("flows"))
            action = _send_actions(flows)[0]
            full, _, _ = await full_then_incremental(
                s,
                STREAMS["flow_messages"].endpoint.path.replace("{id}", action.id),
                lambda mark: child_params("flow_messages", mark),
                "updated",
                STREAMS["flow_messages"].endpoint,
                "flow messages",
            )
    assert full.data
    assert all(row_of(m)["name"] for m in full.data)


async def test_report_posts_are_jsonapi(recorder: Recorder):
    name, path, rtype, id_key, *_ = ReportingStream.REPORTS[0]
    with recorder.cassette(f"report_{name}", replay_only=True) as s:
        async with s.make_client() as client:
            metrics = await get_page(s, "/api/metrics", resource_params("metrics"))
            placed = [m.id for m in metrics.data if m.attributes.get("name") == kc.PLACED_ORDER]
            entities = await get_page(s, "/api/campaigns", resource_params("campaigns", "email"))
            ids = sorted(e.id for e in entities.data)[: ReportingStream.BATCH]
            await client.post(
                path, ReportingStream().body(rtype, id_key, ids, placed[0], s.target.now.date())
            )
    assert s.sent[2].headers["content-type"] == JSONAPI


# -- the cassettes themselves ------------------------------------------------------------------


def test_every_endpoint_the_sync_calls_has_a_cassette():
    recorded = {
        (
            i["request"]["method"],
            re.sub(r"/+$", "", i["request"]["uri"].split("?")[0].removeprefix(CANONICAL_BASE)),
        )
        for f in cassette_files()
        for i in cassette_requests(f)
    }
    called = {("GET", s.endpoint.path) for s in STREAMS.values() if hasattr(s, "endpoint")}
    called |= {("POST", r[1]) for r in ReportingStream.REPORTS}
    for method, template in sorted(called):
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
        assert any(m == method and pattern.match(p) for m, p in recorded), (
            f"no cassette for {method} {template}"
        )


def test_cassettes_hold_no_api_key_and_only_the_canonical_host():
    files = cassette_files()
    assert ANCHOR_FILE in files and len(files) >= 20
    secrets = {os.environ.get("KLAVIYO_API_KEY"), SandboxConfig().api_key} - {None, ""}
    for path in files:
        text = path.read_text()
        assert set(re.findall(r"pk_[A-Za-z0-9_]+", text)) <= {"pk_REDACTED"}, path.name
        assert not any(secret in text for secret in secrets), path.name
        assert "127.0.0.1" not in text and "localhost" not in text, path.name
        for interaction in cassette_requests(path):
            request = interaction["request"]
            assert request["uri"].startswith(CANONICAL_BASE + "/api/"), request["uri"]
            headers = {k.lower(): v for k, v in request["headers"].items()}
            assert headers["authorization"] == [REDACTED_AUTH]
            assert headers["revision"] == [REVISION]
            assert headers["accept"] == [JSONAPI]
            assert "set-cookie" not in {k.lower() for k in interaction["response"]["headers"]}
