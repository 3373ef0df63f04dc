"""The rollups against brute force: every figure recomputed straight from the events table,
on a generated account, before and after inserts, late events, deletions and edits."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import zoneinfo

import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.bench.report_timing import build_bench_db
from klaviyo_etl.db import open_database
from klaviyo_etl.db.local_days import local_days
from klaviyo_etl.db.repositories import Repository
from klaviyo_etl.db.rollups import (
    ROLLUP_TABLES,
    ensure_rollups,
    needs_rebuild,
    needs_refresh,
    refresh_rollups,
)
from klaviyo_etl.reports import audience, messages, overview
from klaviyo_etl.reports.periods import Period

NOW = dt.datetime(2026, 5, 31, 12, tzinfo=dt.UTC)


# Across New York's spring DST change (2026-03-08), for an account outside UTC.
NOW_DST = dt.datetime(2026, 3, 31, 12, tzinfo=dt.UTC)


def _generate(tmp_path_factory, now: dt.datetime):
    path = tmp_path_factory.mktemp("gen") / "gen.db"
    build_bench_db(path, 5000, seed=3, days=60, now=now)
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return _generate(tmp_path_factory, NOW)


@pytest.fixture(scope="module")
def generated_dst(tmp_path_factory):
    return _generate(tmp_path_factory, NOW_DST)


def _copy(source_path, tmp_path):
    copy = tmp_path / "copy.db"
    source = open_database(source_path)
    source.execute(f"VACUUM INTO '{copy}'")
    source.close()
    return open_database(copy)


@pytest.fixture
def db(generated, tmp_path):
    database = _copy(generated, tmp_path)
    yield database
    database.close()


def in_timezone(db, zone: str) -> None:
    """The account as the `accounts` stream stores it, in `zone`."""
    db.execute(
        "INSERT INTO accounts (id, organization_name, timezone, attributes, synced_at)"
        " VALUES ('A1', 'Shop', ?, '{}', '2026-01-01T00:00:00+00:00')",
        [zone],
    )


def ids_of(db, *names):
    marks = ",".join("?" * len(names))
    return [r[0] for r in db.execute(f"SELECT id FROM metrics WHERE name IN ({marks})", names)]


def brute_message(db, message_id, lo="", hi="9999"):
    """Figures for one message straight from events, by the definitions in conventions.py."""

    def q(sql, names, column="message_id", where=""):
        ids = ids_of(db, *names)
        marks = ",".join("?" * len(ids))
        return db.execute(
            f"SELECT {sql} FROM events WHERE {column} = ? AND metric_id IN ({marks})"
            f" AND deleted_at IS NULL AND datetime >= ? AND datetime < ?{where}",
            [message_id, *ids, lo, hi],
        ).fetchone()[0]

    # People's clicks: a click whose `Bot Click` is true is left out (LIVE_BEHAVIOUR.md §12).
    people = " AND json_extract(attributes, '$.event_properties.\"Bot Click\"') IS NOT 1"

    distinct, count = "count(DISTINCT profile_id)", "count(*)"
    received = [kc.RECEIVED_EMAIL, kc.RECEIVED_SMS, kc.RECEIVED_PUSH]
    bounced = [kc.BOUNCED_EMAIL, kc.BOUNCED_PUSH]
    failed = [kc.FAILED_SMS]  # an SMS that could not be delivered is failed, not bounced
    return {
        "recipients": q(distinct, received + bounced + failed),
        "delivered": q(distinct, received),
        "opens": q(count, [kc.OPENED_EMAIL, kc.OPENED_PUSH]),
        "opens_unique": q(distinct, [kc.OPENED_EMAIL, kc.OPENED_PUSH]),
        "clicks": q(count, [kc.CLICKED_EMAIL, kc.CLICKED_SMS], where=people),
        "clicks_unique": q(distinct, [kc.CLICKED_EMAIL, kc.CLICKED_SMS], where=people),
        "conversions": q(count, [kc.PLACED_ORDER], "attributed_message_id"),
        "conversion_uniques": q(distinct, [kc.PLACED_ORDER], "attributed_message_id"),
        "conversion_value": round(q("total(value)", [kc.PLACED_ORDER], "attributed_message_id"), 2),
        "unsubscribes": q(count, [kc.UNSUBSCRIBED, kc.UNSUBSCRIBED_SMS]),
        "unsubscribe_uniques": q(distinct, [kc.UNSUBSCRIBED, kc.UNSUBSCRIBED_SMS]),
        "bounced": q(distinct, bounced),
        "failed": q(distinct, failed),
        "spam_complaints": q(distinct, [kc.MARKED_SPAM]),
    }


def brute_pairs(db, names, period, channel_names=None):
    ids = ids_of(db, *names)
    marks = ",".join("?" * len(ids))
    return db.execute(
        "SELECT count(*) FROM (SELECT DISTINCT message_id, profile_id FROM events"
        f" WHERE metric_id IN ({marks}) AND deleted_at IS NULL AND message_id IS NOT NULL"
        " AND profile_id IS NOT NULL AND datetime >= ? AND datetime < ?)",
        [*ids, period.utc_lo, period.utc_hi],
    ).fetchone()[0]


def check_everything(db, rng, now=NOW):
    # Campaigns: all their events, whenever they happened.
    everything = Period(None, None, "all")
    for row in messages.campaign_report(db, everything).rows:
        expected = {k: 0 for k in messages.COUNTS}
        # Events may carry the campaign id (live) or a campaign-message id in $message.
        ids = [row["campaign_id"]] + [
            mid
            for (mid,) in db.execute(
                "SELECT id FROM campaign_messages WHERE campaign_id = ?", [row["campaign_id"]]
            )
        ]
        for mid in ids:
            for k, v in brute_message(db, mid).items():
                expected[k] += v
        assert {k: row[k] for k in messages.COUNTS} == pytest.approx(expected), row["name"]
    # Flow messages and the overview over random windows.
    zone = local_days(db).zone
    # The last week too, where a daily sync's events land.
    last_week = Period(now.date() - dt.timedelta(days=7), now.date() + dt.timedelta(days=1), "week", zone)
    for k in range(5):
        start = now.date() - dt.timedelta(days=60) + dt.timedelta(days=rng.randrange(60))
        period = (
            Period(start, start + dt.timedelta(days=rng.randrange(1, 25)), "random", zone) if k else last_week
        )
        for row in messages.flow_report(db, period, by="message").rows:
            expected = brute_message(db, row["message_id"], period.utc_lo, period.utc_hi)
            assert {k: row[k] for k in messages.COUNTS} == pytest.approx(expected)
        kpis = overview.kpis(db, period)
        assert (
            kpis["active_profiles"]
            == db.execute(
                "SELECT count(DISTINCT profile_id) FROM events WHERE deleted_at IS NULL"
                " AND datetime >= ? AND datetime < ?",
                [period.utc_lo, period.utc_hi],
            ).fetchone()[0]
        )
        orders = ids_of(db, kc.PLACED_ORDER)
        assert kpis["revenue"] == pytest.approx(
            db.execute(
                f"SELECT total(value) FROM events WHERE metric_id IN ({','.join('?' * len(orders))})"
                " AND deleted_at IS NULL AND datetime >= ? AND datetime < ?",
                [*orders, period.utc_lo, period.utc_hi],
            ).fetchone()[0],
            abs=0.01,
        )
        delivered = brute_pairs(db, [kc.RECEIVED_EMAIL], period)
        opened = brute_pairs(db, [kc.OPENED_EMAIL], period)
        assert kpis["open_rate"] == pytest.approx(opened / delivered if delivered else 0.0, abs=1e-6)
        for row in audience.form_report(db, period).rows:
            viewed = ids_of(db, kc.VIEWED_FORM)[0]
            views, viewers = db.execute(
                "SELECT count(*), count(DISTINCT profile_id) FROM events WHERE form_id = ?"
                " AND metric_id = ? AND deleted_at IS NULL AND datetime >= ? AND datetime < ?",
                [row["form_id"], viewed, period.utc_lo, period.utc_hi],
            ).fetchone()
            assert (row["views"], row["viewers"]) == (views, viewers)


def snapshot(db):
    return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in ROLLUP_TABLES}


def test_rollups_match_brute_force_after_every_kind_of_change(db):
    every_kind_of_change(db, NOW)


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_rollups_count_the_accounts_days_after_every_kind_of_change(generated_dst, tmp_path, zone):
    """The same brute force over the account's days (New York across its DST change, and
    India at +05:30): every figure of every period equals the events counted between the UTC
    instants its local days begin."""
    db = _copy(generated_dst, tmp_path)
    in_timezone(db, zone)
    every_kind_of_change(db, NOW_DST)
    # Keyed by the local days of the events (zoneinfo's), hours by their local hours.
    tz = zoneinfo.ZoneInfo(zone)
    local = {
        dt.datetime.fromisoformat(when).astimezone(tz).strftime("%Y-%m-%dT%H")
        for (when,) in db.execute(
            "SELECT datetime FROM events WHERE deleted_at IS NULL AND metric_id IS NOT NULL"
        )
    }
    assert {h for (h,) in db.execute("SELECT DISTINCT hour FROM rollup_metric_hours")} == local
    active = {d for (d,) in db.execute("SELECT DISTINCT day FROM rollup_activity_days")}
    assert active == {h[:10] for h in local}
    db.close()


def every_kind_of_change(db, now):
    rng = random.Random(5)
    assert needs_refresh(db)
    assert ensure_rollups(db).mode == "full"
    assert not needs_refresh(db)
    check_everything(db, rng, now)

    # New events, some of them late arrivals for old days and old messages.
    # Email events go to email messages, as in real data (a message has one channel).
    message_ids = [
        r[0]
        for r in db.execute(
            "SELECT id FROM campaign_messages WHERE channel = 'email' UNION ALL"
            " SELECT id FROM flow_messages WHERE channel = 'email' LIMIT 20"
        )
    ]
    profiles = [r[0] for r in db.execute("SELECT id FROM profiles LIMIT 50")]
    metrics = {
        name: ids_of(db, name)[0]
        for name in (kc.RECEIVED_EMAIL, kc.OPENED_EMAIL, kc.PLACED_ORDER, kc.VIEWED_FORM)
    }
    clicked = ids_of(db, kc.CLICKED_EMAIL)[0]
    form_id = db.execute("SELECT id FROM forms LIMIT 1").fetchone()[0]
    new = []
    for i in range(150):
        when = (now - dt.timedelta(days=rng.randrange(60), hours=rng.randrange(24))).isoformat()
        name = rng.choice(list(metrics))
        row = {
            "id": f"new{i}",
            "metric_id": metrics[name],
            "profile_id": rng.choice(profiles),
            "datetime": when,
        }
        if name == kc.PLACED_ORDER:
            row.update(value=12.5, attributed_message_id=rng.choice(message_ids))
        elif name == kc.VIEWED_FORM:
            row["form_id"] = form_id
        else:
            row["message_id"] = rng.choice(message_ids)
        new.append(row)
    db["events"].insert_all(new, pk="id")
    assert needs_refresh(db)
    stats = ensure_rollups(db)
    assert stats.mode == "incremental" and stats.new_events == 150
    check_everything(db, rng, now)

    # Reconciliation marks events deleted (an upsert), one is edited, some are hard-deleted.
    victims = [r[0] for r in db.execute("SELECT id FROM events ORDER BY random() LIMIT 60")]
    db["events"].upsert_all([{"id": v, "deleted_at": now.isoformat()} for v in victims[:40]], pk="id")
    moved = db.execute("SELECT id FROM events WHERE message_id IS NOT NULL LIMIT 1").fetchone()[0]
    db["events"].update(moved, {"message_id": message_ids[-1]})
    db.execute(f"DELETE FROM events WHERE id IN ({','.join('?' * 20)})", victims[40:])
    # Same values upserted again must not mark anything dirty.
    unchanged = db.execute("SELECT id, value FROM events WHERE deleted_at IS NULL LIMIT 5").fetchall()
    ensure_rollups(db)
    db["events"].upsert_all([{"id": i, "value": v} for i, v in unchanged], pk="id")
    assert not needs_refresh(db)
    db["events"].upsert_all([{"id": v, "deleted_at": now.isoformat()} for v in victims[:40]], pk="id")
    assert not needs_refresh(db)
    check_everything(db, rng, now)

    # A daily sync: new events in the last two days on long-running flows and a form
    # recompute only those days (previous days found per profile), with the same result.
    flow_messages = [r[0] for r in db.execute("SELECT id FROM flow_messages WHERE channel = 'email'")]
    daily = []
    for i in range(120):
        when = (now - dt.timedelta(hours=rng.randrange(48))).isoformat()
        daily.append(
            {
                "id": f"daily{i}",
                "metric_id": metrics[kc.OPENED_EMAIL],
                "profile_id": rng.choice(profiles),
                "datetime": when,
                "message_id": rng.choice(flow_messages),
            }
        )
        if i % 3 == 0:  # a click, a bot's every other time: counted apart from people's
            body = {"event_properties": {"Bot Click": i % 2 == 0}}
            daily.append(
                {
                    "id": f"dailyclick{i}",
                    "metric_id": clicked,
                    "profile_id": rng.choice(profiles),
                    "datetime": when,
                    "message_id": rng.choice(flow_messages),
                    "attributes": json.dumps(body),
                }
            )
        daily.append(
            {
                "id": f"dailyform{i}",
                "metric_id": metrics[kc.VIEWED_FORM],
                "profile_id": rng.choice(profiles),
                "datetime": when,
                "form_id": form_id,
            }
        )
    db["events"].insert_all(daily, pk="id")
    stats = ensure_rollups(db)
    assert stats.from_day >= len(flow_messages)  # the day-by-day path was taken
    check_everything(db, rng, now)
    # A reconciliation deleting a recent flow event takes the same path.
    db["events"].upsert({"id": "daily3", "deleted_at": now.isoformat()}, pk="id")
    assert ensure_rollups(db).from_day >= 1
    check_everything(db, rng, now)

    # The incremental result is exactly what a rebuild from scratch gives.
    incremental = snapshot(db)
    assert refresh_rollups(db, None).mode == "full"
    assert snapshot(db) == incremental
    # And a since-based refresh (what the sync engine calls) changes nothing either.
    assert refresh_rollups(db, (now - dt.timedelta(days=3)).isoformat()).mode == "incremental"
    assert snapshot(db) == incremental


def test_new_metric_names_trigger_a_rebuild(db):
    ensure_rollups(db)
    assert not needs_refresh(db)
    db["metrics"].insert({"id": "zzNEW", "name": kc.OPENED_PUSH})
    assert needs_refresh(db)
    assert ensure_rollups(db).mode == "full"


def test_a_report_during_a_long_write_uses_the_rollups_as_they_are(tiny_db_path, monkeypatch):
    from klaviyo_etl.db import rollups
    from klaviyo_etl.reports.periods import resolve_period

    monkeypatch.setattr(rollups, "BUSY_WAIT_SECONDS", 0.2)
    writer = open_database(tiny_db_path)
    reader = open_database(tiny_db_path)
    may = resolve_period(from_="2026-05-01", to="2026-05-31")
    before = messages.campaign_report(reader, may).rows
    writer["events"].insert(
        {
            "id": "late",
            "metric_id": "mRE",
            "profile_id": "p6",
            "datetime": "2026-05-01T11:00:00+00:00",
            "message_id": "M1",
        }
    )
    writer.execute("BEGIN IMMEDIATE")  # a sync in the middle of a page
    try:
        report = messages.campaign_report(reader, may)
        assert report.rows == before  # the old figures, not an error
        assert any("busy" in note for note in report.notes)
    finally:
        writer.execute("ROLLBACK")
    after = messages.campaign_report(reader, may)
    assert {r["campaign_id"]: r["delivered"] for r in after.rows}["C1"] == 5  # p6 now counted
    writer.close()
    reader.close()


def test_a_rebuild_without_the_metrics_synced_joins_no_event_with_their_roles(db):
    # As `sync events` alone leaves a database: events with messages and forms, no metrics.
    db.execute("DELETE FROM metrics")
    assert db.execute("SELECT count(message_id), count(form_id) FROM events").fetchone() > (0, 0)
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        stats = refresh_rollups(db, None)
    finally:
        db.conn.set_trace_callback(None)
    assert (stats.mode, stats.messages, stats.forms) == ("full", 0, 0)
    assert not [s for s in statements if "JOIN temp._roles" in s]
    assert not db.execute("SELECT 1 FROM rollup_entity_days").fetchall()
    assert db.execute("SELECT count(*) FROM rollup_metric_hours").fetchone()[0] > 0  # by metric id


def test_rollups_built_before_the_currency_table_fill_it_alone_not_rebuild_everything(db):
    # A database whose rollups were built before migration m010: same signature, the table
    # empty and unmarked. Rebuilding everything took ~100 s on the first report at 10 M events.
    ensure_rollups(db)
    built = db.execute("SELECT * FROM rollup_currency_days ORDER BY 1, 2, 3").fetchall()
    assert built  # the generated account has orders
    db.execute("DELETE FROM rollup_currency_days")
    db.execute("DELETE FROM rollup_state WHERE key = 'currency_days'")
    assert needs_refresh(db)
    assert ensure_rollups(db).mode == "incremental"
    assert db.execute("SELECT * FROM rollup_currency_days ORDER BY 1, 2, 3").fetchall() == built
    assert not needs_refresh(db)


def an_order(db, *columns: str) -> tuple:
    """`columns` of one live order (with an attributed message, if one is asked for)."""
    attributed = " AND e.attributed_message_id IS NOT NULL" if "attributed_message_id" in columns else ""
    return db.execute(
        f"SELECT {', '.join('e.' + c for c in columns)} FROM events e JOIN metrics m ON m.id = e.metric_id"
        f" WHERE m.name = ? AND e.deleted_at IS NULL{attributed} LIMIT 1",
        [kc.PLACED_ORDER],
    ).fetchone()


def assert_refreshed_as_rebuilt(db) -> None:
    """The change is seen, and the incremental refresh gives what a rebuild does."""
    assert needs_refresh(db)
    assert ensure_rollups(db).mode == "incremental"
    incremental = snapshot(db)
    refresh_rollups(db, None)
    assert snapshot(db) == incremental


def test_a_resynced_order_whose_currency_alone_changed_refreshes_its_day(db):
    # Klaviyo corrects an order's `$currency_code` and the lookback window re-reads it: the
    # upsert changes `attributes` alone, and the day's currency row must follow.
    ensure_rollups(db)
    order, attributes = an_order(db, "id", "attributes")
    body = json.loads(attributes)
    body["event_properties"]["$currency_code"] = "EUR"
    Repository(db).upsert("events", [{"id": order, "attributes": json.dumps(body)}])
    assert_refreshed_as_rebuilt(db)
    assert ("EUR",) in db.execute("SELECT currency FROM rollup_currency_days").fetchall()
    # Another property changed marks nothing.
    body["event_properties"]["note"] = "gift"
    Repository(db).upsert("events", [{"id": order, "attributes": json.dumps(body)}])
    assert not needs_refresh(db)


def test_a_resynced_click_whose_bot_verdict_alone_changed_refreshes_its_message(db):
    # LIVE_BEHAVIOUR.md §12: Klaviyo sends a click again with `Bot Click` changed; only
    # `attributes` changes, and the message's clicks must follow it both ways.
    ensure_rollups(db)
    click, message, attributes = db.execute(
        "SELECT e.id, e.message_id, e.attributes FROM events e JOIN metrics m ON m.id = e.metric_id"
        " WHERE m.name = ? AND e.deleted_at IS NULL AND e.attributes LIKE '%\"Bot Click\":false%' LIMIT 1",
        [kc.CLICKED_EMAIL],
    ).fetchone()
    people = "SELECT events FROM rollup_entity_totals WHERE entity_id = ? AND role = 'clicked'"
    before = db.execute(people, [message]).fetchone()[0]
    body = json.loads(attributes)
    for verdict, change in ((True, -1), (False, 0)):
        body["event_properties"]["Bot Click"] = verdict
        Repository(db).upsert("events", [{"id": click, "attributes": json.dumps(body)}])
        assert_refreshed_as_rebuilt(db)
        assert (db.execute(people, [message]).fetchone() or [0])[0] == before + change
        assert brute_message(db, message)["clicks"] == before + change


def test_a_conversion_whose_attributed_flow_alone_changed_refreshes_its_message(db):
    # rollup_entities keeps the highest flow id a message's events name ('~' sorts last).
    ensure_rollups(db)
    order, message = an_order(db, "id", "attributed_message_id")
    Repository(db).upsert("events", [{"id": order, "attributed_flow_id": "~moved"}])
    assert_refreshed_as_rebuilt(db)
    assert db.execute(
        "SELECT flow_id FROM rollup_entities WHERE kind = 'message' AND entity_id = ?", [message]
    ).fetchone() == ("~moved",)


def test_a_newly_synced_timezone_rebuilds_the_rollups_once_and_utc_rebuilds_nothing(db):
    ensure_rollups(db)
    built = db.execute("SELECT value FROM rollup_state WHERE key = 'signature'").fetchone()[0]
    assert "timezone" not in built  # a UTC database's signature is what it was before days had a zone
    in_timezone(db, "Etc/UTC")
    assert not needs_rebuild(db) and ensure_rollups(db).mode == "none"
    db.execute("UPDATE accounts SET timezone = 'America/Chicago'")
    assert needs_rebuild(db)
    assert ensure_rollups(db).mode == "full"
    assert ensure_rollups(db).mode == "none"
    db.execute("DELETE FROM accounts")  # a key without accounts:read: UTC days again
    assert ensure_rollups(db).mode == "full"


def test_a_rebuild_the_disk_cannot_hold_fails_on_the_full_disk_not_on_its_rollback(db):
    # SQLite rolls the transaction back itself on a full disk; the ROLLBACK after it raised
    # "cannot rollback - no transaction is active", and the report said that instead.
    for table in ROLLUP_TABLES:  # a rebuild is due, and the file holds no room for it
        db.execute(f"DELETE FROM [{table}]")
    db.execute("DELETE FROM rollup_state")
    db.execute("VACUUM")
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")  # the disk holds no page more
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        ensure_rollups(db)
    db.execute("PRAGMA max_page_count = 1073741823")
    assert ensure_rollups(db) is not None  # space again: the rebuild goes through
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
