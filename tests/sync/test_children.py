"""What the child streams send per parent (`params`), and which parents they read."""

from __future__ import annotations

import datetime as dt

from klaviyo_etl.db import open_database
from klaviyo_etl.db.repositories import Repository
from klaviyo_etl.sync.streams import ChildStream, FlowMessageStream, build_streams

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
