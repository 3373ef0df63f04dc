"""Issue 11's "Done when", end to end through the CLI: after a full `sync all`, the account moves
on in one go (privacy deletions of profiles, new events, a flow action removed, a list deleted,
profiles edited) and `sync all --reconcile` brings the database back to what the server holds,
with the deleted profiles erased and their events out of every report; under faults and limits
cut twentyfold too."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.db import open_database
from klaviyo_etl.sandbox import SandboxData, SandboxServer
from tests.helpers.sync import TABLE_OF, assert_matches_sandbox, live_ids, stored_row_hashes

# Every table a `sync all` fills from a resource of the server, members included.
RESOURCE_TABLES = (*TABLE_OF.values(), "list_members", "segment_members")
# What a privacy deletion must leave of a profile: nothing personal.
PERSONAL = ("email", "phone_number", "external_id", "first_name", "last_name", "organization")
PERSONAL += ("locale", "city", "region", "country", "attributes")


def cli_sync(server: SandboxServer, db_path: Path, *args: str, retries: int = 7):
    """`klaviyo-etl --db DB --quiet --base-url URL --retries N sync all ARGS` as a user runs it."""
    return CliRunner().invoke(
        app,
        ["--db", str(db_path), "--quiet", "--base-url", server.url, "--retries", str(retries)]
        + ["sync", "all", *args],
        env={
            "KLAVIYO_API_KEY": server.config.api_key,
            "KLAVIYO_ETL_CONFIG": str(db_path.parent / "none.toml"),
        },
    )


def report(db_path: Path, name: str) -> dict:
    """`klaviyo-etl report NAME --last all --format json`, parsed."""
    result = CliRunner().invoke(
        app,
        ["--db", str(db_path), "report", name, "--last", "all", "--format", "json"],
        env={"KLAVIYO_ETL_CONFIG": str(db_path.parent / "none.toml")},
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@dataclass
class Advance:
    """What `advance` changed on the server."""

    forgotten: list[str]  # profiles deleted by a privacy request, their events with them
    forgotten_events: int
    touched: list[str]
    new_profiles: list[str]
    new_events: list[str]
    gone_action: str
    gone_action_messages: list[str]
    gone_list: str


def profiles_to_forget(db_path: Path, n: int) -> list[str]:
    """Stored profiles with an email, a phone and a name, those that received messages and
    ordered most first (so their deletion moves the campaign figures), one a list member."""
    db = open_database(db_path)
    ranked = [
        pid
        for (pid,) in db.execute(
            """SELECT p.id FROM profiles p JOIN events e ON e.profile_id = p.id
               WHERE p.deleted_at IS NULL AND p.email IS NOT NULL AND p.phone_number IS NOT NULL
                 AND p.first_name IS NOT NULL AND e.deleted_at IS NULL
               GROUP BY p.id
               ORDER BY count(e.message_id) > 0 DESC, sum(e.value > 0) DESC, count(*) DESC, p.id"""
        )
    ]
    members = {pid for (pid,) in db.execute("SELECT profile_id FROM list_members WHERE deleted_at IS NULL")}
    chosen = ranked[: n - 1]
    chosen.append(next(p for p in ranked if p in members and p not in chosen))
    return chosen


def advance(data: SandboxData, db_path: Path, now: dt.datetime | None = None) -> Advance:
    """Move the account on in one go at `now` (default: this second), as a day of a live
    account does; the same account advanced at the same `now` changes the same way."""
    data.now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    profiles = sorted(data.ids("profile"))
    forgotten = profiles_to_forget(db_path, 4)
    touched = [p for p in profiles if p not in forgotten][3:6]
    new_profiles = data.add("profile", 2)
    for pid in touched:
        data.touch("profile", pid)
    new_events = data.add_events(60)
    # A removed flow action that had messages: its child route now answers 404.
    gone_action = next(a for a in sorted(data.ids("flow-action")) if data.flow_messages_of(a))
    gone_action_messages = [m["id"] for m in data.flow_messages_of(gone_action)]
    data.delete("flow-action", gone_action)
    # A deleted list that had members: its members route now answers 404.
    gone_list = next(g for g in sorted(data.ids("list")) if data.members.get(g))
    data.delete("list", gone_list)
    forgotten_events = sum(data.forget_profile(pid) for pid in forgotten)
    return Advance(
        forgotten,
        forgotten_events,
        touched,
        new_profiles,
        new_events,
        gone_action,
        gone_action_messages,
        gone_list,
    )


def assert_forgotten(db_path: Path, change: Advance) -> None:
    """The deleted profiles keep their id and `deleted_at` only; their events are not live."""
    db = open_database(db_path)
    for pid in change.forgotten:
        row = db["profiles"].get(pid)
        assert row["deleted_at"] is not None, pid
        kept = {c: row[c] for c in PERSONAL if row[c] is not None}
        assert not kept, (pid, kept)
    blanks = " OR ".join(f"{c} IS NOT NULL" for c in PERSONAL)
    kept = db.execute(f"SELECT id FROM profiles WHERE deleted_at IS NOT NULL AND ({blanks})").fetchall()
    assert not kept, f"deleted profiles keep personal data: {kept}"
    marks = ",".join("?" * len(change.forgotten))
    live = db.execute(
        f"SELECT count(*) FROM events WHERE deleted_at IS NULL AND profile_id IN ({marks})", change.forgotten
    ).fetchone()[0]
    assert live == 0, f"{live} events of deleted profiles are still live"
    for table in ("list_members", "segment_members"):
        left = db.execute(
            f"SELECT count(*) FROM {table} WHERE (deleted_at IS NULL OR email IS NOT NULL)"
            f" AND profile_id IN ({marks})",
            change.forgotten,
        ).fetchone()[0]
        assert left == 0, f"{left} {table} rows of deleted profiles are live or keep an email"


def test_sync_all_reconcile_after_an_advance_matches_the_server_and_forgets_deleted_profiles(
    sandbox, tmp_path
):
    server, data, _ = sandbox
    db_path = tmp_path / "k.db"
    first = cli_sync(server, db_path)
    assert first.exit_code == 0, first.output
    assert_matches_sandbox(db_path, data)

    change = advance(data, db_path)
    db = open_database(db_path)
    marks = ",".join("?" * len(change.forgotten))
    counted = db.execute(
        f"SELECT count(*), count(message_id), sum(value > 0) FROM events"
        f" WHERE deleted_at IS NULL AND profile_id IN ({marks})",
        change.forgotten,
    ).fetchone()
    # The deleted profiles' events were stored and counted: messages received, orders placed.
    assert 0 < counted[0] <= change.forgotten_events and counted[1] > 0 and counted[2] > 0, counted

    second = cli_sync(server, db_path, "--reconcile")
    assert second.exit_code == 0, second.output
    for table in RESOURCE_TABLES:  # assert_matches_sandbox compares these, one by one
        assert open_database(db_path)[table].exists(), table
    assert_matches_sandbox(db_path, data)
    assert set(change.new_profiles) <= live_ids(db_path, "profiles")
    assert set(change.new_events) & data.ids("event") <= live_ids(db_path, "events")
    db = open_database(db_path)
    for pid in change.touched:
        assert '"touched":1' in db["profiles"].get(pid)["attributes"].replace(" ", ""), pid
    assert db["flow_actions"].get(change.gone_action)["deleted_at"] is not None
    for mid in change.gone_action_messages:
        assert db["flow_messages"].get(mid)["deleted_at"] is not None, mid
    assert db["lists"].get(change.gone_list)["deleted_at"] is not None
    assert_forgotten(db_path, change)
    runs = db.execute("SELECT stream, status FROM sync_runs WHERE status != 'ok'").fetchall()
    assert not runs, runs

    # The reports read as those of a database that never saw the deleted profiles.
    fresh_path = tmp_path / "fresh.db"
    fresh = cli_sync(server, fresh_path)
    assert fresh.exit_code == 0, fresh.output
    for name in ("overview", "campaigns"):
        assert report(db_path, name) == report(fresh_path, name), name


def test_under_faults_and_limits_cut_twentyfold_an_advance_loses_nothing_and_nothing_is_sent_early(
    sandbox_factory, tmp_path
):
    """The same account, advanced the same way, synced with faults and without: the stored
    rows are the same. (A fresh sync is no yardstick here: a deleted list's name leaves the
    old events that name it, which an incremental sync never re-reads.)"""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    faults = dict(fault_rate=0.05, rate_limits=True, rate_limit_scale=0.05, latency_ms=20)
    with (
        sandbox_factory("small", now=now, **faults) as faulty,
        sandbox_factory("small", now=now) as clean,
    ):
        faulty_path, clean_path = tmp_path / "faulty.db", tmp_path / "clean.db"
        # The first answers state the cut limits, so the client may pace under them without
        # a single 429: a few come anyway, to each run's first requests, before any answer has.
        faulty.server.force_429(6)
        for sb, db_path in ((faulty, faulty_path), (clean, clean_path)):
            first = cli_sync(sb.server, db_path, retries=12)
            assert first.exit_code == 0, first.output
        moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
        change = advance(faulty.data, faulty_path, moment)
        assert advance(clean.data, clean_path, moment) == change  # the same history on both

        faulty.server.force_429(6)
        for sb, db_path in ((faulty, faulty_path), (clean, clean_path)):
            second = cli_sync(sb.server, db_path, "--reconcile", retries=12)
            assert second.exit_code == 0, second.output
        stats = faulty.server.stats.snapshot()
        assert stats["throttled"] > 0 and stats["faults"] > 0, stats
        assert stats["early"] == 0, stats
        assert_matches_sandbox(faulty_path, faulty.data)
        assert_forgotten(faulty_path, change)
        # Not only the same ids: every stored row holds what the run without faults stores.
        with_faults, without = stored_row_hashes(faulty_path), stored_row_hashes(clean_path)
        for table in without:
            assert with_faults[table] == without[table], table
