import json
import sqlite3

import orjson
import pytest

from klaviyo_etl.db import open_database, repositories
from klaviyo_etl.db.load_rollups import _plain
from klaviyo_etl.db.repositories import EVENT_COLUMNS, NULL, Batch, Repository, event_value, row_values
from klaviyo_etl.models import Resource
from klaviyo_etl.sync.parsing import batch_page
from klaviyo_etl.timeutil import utcnow_iso


def event(i: str, **props) -> Resource:
    return Resource.model_validate(
        {
            "type": "event",
            "id": i,
            "attributes": {
                "datetime": "2026-05-01T10:00:00+00:00",
                "timestamp": 1777629600,
                "uuid": f"u-{i}",
                "event_properties": props,
            },
            "relationships": {
                "profile": {"data": {"type": "profile", "id": "p1"}},
                "metric": {"data": {"type": "metric", "id": "m1"}},
            },
        }
    )


def test_event_columns_come_from_klaviyo_property_conventions(tmp_path):
    db = open_database(tmp_path / "k.db")
    repo = Repository(db)
    with db.atomic():
        repo.write_resources(
            [
                event("e1", **{"$value": 42.5, "$attributed_message": "msg1", "$attributed_flow": "f1"}),
                event("e2", **{"$message": "msg2", "$flow": "f2"}),
            ]
        )
    rows = {r["id"]: r for r in db["events"].rows}
    assert rows["e1"]["value"] == 42.5 and rows["e1"]["attributed_message_id"] == "msg1"
    assert rows["e1"]["attributed_flow_id"] == "f1" and rows["e1"]["metric_id"] == "m1"
    assert rows["e2"]["message_id"] == "msg2" and rows["e2"]["flow_id"] == "f2"
    assert json.loads(rows["e2"]["attributes"])["event_properties"]["$flow"] == "f2"


def test_upsert_is_idempotent_and_updates(tmp_path):
    db = open_database(tmp_path / "k.db")
    repo = Repository(db)
    p = {
        "type": "profile",
        "id": "p1",
        "attributes": {"email": "a@x.io", "updated": "2026-01-01T00:00:00+00:00"},
    }
    with db.atomic():
        repo.write_resources([Resource.model_validate(p)])
        repo.write_resources([Resource.model_validate(p)])
    p["attributes"]["email"] = "b@x.io"
    with db.atomic():
        repo.write_resources([Resource.model_validate(p)])
    assert db["profiles"].count == 1
    assert db["profiles"].get("p1")["email"] == "b@x.io"


def test_mark_deleted_flags_rows_a_complete_scan_did_not_touch(tmp_path):
    db = open_database(tmp_path / "k.db")
    repo = Repository(db)
    lists = [Resource.model_validate({"type": "list", "id": i, "attributes": {"name": i}}) for i in "abc"]
    with db.atomic():
        repo.write_resources(lists)
    scan_started = utcnow_iso()
    with db.atomic():
        repo.write_resources(lists[:2])  # the scan sees a and b only
        assert repo.mark_deleted("lists", scan_started) == 1
    gone = {r["id"] for r in db["lists"].rows_where("deleted_at IS NOT NULL")}
    assert gone == {"c"}
    with db.atomic():  # c comes back: the upsert revives it
        repo.write_resources(lists[2:])
    assert db["lists"].get("c")["deleted_at"] is None


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    db = open_database(tmp_path / "k.db")
    repo = Repository(db)
    try:
        with db.atomic():
            repo.write_resources([event("e1")])
            raise RuntimeError("crash mid-page")
    except RuntimeError:
        pass
    assert db["events"].count == 0


def test_children_of_flagged_parents_are_flagged_too(tmp_path):
    db = open_database(tmp_path / "k.db")
    repo = Repository(db)
    db["campaigns"].insert_all([{"id": "c1"}, {"id": "c2", "deleted_at": "2026-05-01"}], alter=True)
    db["campaign_messages"].insert_all(
        [
            {"id": "m1", "campaign_id": "c1"},
            {"id": "m2", "campaign_id": "c2"},
            {"id": "m3", "campaign_id": "c2", "deleted_at": "2026-04-01"},
        ],
        alter=True,
    )
    with db.atomic():
        assert repo.mark_orphans_deleted("campaign_messages", "campaign_id", "campaigns", "2026-06-01") == 1
    flagged = {r["id"]: r["deleted_at"] for r in db["campaign_messages"].rows}
    assert flagged == {"m1": None, "m2": "2026-06-01", "m3": "2026-04-01"}


def test_the_reads_the_streams_need(tmp_path):
    db = open_database(tmp_path / "k.db")
    repo = Repository(db)
    assert repo.is_empty("metrics")
    db["metrics"].insert_all(
        [
            {"id": "gone", "name": "Placed Order", "deleted_at": "2026-05-01"},
            {"id": "m1", "name": "Placed Order"},
        ],
        alter=True,
    )
    assert not repo.is_empty("metrics")
    db["campaigns"].insert_all(
        [
            {"id": "c3", "status": "Sent", "send_time": "2026-05-02"},
            {"id": "c1", "status": "Sent", "send_time": "2026-05-01"},
            {"id": "old", "status": "Sent", "send_time": "2024-01-01"},
            {"id": "draft", "status": "Draft", "send_time": "2026-05-01"},
            {"id": "cancel", "status": "Cancelled", "send_time": "2026-05-01"},
        ],
        alter=True,
    )
    assert repo.reportable_ids("campaigns", "2025-05-01") == ["c1", "c3"]
    db["flows"].insert_all(
        [
            {"id": "f2", "status": "live"},
            {"id": "f1", "status": "draft"},
            {"id": "stale", "status": "draft", "updated": "2025-04-30T23:00:00+00:00"},
            # turned off or archived inside the timeframe: it sent before that
            {"id": "f3", "status": "draft", "updated": "2025-05-02T10:00:00+00:00"},
        ],
        alter=True,
    )
    assert repo.reportable_ids("flows", "2025-05-01") == ["f2", "f3"]


def test_an_upsert_writes_every_column_of_the_batch_not_only_the_first_rows(tmp_path):
    db = open_database(tmp_path / "k.db")
    repo = Repository(db)
    with db.atomic():
        repo.upsert(
            "profiles",
            [{"id": "p1", "email": "a@x"}, {"id": "p2", "email": "b@x", "email_consent": "SUBSCRIBED"}],
        )
    assert db["profiles"].get("p2")["email_consent"] == "SUBSCRIBED"
    assert db["profiles"].get("p1")["email_consent"] is None


def test_a_lean_events_page_binds_its_absent_properties_as_null_without_the_adapter(tmp_path, monkeypatch):
    # sqlite3 binds a None through its adapter lookup (~0.09 us each, and most events lack
    # most of these properties); the lean path's `NULL` is a NaN, bound as a float, which
    # SQLite stores as NULL (issue 12). The old tuples bound 6 Nones here.
    event = {
        "type": "event",
        "id": "e1",
        "attributes": {
            "datetime": "2026-01-01T00:00:00+00:00",
            "timestamp": 1767225600,
            "uuid": "u1",
            "event_properties": {"$value": 5, "$message": None},
        },
        "relationships": {
            "metric": {"data": {"type": "metric", "id": "m1"}},
            "profile": {"data": {"type": "profile", "id": "p1"}},
        },
    }
    page = batch_page(orjson.dumps({"data": [event], "links": {"next": None}}), "datetime")
    batch = page.rows["events"]  # type: ignore[union-attr]
    assert _plain(batch)  # the rollups' fold still reads its values, not the rows stored
    db = open_database(tmp_path / "k.db")
    bound = []
    monkeypatch.setitem(sqlite3.adapters, (type(None), sqlite3.PrepareProtocol), lambda v: bound.append(v))
    with db.atomic():
        Repository(db).write_rows(page.rows)  # type: ignore[union-attr]
    assert len(bound) == 1  # the `$message` sent as null: the rest were absent
    sparse = ("message_id", "flow_id", "attributed_message_id", "attributed_flow_id", "form_id", "deleted_at")
    stored = db.execute(f"SELECT value, {', '.join(f'typeof({c})' for c in sparse)} FROM events").fetchall()
    assert stored == [(5.0, *["null"] * len(sparse))]
    assert db.execute("SELECT typeof(?)", [NULL]).fetchone() == ("null",)
    db.close()


def test_a_bulk_tables_rows_go_in_as_inserts_and_end_as_the_upsert_leaves_them(tmp_path):
    # An upsert's update path costs a statement journal for every row where the table has an
    # update trigger (the events' own), used or not: a bulk load's rows, new but for a page
    # read twice where windows meet, go in as plain inserts (issue 12: 4.4 -> 3.8 us an event).
    def page(*rows):
        return {"events": Batch(EVENT_COLUMNS[:4], [(*r, "2026-01-01T00:00:00+00:00") for r in rows])}

    stored = {}
    for bulk in (None, "events"):
        db = open_database(tmp_path / f"{bulk}.db")
        with db.conn:
            db.execute("DELETE FROM rollup_dirty")
        statements: list[str] = []
        db.conn.set_trace_callback(statements.append)
        repo = Repository(db)
        with db.atomic():
            repo.write_rows(page(("e1", "m1", "p1"), ("e2", "m1", "p2")), bulk=bulk)
        first = [s for s in statements if s.startswith("INSERT INTO [events]")]
        assert len(first) == 2 and all(("DO NOTHING" in s) == (bulk is not None) for s in first)
        with db.atomic():  # read again, e2 changed since: the upsert's update, and its trigger
            repo.write_rows(page(("e2", "m1", "p9"), ("e3", "m1", "p3")), bulk=bulk)
        stored[bulk] = (
            db.execute("SELECT id, metric_id, profile_id FROM events ORDER BY id").fetchall(),
            db.execute("SELECT count(*) FROM rollup_dirty").fetchone()[0],
        )
        db.close()
    assert stored["events"] == stored[None]
    assert (
        stored[None][0] == [("e1", "m1", "p1"), ("e2", "m1", "p9"), ("e3", "m1", "p3")]
        and stored[None][1] > 0
    )


@pytest.mark.parametrize("bulk", [None, "events"])
def test_an_upsert_of_many_rows_ends_as_one_row_a_statement_would(tmp_path, monkeypatch, bulk):
    # `ROWS_A_STATEMENT` rows a statement, the rest one by one; an id twice in one statement or
    # in two: the later copy wins, as with a statement a row.
    values = [(f"e{i % 70}", f"m{i}", f"p{i}", "2026-01-01T00:00:00+00:00") for i in range(123)]
    stored = []
    for rows_a_statement in (repositories.ROWS_A_STATEMENT, 1):
        monkeypatch.setattr(repositories, "ROWS_A_STATEMENT", rows_a_statement)
        db = open_database(tmp_path / f"{rows_a_statement}.db")
        with db.atomic():
            Repository(db).write_rows({"events": Batch(EVENT_COLUMNS[:4], values)}, bulk=bulk)
        stored.append(db.execute("SELECT id, metric_id, profile_id FROM events ORDER BY rowid").fetchall())
        db.close()
    assert stored[0] == stored[1]
    assert (
        len(stored[0]) == 70
        and stored[0][0] == ("e0", "m70", "p70")
        and stored[0][-1] == ("e69", "m69", "p69")
    )


@pytest.mark.parametrize(
    "raw,value",
    [
        (12.5, 12.5),
        (3, 3.0),
        ("12.50", 12.5),
        (" 7 ", 7.0),
        ("n/a", None),
        ("", None),
        (None, None),
        (True, None),
        ("nan", None),
        ({"amount": 1}, None),
    ],
)
def test_a_value_is_read_as_a_number_when_it_is_one_or_text_that_reads_as_one(raw, value):
    assert event_value(raw) == value


def test_the_reporting_api_is_asked_about_sent_campaigns_only(tmp_path):
    db = open_database(tmp_path / "k.db")
    statuses = {
        "sent": "Sent",
        "variations": "Variations Sent",
        "sending": "Sending",
        "segments": "Sending Segments",
        "draft": "Draft",
        "scheduled": "Scheduled",
        "queued": "Queued without Recipients",
        "cancelled": "Cancelled",
        "no-recipients": "Cancelled: No Recipients",
        "smart": "Cancelled: Smart Sending",
        "preparing": "Preparing to send",
        "adding": "Adding Recipients",
        "unknown": "Unknown",
    }
    db["campaigns"].insert_all(
        [{"id": cid, "status": status, "send_time": "2026-05-01"} for cid, status in statuses.items()]
        + [{"id": "archived", "status": "Sent", "send_time": "2026-05-01", "archived": 1}],
        alter=True,
    )
    assert Repository(db).reportable_ids("campaigns", "2026-01-01") == sorted(
        ["archived", "sent", "variations", "sending", "segments"]
    )


def test_row_values_of_uniform_rows_follow_the_first_rows_columns():
    columns, values = row_values([{"id": "a", "x": 1}, {"x": 2, "id": "b"}])
    assert columns == ("id", "x") and list(values) == [("a", 1), ("b", 2)]
    columns, values = row_values([{"id": "a"}, {"id": "b"}])
    assert columns == ("id",) and list(values) == [("a",), ("b",)]


def test_row_values_take_the_union_of_the_columns_and_fill_none():
    # same length, different keys: the optional column groups of profile rows
    rows = [{"id": "a", "email_consent": "SUBSCRIBED"}, {"id": "b", "predicted_clv": 3.5}, {"id": "c"}]
    columns, values = row_values(rows)
    assert columns == ("id", "email_consent", "predicted_clv")
    assert list(values) == [("a", "SUBSCRIBED", None), ("b", None, 3.5), ("c", None, None)]


def indexes_of(db, table: str) -> set[str]:
    return {
        name
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            [table],
        )
    }


@pytest.mark.parametrize(
    ("table", "kept"), [("events", "idx_events_datetime"), ("profiles", "idx_profiles_updated")]
)
def test_a_bulk_load_keeps_the_index_on_the_column_its_pages_arrive_in_order_of(tmp_path, table, kept):
    db = open_database(tmp_path / "t.db")
    repo = Repository(db)
    before = indexes_of(db, table)
    with db.atomic():
        deferred = repo.defer_indexes(table)
    during = indexes_of(db, table)
    assert kept in during and deferred == len(before - during) >= 2
    assert all(
        "IS NOT NULL" in db.execute("SELECT sql FROM sqlite_master WHERE name = ?", [n]).fetchone()[0]
        for n in during - {kept}
    )
    with db.atomic():
        assert repo.restore_indexes(table, ("not-deferred",)) == 0
        assert repo.restore_indexes(table) == deferred
    assert indexes_of(db, table) == before
