"""What the child streams send per parent (`params`), which parents they read, and what a
parent gone from Klaviyo (404) or a member dated in the future does to a sync."""

from __future__ import annotations

import datetime as dt

from klaviyo_etl.db import open_database
from klaviyo_etl.db.repositories import Repository
from klaviyo_etl.sync.streams import ChildStream, FlowMessageStream, build_streams
from tests.helpers.sync import live_ids, live_members, sync_ok

STREAMS = build_streams()


def test_members_are_asked_for_sorted_and_from_the_parents_mark():
    members = STREAMS["list_members"]
    assert isinstance(members, ChildStream)
    size = members.endpoint.page_size_max
    assert members.params() == {"sort": "joined_group_at", "page[size]": size}
    mark = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    assert members.params(mark) == {
        "filter": "greater-or-equal(joined_group_at,2026-05-01T00:00:00Z)",
        "sort": "joined_group_at",
        "page[size]": size,
    }


def test_flow_messages_are_read_only_under_sending_actions(tmp_path):
    db = open_database(tmp_path / "k.db")
    rows = [
        {"id": "a1", "flow_id": "f1", "action_type": "send-email", "deleted_at": None},
        {"id": "a2", "flow_id": "f1", "action_type": "time-delay", "deleted_at": None},
        {"id": "a3", "flow_id": "f1", "action_type": None, "deleted_at": None},
        {"id": "a4", "flow_id": "f1", "action_type": "send-sms", "deleted_at": "2026-05-01"},
    ]
    db["flow_actions"].insert_all(rows, alter=True)
    stream = STREAMS["flow_messages"]
    assert isinstance(stream, FlowMessageStream)
    assert sorted(p["id"] for p in stream.parents(Repository(db))) == ["a1", "a3"]
    members = STREAMS["list_members"]
    db["lists"].insert_all([{"id": "L1"}, {"id": "L2", "deleted_at": "2026-05-01"}], alter=True)
    assert [p["id"] for p in members.parents(Repository(db))] == ["L1"]


def test_a_removed_flow_action_and_a_deleted_list_are_news_not_failures(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    sync_ok(server, config, db_path)
    db = open_database(db_path)
    action = db.execute(
        "SELECT flow_action_id FROM flow_messages GROUP BY flow_action_id ORDER BY flow_action_id LIMIT 1"
    ).fetchone()[0]
    gone_list, kept_list = sorted(g for g in data.ids("list") if data.members.get(g))[:2]
    data.delete("flow-action", action)  # its flow is not touched: an incremental run still asks
    data.delete("list", gone_list)

    second = sync_ok(server, config, db_path, reconcile=False)
    by_name = {s.stream: s for s in second.streams}
    assert by_name["flow_messages"].status == "ok" and by_name["list_members"].status == "ok"
    db = open_database(db_path)
    assert db["flow_actions"].get(action)["deleted_at"] is not None
    assert (
        db.execute(
            "SELECT COUNT(*) FROM flow_messages WHERE flow_action_id = ? AND deleted_at IS NULL", [action]
        ).fetchone()[0]
        == 0
    )
    assert db["lists"].get(gone_list)["deleted_at"] is not None
    assert not {m for m in live_members(db_path, "list_members", "list_id") if m[0] == gone_list}
    # the other parents went on
    assert {(kept_list, p) for p in data.members[kept_list]} <= live_members(
        db_path, "list_members", "list_id"
    )
    assert live_ids(db_path, "flow_messages") == data.ids("flow-message")


def test_a_member_who_joined_in_the_future_does_not_hold_its_list_back(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    group = sorted(data.ids("list"))[0]
    outsiders = sorted(data.ids("profile") - set(data.members[group]))
    data.add_member(group, outsiders[0], joined_at=data.now + dt.timedelta(days=30))
    sync_ok(server, config, db_path, streams=["lists", "list_members"])
    data.add_member(group, outsiders[1])  # joins now, before the first one's date
    sync_ok(server, config, db_path, streams=["list_members"], reconcile=False)
    assert (group, outsiders[1]) in live_members(db_path, "list_members", "list_id")
