"""The sync against the sandbox: complete, incremental, resumable, and robust to faults."""

from __future__ import annotations

import datetime as dt

from klaviyo_etl.db import open_database
from klaviyo_etl.sync.engine import SyncOptions, run_sync
from tests.helpers.sync import assert_matches_sandbox, live_ids, live_members, settings_for


def test_full_sync_stores_exactly_the_sandbox(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    result = run_sync(settings_for(server, config, db_path), SyncOptions())
    assert result.ok, [(s.stream, s.error) for s in result.streams]
    assert_matches_sandbox(db_path, data)
    db = open_database(db_path)
    # every campaign has its channel and every message its campaign
    assert db.execute("SELECT COUNT(*) FROM campaigns WHERE channel IS NULL").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM campaign_messages WHERE campaign_id IS NULL").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM flow_actions WHERE flow_id IS NULL").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM flow_messages WHERE flow_id IS NULL").fetchone()[0] == 0
    channels = {r[0] for r in db.execute("SELECT DISTINCT channel FROM campaigns")}
    assert {"email", "sms"} <= channels
    # sync_runs has one ok row per stream; the Reporting API figures landed
    runs = list(db["sync_runs"].rows_where("run_id = ?", [result.run_id]))
    assert {r["status"] for r in runs} == {"ok"}
    # Klaviyo's own figures were asked for the campaigns of every channel, once all were stored
    sent = {r[0] for r in db.execute("SELECT DISTINCT channel FROM campaigns WHERE status = 'Sent'")}
    reported = {
        r[0]
        for r in db.execute("SELECT DISTINCT channel FROM report_values WHERE report = 'campaign-values'")
    }
    assert sent <= reported, (sent, reported)


def test_incremental_sync_picks_up_changes_and_reconcile_finds_deletions(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    settings = settings_for(server, config, db_path)
    assert run_sync(settings, SyncOptions()).ok
    db = open_database(db_path)
    events_before = db["events"].count

    data.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    original_profiles = sorted(data.ids("profile"))
    original_campaigns = sorted(data.ids("campaign"))
    new_profiles = data.add("profile", 3)
    touched = original_profiles[5]
    data.touch("profile", touched)
    fresh = data.add_events(40)
    late = data.add_events(15, start=data.now - dt.timedelta(days=2), end=data.now - dt.timedelta(days=1))
    new_list = data.add("list", 1)[0]
    some_list = sorted(data.ids("list"))[0]
    data.add_member(some_list, new_profiles[0])
    data.touch("campaign", original_campaigns[0])
    gone_campaign = original_campaigns[-1]
    data.delete("campaign", gone_campaign)
    gone_profile = original_profiles[-1]
    data.delete("profile", gone_profile)

    second = run_sync(settings, SyncOptions(reconcile=False))
    assert second.ok, [(s.stream, s.error) for s in second.streams]
    db = open_database(db_path)
    assert set(new_profiles) <= live_ids(db_path, "profiles")
    assert '"touched": 1' in db["profiles"].get(touched)["attributes"].replace(":1", ": 1")
    # the deleted profile took its events (some of the new ones, maybe) with it
    served = (set(fresh) | set(late)) & data.ids("event")
    assert len(served) >= 50
    assert served <= live_ids(db_path, "events")
    assert db["events"].count == events_before + len(served)  # late events caught, nothing doubled
    assert new_list in live_ids(db_path, "lists")
    assert (some_list, new_profiles[0]) in live_members(db_path, "list_members", "list_id")
    # without reconciliation deletions are not visible yet
    assert gone_campaign in live_ids(db_path, "campaigns")

    third = run_sync(settings, SyncOptions(reconcile=True))
    assert third.ok, [(s.stream, s.error) for s in third.streams]
    assert_matches_sandbox(db_path, data)
    db = open_database(db_path)
    assert db["campaigns"].get(gone_campaign)["deleted_at"] is not None
    assert db["profiles"].get(gone_profile)["deleted_at"] is not None


def test_second_sync_without_changes_writes_only_the_lookback(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    settings = settings_for(server, config, db_path)
    first = {s.stream: s for s in run_sync(settings, SyncOptions()).streams}
    second = {s.stream: s for s in run_sync(settings, SyncOptions(reconcile=False)).streams}
    assert second["events"].requests < first["events"].requests
    assert second["profiles"].rows <= 5
    assert second["templates"].rows <= 1


def test_faults_and_a_429_storm_lose_nothing(sandbox, tmp_path):
    server, data, config = sandbox
    config.fault_rate = 0.05
    config.rate_limits = True
    server.force_429(15, retry_after=1)
    db_path = tmp_path / "k.db"
    result = run_sync(settings_for(server, config, db_path, retries=12), SyncOptions())
    assert result.ok, [(s.stream, s.error) for s in result.streams]
    assert_matches_sandbox(db_path, data)
    assert sum(s.retries for s in result.streams) >= 15
    assert sum(s.throttled for s in result.streams) >= 15
    assert server.stats.faults > 0


def test_a_locked_database_is_refused(sandbox, tmp_path):
    from klaviyo_etl.db.lock import database_lock
    from klaviyo_etl.errors import DatabaseLocked

    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    with database_lock(db_path):
        try:
            run_sync(settings_for(server, config, db_path), SyncOptions(streams=["metrics"]))
        except DatabaseLocked as exc:
            assert "another klaviyo-etl sync is running" in str(exc)
        else:
            raise AssertionError("a second sync was allowed while the lock was held")


def test_under_faults_and_limits_cut_twentyfold_nothing_is_lost_or_sent_early(sandbox_factory, tmp_path):
    """A 429 pauses its endpoint for every worker: no request reaches a throttled bucket
    before its Retry-After, and the retries still bring in every row."""
    with sandbox_factory(
        "small", fault_rate=0.05, rate_limits=True, rate_limit_scale=0.05, latency_ms=20
    ) as sb:
        db_path = tmp_path / "k.db"
        result = run_sync(settings_for(sb.server, sb.config, db_path, retries=12), SyncOptions())
        assert result.ok, [(s.stream, s.error) for s in result.streams]
        assert_matches_sandbox(db_path, sb.data)
        stats = sb.server.stats.snapshot()
        assert stats["throttled"] > 0 and stats["faults"] > 0
        assert stats["early"] == 0, stats
