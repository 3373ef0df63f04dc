"""What the top-level collection streams send (`params`), and what they store from the sandbox
when children, tags or timestamps change."""

from __future__ import annotations

import datetime as dt

import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.db import open_database
from klaviyo_etl.sync.streams import CampaignStream, ResourceStream, build_streams
from klaviyo_etl.timeutil import epoch_to_iso
from tests.helpers.sync import live_ids, sync_ok

STREAMS = build_streams()
MARK = dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC)


def test_a_first_scan_asks_for_everything_sorted_with_includes():
    lists = STREAMS["lists"]
    assert isinstance(lists, ResourceStream)
    assert lists.params() == {
        "sort": "updated",
        "include": "tags",
        "page[size]": lists.endpoint.page_size_max,
    }


def test_a_later_scan_filters_from_the_mark():
    templates = STREAMS["templates"]
    assert templates.params(mark=MARK) == {
        "filter": "greater-or-equal(updated,2026-05-01T10:00:00Z)",
        "sort": "updated",
        "page[size]": templates.endpoint.page_size_max,
    }


def test_tags_have_no_incremental_field_so_no_filter_and_no_sort():
    assert set(STREAMS["tags"].params()) == {"page[size]"}


@pytest.mark.parametrize("channel", kc.CAMPAIGN_CHANNELS)
def test_campaigns_always_name_their_channel_and_and_it_with_the_mark(channel):
    campaigns = STREAMS["campaigns"]
    assert isinstance(campaigns, CampaignStream)
    assert campaigns.variants[: len(kc.CAMPAIGN_CHANNELS)] == kc.CAMPAIGN_CHANNELS
    first = campaigns.params(channel)
    assert first["filter"] == f'equals(messages.channel,"{channel}")'
    assert first["include"] == "campaign-messages,tags"
    later = campaigns.params(channel, MARK)
    assert later["filter"] == (
        f'and(equals(messages.channel,"{channel}"),greater-or-equal(updated_at,2026-05-01T10:00:00Z))'
    )
    assert later["sort"] == "updated_at"


def test_a_full_scan_flags_actions_and_messages_their_live_parents_no_longer_include(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    sync_ok(server, config, db_path, streams=["flows", "flow_messages", "campaigns"])
    db = open_database(db_path)
    action, flow = db.execute(
        "SELECT flow_action_id, flow_id FROM flow_messages ORDER BY flow_action_id LIMIT 1"
    ).fetchone()
    campaign = sorted(data.ids("campaign"))[0]
    message = data.campaign_messages_of(campaign)[0]["id"]
    data.delete("flow-action", action)  # the flow stays live, without this action
    data.delete("campaign-message", message)

    sync_ok(server, config, db_path, streams=["flows", "campaigns"], reconcile=True)
    db = open_database(db_path)
    assert db["flows"].get(flow)["deleted_at"] is None
    assert db["flow_actions"].get(action)["deleted_at"] is not None
    assert (
        db.execute(
            "SELECT COUNT(*) FROM flow_messages WHERE flow_action_id = ? AND deleted_at IS NULL", [action]
        ).fetchone()[0]
        == 0
    )
    assert db["campaigns"].get(campaign)["deleted_at"] is None
    assert db["campaign_messages"].get(message)["deleted_at"] is not None
    assert live_ids(db_path, "flow_actions") == data.ids("flow-action")
    assert live_ids(db_path, "campaign_messages") == data.ids("campaign-message")


def test_a_full_scan_keeps_archived_flows_actions_and_messages_live(sandbox, tmp_path):
    # Archived flows and campaigns come only in their own scans (`equals(archived,true)`):
    # the check of children against what their parents include must count those scans too.
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    archived = {
        kind: sorted(rid for rid, r in data.resources[kind].items() if r["attributes"].get("archived"))
        for kind in ("flow", "campaign")
    }
    assert archived["flow"] and archived["campaign"], "the sandbox should archive some"
    flow = archived["flow"][0]
    actions = sorted(a["id"] for a in data.flow_actions_of(flow))
    assert len(actions) >= 2, "an archived flow with more than one action"
    messages = {m["id"] for a in actions for m in data.flow_messages_of(a)}
    assert messages
    sync_ok(server, config, db_path, streams=["flows", "flow_messages", "campaigns"])
    gone = actions[-1]
    data.delete("flow-action", gone)  # the archived flow loses one action, keeps the others

    sync_ok(server, config, db_path, streams=["flows", "campaigns"], reconcile=True)
    db = open_database(db_path)
    assert db["flows"].get(flow)["deleted_at"] is None
    assert db["flow_actions"].get(gone)["deleted_at"] is not None  # the archived scan counts
    for action in actions[:-1]:
        assert db["flow_actions"].get(action)["deleted_at"] is None, action
    kept = {m["id"] for a in actions[:-1] for m in data.flow_messages_of(a)}
    assert kept and kept <= live_ids(db_path, "flow_messages")
    for campaign in archived["campaign"]:
        assert db["campaigns"].get(campaign)["deleted_at"] is None, campaign
    assert live_ids(db_path, "flows") == data.ids("flow")
    assert live_ids(db_path, "flow_actions") == data.ids("flow-action")
    assert live_ids(db_path, "campaigns") == data.ids("campaign")
    assert live_ids(db_path, "campaign_messages") == data.ids("campaign-message")


def test_a_row_updated_in_the_future_does_not_hold_its_stream_back(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    ahead, later_edit = sorted(data.ids("template"))[:2]
    with data.lock:  # one template stamped a month ahead (a skewed integration, a bad import)
        data.resources["template"][ahead]["attributes"]["updated"] = epoch_to_iso(
            (data.now + dt.timedelta(days=30)).timestamp()
        )
        data.version += 1
    sync_ok(server, config, db_path, streams=["templates"])
    data.touch("template", later_edit)  # edited now, before the future date
    sync_ok(server, config, db_path, streams=["templates"], reconcile=False)
    stored = open_database(db_path)["templates"].get(later_edit)
    assert stored["name"] == data.resources["template"][later_edit]["attributes"]["name"]
    assert "(edited" in stored["name"]


def test_links_to_a_removed_tag_are_dropped(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    sync_ok(server, config, db_path)
    db = open_database(db_path)
    tag = db.execute(
        "SELECT tag_id FROM tag_links GROUP BY tag_id ORDER BY COUNT(*) DESC LIMIT 1"
    ).fetchone()[0]
    untagged_kind, untagged = next(
        (kind, rid) for (kind, rid), tags in sorted(data.tag_links.items()) if kind == "list" and tags
    )
    data.delete("tag", tag)
    with data.lock:  # a list loses one of its tags: Klaviyo bumps nothing, a full scan sees it
        dropped = data.tag_links[(untagged_kind, untagged)].pop()
        data.version += 1

    sync_ok(server, config, db_path, reconcile=True)
    db = open_database(db_path)
    assert db["tags"].get(tag)["deleted_at"] is not None
    assert db.execute("SELECT COUNT(*) FROM tag_links WHERE tag_id = ?", [tag]).fetchone()[0] == 0
    assert (
        db.execute(
            "SELECT COUNT(*) FROM tag_links WHERE resource_type = 'lists' AND resource_id = ? AND tag_id = ?",
            [untagged, dropped],
        ).fetchone()[0]
        == 0
    )


@pytest.mark.parametrize("channel", kc.CAMPAIGN_CHANNELS)
def test_campaigns_also_scan_the_archived_set_of_each_channel(channel):
    campaigns = STREAMS["campaigns"]
    assert f"{channel}:archived" in campaigns.variants
    first = campaigns.params(f"{channel}:archived")
    assert first["filter"] == f'and(equals(messages.channel,"{channel}"),equals(archived,true))'
    assert first["include"] == "campaign-messages,tags"
    later = campaigns.params(f"{channel}:archived", MARK)
    assert later["filter"] == (
        f'and(equals(messages.channel,"{channel}"),equals(archived,true),'
        "greater-or-equal(updated_at,2026-05-01T10:00:00Z))"
    )
    # The default set stays unfiltered on archived: Klaviyo's default is archived = false.
    assert "archived" not in campaigns.params(channel)["filter"]


def test_flows_also_scan_the_archived_set():
    flows = STREAMS["flows"]
    assert flows.variants == (None, "archived")
    assert "filter" not in flows.params(None)
    assert flows.params("archived")["filter"] == "equals(archived,true)"
    assert flows.params("archived", MARK)["filter"] == (
        "and(equals(archived,true),greater-or-equal(updated,2026-05-01T10:00:00Z))"
    )


def test_an_archived_set_without_a_watermark_of_its_own_is_read_whole():
    # A database synced before the archived scans existed has only the stream's watermark:
    # the archived set must not start from it, or old archived items would never be read.
    for name, variant in (("campaigns", "email:archived"), ("flows", "archived")):
        assert STREAMS[name].first_mark(variant, "2026-05-01T00:00:00+00:00") is None
    assert (
        STREAMS["campaigns"].first_mark("email", "2026-05-01T00:00:00+00:00") == "2026-05-01T00:00:00+00:00"
    )
