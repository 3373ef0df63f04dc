"""`export_parquet` on the hand-checkable tiny account: layout, types, what a second export
rewrites after each kind of change, and what a crash leaves behind."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from klaviyo_etl.db.repositories import Repository
from klaviyo_etl.errors import DatabaseError, UsageError
from klaviyo_etl.export import account_partitions, export_parquet, remove_account
from klaviyo_etl.export.parquet import NULL_PARTITION, folder_lock
from klaviyo_etl.export.schema import table_schema
from tests.helpers.export import files, query, scan, touched


def count(root: Path, table: str) -> int:
    return query(f"SELECT count(*) FROM {scan(root, table)}")[0][0]


def day_file(day: str) -> str:
    return f"events/date={day}/part-0.parquet"


def test_layout_row_counts_and_types(tiny_db, tmp_path):
    result = export_parquet(tiny_db, tmp_path / "out")
    root = tmp_path / "out"
    days = [d for (d,) in tiny_db.execute("SELECT DISTINCT substr(datetime, 1, 10) FROM events ORDER BY 1")]
    assert sorted(p for p in files(root) if p.startswith("events/")) == sorted(map(day_file, days))
    assert "campaigns/campaigns.parquet" in files(root) and "tag_links/tag_links.parquet" in files(root)
    for table in ("events", "profiles", "campaigns", "campaign_messages", "segment_members", "tag_links"):
        assert count(root, table) == tiny_db[table].count, table
    assert result.rows == sum(tiny_db[t].count for t in result_tables(result))
    # Typed as the schema module says, and hive partitions read back as dates.
    assert pq.read_schema(root / "campaigns/campaigns.parquet") == table_schema("campaigns")
    assert pq.read_schema(root / day_file(days[0])) == table_schema("events")
    kind, first = query(
        f"SELECT typeof(min(date)), min(date) FROM read_parquet('{root}/events/*/*.parquet', hive_partitioning=true)"
    )[0]
    assert kind == "DATE" and first == dt.date.fromisoformat(days[0])
    when, flag = query(
        f"SELECT send_time, typeof(archived) FROM read_parquet('{root}/campaigns/*.parquet') WHERE id = 'C1'"
    )[0]
    assert when == dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.UTC) and flag == "BOOLEAN"


def result_tables(result) -> set[str]:
    return {path.split("/")[0] for path in result.written}


def test_a_second_export_of_an_unchanged_database_writes_nothing(tiny_db, tmp_path):
    first = export_parquet(tiny_db, tmp_path)
    before = files(tmp_path)
    second = export_parquet(tiny_db, tmp_path)
    assert second.written == [] and second.removed == [] and second.unchanged == len(first.written)
    assert files(tmp_path) == before


def test_each_kind_of_event_change_rewrites_only_its_day(tiny_db, tmp_path):
    export_parquet(tiny_db, tmp_path)
    before = files(tmp_path)
    # Re-read by a sync (an upsert stamps synced_at) on 05-02, flagged deleted by
    # reconciliation on 05-03, purged on 05-04 (its only event), moved from 05-10 to 05-11.
    (reread,) = tiny_db.execute("SELECT * FROM events WHERE datetime LIKE '2026-05-02%' LIMIT 1").fetchall()
    row = dict(zip([c.name for c in tiny_db["events"].columns], reread, strict=True))
    Repository(tiny_db).upsert("events", [{**row, "synced_at": "2026-07-01T00:00:00+00:00"}])
    tiny_db.execute(
        "UPDATE events SET deleted_at = '2026-07-01T00:00:00+00:00' WHERE id ="
        " (SELECT id FROM events WHERE datetime LIKE '2026-05-03%' LIMIT 1)"
    )
    tiny_db.execute("DELETE FROM events WHERE datetime LIKE '2026-05-04%'")
    tiny_db.execute(
        "UPDATE events SET datetime = '2026-05-11T09:00:00+00:00' WHERE id ="
        " (SELECT id FROM events WHERE datetime LIKE '2026-05-10%' LIMIT 1)"
    )
    result = export_parquet(tiny_db, tmp_path)
    after = files(tmp_path)
    changed = {day_file(d) for d in ("2026-05-02", "2026-05-03", "2026-05-10", "2026-05-11")}
    print("written:", result.written, "removed:", result.removed)
    assert touched(before, after) == changed
    assert set(result.written) == changed and result.removed == [day_file("2026-05-04")]
    assert not (tmp_path / "events/date=2026-05-04").exists()
    assert count(tmp_path, "events") == tiny_db["events"].count
    deleted = query(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/events/*/*.parquet') WHERE deleted_at IS NOT NULL"
    )[0][0]
    assert (
        deleted
        == tiny_db.execute("SELECT count(*) FROM events WHERE deleted_at IS NOT NULL").fetchone()[0]
        > 0
    )


def test_erased_personal_data_is_null_in_the_export(tiny_db, tmp_path):
    export_parquet(tiny_db, tmp_path)
    before = files(tmp_path)
    # An erasure that stamps nothing (rows flagged deleted before the erasure existed).
    tiny_db.execute("UPDATE profiles SET email = NULL, first_name = NULL, attributes = NULL WHERE id = 'p1'")
    result = export_parquet(tiny_db, tmp_path)
    assert result.written == ["profiles/profiles.parquet"]
    assert touched(before, files(tmp_path)) == {"profiles/profiles.parquet"}
    email, name, raw = query(
        f"SELECT email, first_name, attributes FROM read_parquet('{tmp_path}/profiles/*.parquet') WHERE id = 'p1'"
    )[0]
    assert (email, name, raw) == (None, None, None)


def test_a_privacy_deletion_leaves_the_profile_erased_and_its_rows_flagged_in_the_export(tiny_db, tmp_path):
    export_parquet(tiny_db, tmp_path)
    # Reconciliation flags p1 deleted; the erasure trigger (m007) does the rest in the database.
    when = "2026-07-01T00:00:00+00:00"
    tiny_db.execute("UPDATE profiles SET deleted_at = ? WHERE id = 'p1'", [when])
    result = export_parquet(tiny_db, tmp_path)
    assert {"profiles/profiles.parquet", "segment_members/segment_members.parquet"} <= set(result.written)
    profile = query(f"SELECT * FROM read_parquet('{tmp_path}/profiles/*.parquet') WHERE id = 'p1'")[0]
    columns = [n for n in table_schema("profiles").names if n not in ("id", "synced_at", "deleted_at")]
    erased = dict(zip(table_schema("profiles").names, profile, strict=True))
    assert {c: erased[c] for c in columns} == dict.fromkeys(columns)
    assert erased["deleted_at"] == dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    live = query(
        f"SELECT count(*) FROM {scan(tmp_path, 'events')} WHERE profile_id = 'p1' AND deleted_at IS NULL"
    )[0][0]
    flagged = query(f"SELECT count(*) FROM {scan(tmp_path, 'events')} WHERE profile_id = 'p1'")[0][0]
    assert (
        live == 0
        and flagged
        == tiny_db.execute("SELECT count(*) FROM events WHERE profile_id = 'p1'").fetchone()[0]
        > 0
    )
    for table in ("list_members", "segment_members"):
        rows = query(f"SELECT email, deleted_at FROM {scan(tmp_path, table)} WHERE profile_id = 'p1'")
        assert rows and all(email is None and deleted is not None for email, deleted in rows), table


def test_a_table_without_stamps_is_rewritten_when_its_rows_change(tiny_db, tmp_path):
    export_parquet(tiny_db, tmp_path)
    tiny_db["tag_links"].insert({"tag_id": "t1", "resource_type": "campaign", "resource_id": "C1"})
    assert export_parquet(tiny_db, tmp_path).written == ["tag_links/tag_links.parquet"]
    assert count(tmp_path, "tag_links") == 1


def test_a_crash_mid_export_leaves_the_previous_files_readable(tiny_db, tmp_path):
    export_parquet(tiny_db, tmp_path)
    old_rows = {"events": count(tmp_path, "events"), "profiles": count(tmp_path, "profiles")}
    # Everything changes; the export dies while writing its third file.
    tiny_db.execute("UPDATE events SET synced_at = '2026-08-01T00:00:00+00:00'")
    tiny_db.execute("UPDATE profiles SET synced_at = '2026-08-01T00:00:00+00:00'")
    started: list[str] = []

    def crash(path: str, rows: int) -> None:
        started.append(path)
        if len(set(started)) == 3:
            raise RuntimeError("killed")

    before = files(tmp_path)
    with pytest.raises(RuntimeError):
        export_parquet(tiny_db, tmp_path, on_batch=crash, batch_rows=2)
    assert len(touched(before, files(tmp_path))) == 2  # two files replaced, the third not
    assert not list(tmp_path.rglob(".*.tmp"))
    assert {"events": count(tmp_path, "events"), "profiles": count(tmp_path, "profiles")} == old_rows
    for path in files(tmp_path):
        pq.read_table(tmp_path / path)  # every file whole

    # The next export finishes the job and does not redo the two files already replaced.
    result = export_parquet(tiny_db, tmp_path)
    assert not set(result.written) & set(dict.fromkeys(started[:-1]))
    assert "profiles/profiles.parquet" in result.written
    assert query(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/events/*/*.parquet') WHERE synced_at < '2026-08-01'"
    )[0] == (0,)


def test_temporaries_left_by_a_killed_export_are_ignored_and_swept(tiny_db, tmp_path):
    export_parquet(tiny_db, tmp_path)
    stale = tmp_path / "events/date=2026-05-01/.part-0.parquet.999.tmp"
    stale.write_bytes(b"half a file")
    assert count(tmp_path, "events") == tiny_db["events"].count  # readers skip it
    export_parquet(tiny_db, tmp_path)
    assert not stale.exists()


def test_a_partition_deleted_by_hand_is_written_again(tiny_db, tmp_path):
    export_parquet(tiny_db, tmp_path)
    (tmp_path / day_file("2026-05-01")).unlink()
    assert export_parquet(tiny_db, tmp_path).written == [day_file("2026-05-01")]


def test_accounts_share_a_folder_each_under_its_own_partition_of_every_table(tiny_db, tmp_path):
    first = export_parquet(tiny_db, tmp_path, account="eu-store")
    assert first.written and all("/account=eu-store/" in path for path in first.written)
    assert "lists/account=eu-store/lists.parquet" in first.written
    assert day_file("2026-05-01").replace("events/", "events/account=eu-store/") in first.written
    # The partition gives the `account` column; the files do not repeat it (BigQuery refuses that).
    assert pq.read_schema(tmp_path / "lists/account=eu-store/lists.parquet") == table_schema("lists")
    export_parquet(tiny_db, tmp_path, account="us-store")
    for table in ("events", "profiles", "lists", "segment_members"):
        by_account = query(f"SELECT account, count(*) FROM {scan(tmp_path, table)} GROUP BY 1 ORDER BY 1")
        assert by_account == [("eu-store", tiny_db[table].count), ("us-store", tiny_db[table].count)], table

    # One account's next export looks at its own files only.
    before = files(tmp_path)
    tiny_db.execute("DELETE FROM events WHERE datetime LIKE '2026-05-04%'")
    again = export_parquet(tiny_db, tmp_path, account="eu-store")
    assert again.written == [] and again.removed == ["events/account=eu-store/date=2026-05-04/part-0.parquet"]
    assert (tmp_path / "events/account=us-store/date=2026-05-04/part-0.parquet").exists()
    assert touched(before, files(tmp_path)) == set()


def test_one_folder_holds_one_layout_or_the_other(tiny_db, tmp_path):
    export_parquet(tiny_db, tmp_path / "single")
    with pytest.raises(UsageError, match="single account"):
        export_parquet(tiny_db, tmp_path / "single", account="eu")
    export_parquet(tiny_db, tmp_path / "several", account="eu")
    with pytest.raises(UsageError, match="several accounts"):
        export_parquet(tiny_db, tmp_path / "several")


def test_a_column_without_an_export_type_is_refused(tiny_db, tmp_path):
    tiny_db["events"].add_column("new_field", str)
    with pytest.raises(DatabaseError, match="new_field"):
        export_parquet(tiny_db, tmp_path)


def test_a_file_in_place_of_the_folder_is_a_usage_error(tiny_db, tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="not a folder"):
        export_parquet(tiny_db, tmp_path / "f")


def test_times_without_a_zone_read_as_utc(tiny_db, tmp_path):
    tiny_db.execute("UPDATE campaigns SET scheduled_at = '2026-05-15' WHERE id = 'C5'")
    export_parquet(tiny_db, tmp_path)
    (when,) = query(
        f"SELECT scheduled_at FROM read_parquet('{tmp_path}/campaigns/*.parquet') WHERE id = 'C5'"
    )[0]
    assert when == dt.datetime(2026, 5, 15, tzinfo=dt.UTC)
    assert os.listdir(tmp_path / "campaigns") == ["campaigns.parquet"]


def test_a_second_export_into_the_same_folder_meanwhile_is_refused_and_the_first_completes(tiny_db, tmp_path):
    # The second export starts while the first is writing its first file (what two processes
    # do when a cron export meets a manual one). Before the folder lock, its sweep removed the
    # first one's temporary file, and the first died with a FileNotFoundError.
    target = tmp_path / "out"
    refused: list[Exception] = []

    def meanwhile(path: str, rows: int) -> None:
        if not refused:
            try:
                export_parquet(tiny_db, target)
            except UsageError as exc:
                refused.append(exc)
            else:
                refused.append(AssertionError("the second export ran"))

    first = export_parquet(tiny_db, target, on_batch=meanwhile)
    assert [type(e) for e in refused] == [UsageError], refused
    assert str(refused[0]).startswith(f"another export is writing into {target}")
    assert first.removed == [] and len(first.written) == len(files(target))
    assert count(target, "events") == tiny_db["events"].count
    assert not list(target.rglob(".*.tmp"))
    assert export_parquet(tiny_db, target).written == []  # the lock is released


def test_a_folder_that_cannot_be_written_is_a_usage_error_naming_the_path(tiny_db, tmp_path):
    # A file where a table's folder should be: the same OSError as a read-only or full disk.
    target = tmp_path / "out"
    target.mkdir()
    (target / "metrics").write_text("not a folder")
    with pytest.raises(UsageError, match=f"cannot write {target / 'metrics'}/metrics.parquet: "):
        export_parquet(tiny_db, target)
    assert not list(target.rglob(".*.tmp"))


def test_a_read_only_folder_is_a_usage_error(tiny_db, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    target.chmod(0o555)
    if os.access(target, os.W_OK):
        pytest.skip("file modes are not enforced for this user (root)")
    try:
        with pytest.raises(UsageError, match="cannot write .*: Permission denied"):
            export_parquet(tiny_db, target)
    finally:
        target.chmod(0o755)


def test_a_time_that_is_not_iso_8601_stops_the_export_naming_its_row(tiny_db, tmp_path):
    # The message named the column only, and a new partition's folder was left behind empty.
    tiny_db.execute("UPDATE events SET datetime = 'yesterday' WHERE id = (SELECT min(id) FROM events)")
    (first,) = tiny_db.execute("SELECT min(id) FROM events").fetchone()
    with pytest.raises(DatabaseError) as refused:
        export_parquet(tiny_db, tmp_path)
    assert str(refused.value) == (
        f"events.datetime of the row datetime='yesterday', id={first!r}: 'yesterday' is not an ISO 8601"
        " time; correct or delete it in the database, then export again"
    )
    assert not (tmp_path / "events/date=__HIVE_DEFAULT_PARTITION__").exists()
    tiny_db.execute("UPDATE events SET datetime = NULL WHERE id = ?", [first])
    export_parquet(tiny_db, tmp_path)  # a missing time is a null partition
    assert query(f"SELECT count(*) FROM {scan(tmp_path, 'events')} WHERE date IS NULL") == [(1,)]


def test_json_columns_read_as_json_in_duckdb_and_as_text_elsewhere(tiny_db, tmp_path):
    # Written as plain strings, every query had to cast: `attributes::JSON->>...`.
    export_parquet(tiny_db, tmp_path)
    kinds = dict(
        query(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {scan(tmp_path, 'events')})")
    )
    assert kinds["attributes"] == "JSON" and kinds["id"] == "VARCHAR"
    stored = tiny_db.execute(
        "SELECT id, json_extract(attributes, '$.event_properties.\"$value\"') FROM events"
        " WHERE value IS NOT NULL ORDER BY id LIMIT 3"
    ).fetchall()
    read = query(
        f"SELECT id, (attributes->>'$.event_properties.\"$value\"')::DOUBLE FROM {scan(tmp_path, 'events')}"
        " WHERE value IS NOT NULL ORDER BY id LIMIT 3"
    )
    assert read == stored and stored
    # pyarrow (as Spark) reads the JSON text as it is stored.
    table = pq.read_table(tmp_path / day_file("2026-05-01"))
    first = table.column("attributes")[0].as_py()
    assert (
        first
        == tiny_db.execute(
            "SELECT attributes FROM events WHERE id = ?", [table.column("id")[0].as_py()]
        ).fetchone()[0]
    )


def test_a_value_that_is_not_json_stops_the_export_naming_its_row(tiny_db, tmp_path):
    # DuckDB refuses a whole file over one malformed value of a JSON column.
    first = tiny_db.execute("SELECT id FROM campaigns ORDER BY id LIMIT 1").fetchone()[0]
    tiny_db.execute("UPDATE campaigns SET attributes = '{\"name\": broken' WHERE id = ?", [first])
    with pytest.raises(DatabaseError) as refused:
        export_parquet(tiny_db, tmp_path)
    assert str(refused.value) == (
        f"campaigns.attributes of the row id={first!r}: '{{\"name\": broken' is not JSON; correct or delete"
        " it in the database, then export again"
    )
    assert not (tmp_path / "campaigns/campaigns.parquet").exists()


def test_no_events_at_all_is_one_empty_file_so_engines_find_the_table(tiny_db, tmp_path):
    # Before, the events folder was not written at all: DuckDB's read_parquet said "No files
    # found", while every other empty table (tag_links) had its file with its columns.
    rows = [
        dict(zip([c.name for c in tiny_db["events"].columns], r, strict=True))
        for r in tiny_db.execute("SELECT * FROM events")
    ]
    tiny_db.execute("DELETE FROM events")
    assert day_file(NULL_PARTITION) in export_parquet(tiny_db, tmp_path).written
    assert query(f"SELECT count(*) FROM {scan(tmp_path, 'events')}") == [(0,)]
    assert pq.read_schema(tmp_path / day_file(NULL_PARTITION)) == table_schema("events")
    # The first events replace it.
    Repository(tiny_db).upsert("events", rows)
    again = export_parquet(tiny_db, tmp_path)
    assert (
        again.removed == [day_file(NULL_PARTITION)]
        and not (tmp_path / "events" / f"date={NULL_PARTITION}").exists()
    )
    assert count(tmp_path, "events") == len(rows)


def test_two_accounts_may_be_exported_into_one_folder_at_once_but_not_one_account_twice(tiny_db, tmp_path):
    seen: list[str] = []

    def meanwhile(path: str, rows: int) -> None:
        if seen:
            return
        seen.append(path)
        assert export_parquet(tiny_db, tmp_path, account="us-store").written  # its own files
        with pytest.raises(UsageError, match="^another export of account eu-store is writing into "):
            export_parquet(tiny_db, tmp_path, account="eu-store")

    export_parquet(tiny_db, tmp_path, account="eu-store", on_batch=meanwhile)
    by_account = query(f"SELECT account, count(*) FROM {scan(tmp_path, 'events')} GROUP BY 1 ORDER BY 1")
    assert by_account == [("eu-store", tiny_db["events"].count), ("us-store", tiny_db["events"].count)]


def test_removing_an_account_takes_its_partitions_of_every_table_and_nothing_else(tiny_db, tmp_path):
    export_parquet(tiny_db, tmp_path, account="eu")
    export_parquet(tiny_db, tmp_path, account="us")
    assert account_partitions(tmp_path) == {"eu", "us"}
    before = files(tmp_path)
    removed = remove_account(tmp_path, "us")
    assert "events/account=us" in removed and "tag_links/account=us" in removed
    assert account_partitions(tmp_path) == {"eu"}
    assert files(tmp_path) == {p: at for p, at in before.items() if "/account=us/" not in p}
    assert count(tmp_path, "events") == tiny_db["events"].count
    # Not while an export of that account writes.
    with folder_lock(tmp_path, "eu"), pytest.raises(UsageError, match="another export of account eu"):
        remove_account(tmp_path, "eu")
