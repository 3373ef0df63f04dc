"""The sync against the sandbox: complete, incremental, resumable, and robust to faults."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sqlite3
import threading

import httpx
import pytest

from klaviyo_etl.db import open_database
from klaviyo_etl.sync import engine
from klaviyo_etl.sync.engine import SyncOptions, run_sync
from klaviyo_etl.sync.state import StreamState
from klaviyo_etl.timeutil import parse_time as iso
from tests.helpers.sync import (
    Seam,
    assert_matches_sandbox,
    client_through,
    count_rows,
    live_ids,
    live_members,
    settings_for,
    stored_row_hashes,
)


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
    # the Reporting API's figures were asked for the campaigns of every channel, once all were stored
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
    # Not only the same ids: every stored row holds what a read without faults stores.
    config.fault_rate, config.rate_limits = 0.0, False
    clean_path = tmp_path / "clean.db"
    assert run_sync(settings_for(server, config, clean_path), SyncOptions()).ok
    faulty, clean = stored_row_hashes(db_path), stored_row_hashes(clean_path)
    for table in clean:
        assert faulty[table] == clean[table], table


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


class StopAfterFirstPage:
    """A `Progress` that asks the run to stop once `stream` has written a page (an interrupted
    first load, as a kill or a Ctrl-C leaves it)."""

    def __init__(self, stream: str, stop: threading.Event):
        self.stream, self.stop = stream, stop

    def start(self, stream: str) -> None: ...

    def advance(self, stream: str, rows: int, pages: int, requests: int, covered=None) -> None:
        if stream == self.stream and rows:
            self.stop.set()

    def finish(self, result) -> None: ...


# More profiles than the first page of every window holds (8 workers x 100 a page): a stop
# set at the first page's commit can let each worker's page in flight through, never all.
INTERRUPTED_PROFILES = 1200


def test_an_interrupted_first_load_is_reconciled_on_the_next_run(sandbox_factory, tmp_path):
    with sandbox_factory("small", profiles=INTERRUPTED_PROFILES) as running:
        _interrupt_then_reconcile(running.server, running.data, running.config, tmp_path)


def _interrupt_then_reconcile(server, data, config, tmp_path) -> None:
    assert len(data.ids("profile")) == INTERRUPTED_PROFILES
    db_path = tmp_path / "k.db"
    settings = settings_for(server, config, db_path)
    stop = threading.Event()
    first = run_sync(
        settings, SyncOptions(streams=["profiles"]), progress=StopAfterFirstPage("profiles", stop), stop=stop
    )
    assert first.streams[0].status == "stopped"
    stored = sorted(live_ids(db_path, "profiles"))
    assert 0 < len(stored) < len(data.ids("profile"))
    data.delete("profile", stored[0])

    second = run_sync(settings, SyncOptions(streams=["profiles"]))  # automatic reconciliation
    assert second.ok
    assert live_ids(db_path, "profiles") == data.ids("profile")
    assert open_database(db_path)["profiles"].get(stored[0])["deleted_at"] is not None


def test_since_later_than_the_watermark_reads_from_the_watermark(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    settings = settings_for(server, config, db_path)
    started = dt.datetime.now(dt.UTC)
    assert run_sync(settings, SyncOptions(streams=["events"])).ok
    # Late events dated after the stored watermark (start - 10 min), before `--since`.
    late = data.add_events(50, start=started - dt.timedelta(minutes=8), end=started - dt.timedelta(minutes=6))
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat(timespec="seconds")
    assert run_sync(settings, SyncOptions(streams=["events"], since=since)).ok
    assert set(late) <= live_ids(db_path, "events")


def test_the_events_watermark_follows_klaviyos_clock_not_ours(sandbox_factory, tmp_path, caplog):
    month = dt.timedelta(days=30)
    local = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with sandbox_factory("small", now=local - month) as sb:
        sb.data.clock_skew = -month  # this machine's clock runs a month ahead of Klaviyo's
        db_path = tmp_path / "k.db"
        settings = settings_for(sb.server, sb.config, db_path)
        with caplog.at_level(logging.WARNING, logger="klaviyo_etl.sync.engine"):
            assert run_sync(settings, SyncOptions(streams=["events"])).ok
        assert "Klaviyo's clock is 30.0d behind this machine's" in caplog.text
        before = len(live_ids(db_path, "events"))
        fresh = sb.data.add_events(2000)
        assert run_sync(settings, SyncOptions(streams=["events"])).ok
        stored = live_ids(db_path, "events")
        assert len(set(fresh) & stored) == 2000, f"{len(set(fresh) & stored)} of 2000 new events read"
        assert len(stored) == before + 2000


def test_a_profile_updated_during_a_reconcile_scan_is_not_flagged_deleted(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    settings = settings_for(server, config, db_path)
    assert run_sync(settings, SyncOptions(streams=["profiles"])).ok
    held: dict[str, object] = {}
    last_window_read = asyncio.Event()

    def bounds(request: httpx.Request) -> str:
        return request.url.params.get("filter", "") if request.url.path == "/api/profiles" else ""

    async def before(request: httpx.Request) -> None:
        window = bounds(request)
        if "less-than" not in window or "page[cursor]" in request.url.params or held:
            return
        # Hold one window back until the open-ended last window has been read; then a
        # profile of the held window is edited, so it moves behind every window read.
        lo = window.split("greater-than(updated,")[1].split(")")[0]
        hi = window.split("less-than(updated,")[1].split(")")[0]
        inside = sorted(
            (r["attributes"]["updated"], pid)
            for pid, r in data.resources["profile"].items()
            if iso(lo) < iso(r["attributes"]["updated"]) < iso(hi)
        )
        if not inside:
            return
        held["profile"] = inside[0][1]
        await asyncio.wait_for(last_window_read.wait(), timeout=60)
        data.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        data.touch("profile", inside[0][1])

    def after(request: httpx.Request, body: dict) -> None:
        window = bounds(request)
        if window and "less-than" not in window and not body["links"].get("next"):
            last_window_read.set()

    seam = Seam(before=before, after=after)
    result = run_sync(
        settings,
        SyncOptions(streams=["profiles"], reconcile=True),
        client_factory=client_through(settings, seam),
    )
    assert result.ok, [(s.stream, s.error) for s in result.streams]
    assert held, "no window had a profile to hold back"
    touched = held["profile"]
    row = open_database(db_path)["profiles"].get(touched)
    assert row["deleted_at"] is None
    assert '"touched":1' in row["attributes"].replace(" ", "")
    assert live_ids(db_path, "profiles") == data.ids("profile")


def test_a_first_load_of_profiles_skips_the_reconcile_re_read_a_second_full_scan_does_not(
    sandbox_factory, tmp_path
):
    """A first load into an empty table has nothing to flag (every row is its own), so it
    sends no re-read of what changed while it ran (issue 12: ~0.2 s at its end); it still
    counts as a reconcile, so the next run is incremental. A full scan of a table that held
    rows before it re-reads first and flags what it did not see."""
    month = dt.timedelta(days=30)
    local = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # Rows a month old: only the re-read asks for profiles updated since the run began.
    with sandbox_factory("small", now=local - month) as sb:
        db_path = tmp_path / "k.db"
        settings = settings_for(sb.server, sb.config, db_path)
        re_reads: list[str] = []

        async def before(request: httpx.Request) -> None:
            window = request.url.params.get("filter", "")
            if request.url.path != "/api/profiles" or "page[cursor]" in request.url.params:
                return
            if "greater-than(updated," in window:
                lo = iso(window.split("greater-than(updated,")[1].split(")")[0])
                if lo >= local - dt.timedelta(minutes=1):
                    re_reads.append(window)

        def sync(**options):
            seam = Seam(before=before)
            result = run_sync(
                settings,
                SyncOptions(streams=["profiles"], **options),
                client_factory=client_through(settings, seam),
            )
            assert result.ok, [(s.stream, s.error) for s in result.streams]
            return result

        sync()
        assert re_reads == []
        assert live_ids(db_path, "profiles") == sb.data.ids("profile")
        state = StreamState.load(open_database(db_path), "profiles")
        assert state.last_reconcile_at is not None and iso(state.last_reconcile_at) >= local - dt.timedelta(
            seconds=1
        )

        gone = sorted(sb.data.ids("profile"))[0]
        sb.data.delete("profile", gone)
        incremental = sync()  # not due: the first load counted as a reconcile
        assert re_reads == []
        assert gone in live_ids(db_path, "profiles")
        assert incremental.streams[0].deleted == 0

        sync(reconcile=True)
        assert len(re_reads) == 1, re_reads
        assert open_database(db_path)["profiles"].get(gone)["deleted_at"] is not None
        assert live_ids(db_path, "profiles") == sb.data.ids("profile")


def test_a_value_sent_as_text_counts_and_an_unreadable_one_is_kept_and_warned(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    settings = settings_for(server, config, db_path)
    chosen: dict[str, object] = {}

    def rewrite(request: httpx.Request, body: dict) -> dict:
        if request.url.path != "/api/events":
            return body
        for event in body["data"]:
            props = event["attributes"].get("event_properties") or {}
            if isinstance(props.get("$value"), int | float) and props["$value"] > 0:
                if "text" not in chosen:
                    chosen["text"] = event["id"]
                elif "bad" not in chosen and event["id"] != chosen["text"]:
                    chosen["bad"] = event["id"]
            if event["id"] == chosen.get("text"):
                props["$value"] = "12.50"
            elif event["id"] == chosen.get("bad"):
                props["$value"] = "n/a"
        return body

    seam = Seam(rewrite=rewrite)
    result = run_sync(
        settings, SyncOptions(streams=["events"]), client_factory=client_through(settings, seam)
    )
    assert result.ok, [(s.stream, s.error) for s in result.streams]
    db = open_database(db_path)
    assert db["events"].get(chosen["text"])["value"] == 12.5
    bad = db["events"].get(chosen["bad"])
    # `attributes` is the JSON text as sent (here json.dumps' by the seam, spaces and all).
    assert bad["value"] is None and '"$value": "n/a"' in bad["attributes"]
    assert json.loads(bad["attributes"])["event_properties"]["$value"] == "n/a"
    assert result.streams[0].warnings == 1
    runs = list(db["sync_runs"].rows_where("run_id = ?", [result.run_id]))
    assert [r["warnings"] for r in runs] == [1]


def test_a_field_the_first_row_of_a_page_lacks_is_kept_for_the_others(sandbox, tmp_path):
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    settings = settings_for(server, config, db_path)
    firsts: set[str] = set()

    def rewrite(request: httpx.Request, body: dict) -> dict:
        if request.url.path == "/api/profiles" and body["data"]:
            first = body["data"][0]  # Klaviyo leaves off what it has nothing for
            first["attributes"].pop("subscriptions", None)
            firsts.add(first["id"])
        return body

    seam = Seam(rewrite=rewrite)
    result = run_sync(
        settings, SyncOptions(streams=["profiles"]), client_factory=client_through(settings, seam)
    )
    assert result.ok, [(s.stream, s.error) for s in result.streams]
    db = open_database(db_path)
    missing = [
        pid
        for (pid,) in db.execute("SELECT id FROM profiles WHERE email_consent IS NULL")
        if pid not in firsts
    ]
    assert not missing, f"{len(missing)} profiles lost their email_consent"


def test_under_faults_and_limits_cut_twentyfold_nothing_is_lost_or_sent_early(sandbox_factory, tmp_path):
    """A 429 pauses its endpoint for every worker: no request reaches a throttled bucket
    before its Retry-After, and the retries still bring in every row."""
    with sandbox_factory(
        "small", fault_rate=0.05, rate_limits=True, rate_limit_scale=0.05, latency_ms=20
    ) as sb:
        # The first answers state the cut limits, so the client may pace under them without
        # a single 429: a few come anyway, to the first requests, before any answer has.
        sb.server.force_429(6)
        db_path = tmp_path / "k.db"
        result = run_sync(settings_for(sb.server, sb.config, db_path, retries=12), SyncOptions())
        assert result.ok, [(s.stream, s.error) for s in result.streams]
        assert_matches_sandbox(db_path, sb.data)
        stats = sb.server.stats.snapshot()
        assert stats["throttled"] > 0 and stats["faults"] > 0
        assert stats["early"] == 0, stats


@pytest.mark.parametrize("database", ["new", "created without this stream's state"])
def test_a_first_loads_earliest_request_goes_out_while_klaviyos_clock_is_being_read(
    sandbox, tmp_path, database
):
    """The request for the oldest row needs no clock: it does not wait for the clock's answer
    (issue 12: one round trip at the start of every first load), nor, on a new database, for
    its migrations. Windows still hang off the clock, and every row arrives."""
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    if database != "new":
        open_database(db_path).close()
    settings = settings_for(server, config, db_path)
    earliest_sent = asyncio.Event()
    seen: list[str] = []

    async def before(request: httpx.Request) -> None:
        if request.url.path == "/api/metrics" and "clock" not in seen:
            seen.append("clock")
            # The clock's answer is held back until the earliest request has gone out.
            try:
                await asyncio.wait_for(earliest_sent.wait(), timeout=3)
            except TimeoutError:
                seen.append("clock answered first")
        elif request.url.path == "/api/events" and request.url.params.get("page[size]") == "1":
            seen.append("earliest")
            earliest_sent.set()

    result = run_sync(
        settings,
        SyncOptions(streams=["events"]),
        client_factory=client_through(settings, Seam(before=before)),
    )
    assert result.ok, [(s.stream, s.error) for s in result.streams]
    assert sorted(seen) == ["clock", "earliest"]
    assert live_ids(db_path, "events") == data.ids("event")
    # The clock and the earliest request count with the stream, as before.
    runs = list(open_database(db_path)["sync_runs"].rows_where("run_id = ?", [result.run_id]))
    assert runs[0]["requests"] == result.streams[0].requests >= 3


def test_on_a_new_database_the_oldest_rows_are_read_before_the_streams_and_the_database_load(
    sandbox, tmp_path, monkeypatch
):
    """A new database holds no state to read first: the requests for the oldest event and
    profile go out with the clock's and are answered before the streams, the database layer
    and pydantic have loaded (`load_parts`, ~0.15 s of imports: issue 12)."""
    server, data, config = sandbox
    db_path = tmp_path / "k.db"
    settings = settings_for(server, config, db_path)
    answered: set[str] = set()
    both_answered = threading.Event()
    seen: list[str] = []

    def after(request: httpx.Request, body: dict) -> None:
        if request.url.params.get("page[size]") == "1":
            answered.add(request.url.path)
            if answered == {"/api/events", "/api/profiles"}:
                both_answered.set()

    load_parts = engine.load_parts

    def held_until_both_are_answered():
        if not both_answered.wait(timeout=5):
            seen.append("the parts loaded first")
        return load_parts()

    monkeypatch.setattr(engine, "load_parts", held_until_both_are_answered)
    result = run_sync(
        settings,
        SyncOptions(streams=["events", "profiles"]),
        client_factory=client_through(settings, Seam(after=after)),
    )
    assert result.ok, [(s.stream, s.error) for s in result.streams]
    assert seen == []
    assert live_ids(db_path, "events") == data.ids("event")
    assert live_ids(db_path, "profiles") == data.ids("profile")
    # Each stream counts its oldest-row request (events the clock's too), as before.
    runs = {
        r["stream"]: r for r in open_database(db_path)["sync_runs"].rows_where("run_id = ?", [result.run_id])
    }
    assert [runs[s.stream]["requests"] for s in result.streams] == [s.requests for s in result.streams]
    assert all(s.requests >= 2 for s in result.streams)


def test_a_key_revoked_mid_run_stops_it_keeps_what_is_stored_and_the_next_run_completes(
    sandbox_factory, tmp_path
):
    from klaviyo_etl.errors import KeyRejected

    with sandbox_factory("small", events=6000) as sb:
        db_path = tmp_path / "k.db"
        settings = settings_for(sb.server, sb.config, db_path)
        key = sb.config.api_key

        async def revoke_after_some_pages(request: httpx.Request) -> None:
            if count_rows(db_path, "events") >= 1000:  # a page of events stored
                sb.config.api_key = "pk_revoked_0000000000000000000000000000"

        with pytest.raises(KeyRejected):
            run_sync(
                settings,
                SyncOptions(),
                client_factory=client_through(settings, Seam(revoke_after_some_pages)),
            )
        conn = sqlite3.connect(db_path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        failed = dict(conn.execute("SELECT stream, error FROM sync_runs WHERE status = 'failed'").fetchall())
        conn.close()
        assert failed and all("was rejected" in error for error in failed.values())
        assert 0 < len(live_ids(db_path, "events")) < 6000

        sb.config.api_key = key  # a new key in place: the next run completes the load
        assert run_sync(settings, SyncOptions()).ok
        assert_matches_sandbox(db_path, sb.data)


def test_events_that_appear_days_after_their_datetime_are_read_once_they_are_a_week_old(
    sandbox_factory, tmp_path
):
    """LIVE_BEHAVIOUR.md §10: Klaviyo's events are eventually consistent; Estuary saw some
    appear more than 4 days late. Events dated 4-5 days back that appear after a sync are past
    the 3-day lookback of every later run: before the settle window none of them was ever
    stored. Now a run once they are a week old reads them, and only that stretch again."""
    with sandbox_factory("tiny") as sb:
        db_path = tmp_path / "k.db"
        settings = settings_for(sb.server, sb.config, db_path)
        assert run_sync(settings, SyncOptions(streams=["events"])).ok
        now = dt.datetime.fromtimestamp(sb.data.clock(), dt.UTC)
        late = sb.data.add_events(20, start=now - dt.timedelta(days=5), end=now - dt.timedelta(days=4))
        assert run_sync(settings, SyncOptions(streams=["events"])).ok  # a day later, say
        assert not set(late) & live_ids(db_path, "events")  # not yet: SETTLE has not passed
        sb.data.clock_skew = dt.timedelta(days=4)  # four days pass at Klaviyo
        result = run_sync(settings, SyncOptions(streams=["events"]))
        assert result.ok
        assert set(late) <= live_ids(db_path, "events"), (
            f"{len(set(late) & live_ids(db_path, 'events'))} of 20"
        )
        state = StreamState.load(open_database(db_path), "events")
        assert iso(state.extra["settled"]) == iso(state.watermark) + dt.timedelta(minutes=10) - dt.timedelta(
            days=7
        )


def test_an_event_stamped_ahead_of_klaviyos_clock_never_sends_a_bound_in_the_future(
    sandbox_factory, tmp_path
):
    """LIVE_BEHAVIOUR.md §11: Klaviyo refuses a filter bound ahead of its clock with a 400, so
    a mark taken from an event dated a month ahead (a skewed integration) would fail every
    later run (PostHog's connector did, until it clamped its cursor). Our mark stops at the
    run's start."""
    with sandbox_factory("tiny") as sb:
        db_path = tmp_path / "k.db"
        settings = settings_for(sb.server, sb.config, db_path)
        now = dt.datetime.fromtimestamp(sb.data.clock(), dt.UTC)
        ahead = sb.data.add_events(1, start=now + dt.timedelta(days=30), end=now + dt.timedelta(days=30))
        assert run_sync(settings, SyncOptions(streams=["events"])).ok
        assert set(ahead) <= live_ids(db_path, "events")
        fresh = sb.data.add_events(5)
        second = run_sync(settings, SyncOptions(streams=["events"]))
        assert second.ok, [(s.stream, s.error) for s in second.streams]
        assert set(fresh) <= live_ids(db_path, "events")


def test_a_next_link_that_repeats_fails_its_stream_instead_of_looping_for_ever(sandbox, tmp_path):
    # Before: a server whose cursor came back to a page already read (here: list pages pointing
    # at themselves) kept the sync reading that page until it was stopped, holding the
    # database lock, so every cron run after it was refused. Now the stream fails with one
    # line after the repeat, and the others complete.
    server, data, config = sandbox
    settings = settings_for(server, config, tmp_path / "k.db")
    stop, lists = threading.Event(), []

    def rewrite(request: httpx.Request, body: dict) -> dict:
        if request.url.path == "/api/lists":
            body["links"]["next"] = str(request.url)
        return body

    async def before(request: httpx.Request) -> None:
        if request.url.path == "/api/lists":
            lists.append(request.url)
            if len(lists) > 20:  # without the guard: end the test, not the machine
                stop.set()

    result = run_sync(
        settings,
        SyncOptions(streams=["lists", "tags"]),
        stop=stop,
        client_factory=client_through(settings, Seam(before=before, rewrite=rewrite)),
    )
    by_stream = {s.stream: s for s in result.streams}
    assert by_stream["lists"].status == "failed", by_stream["lists"]
    assert "repeats" in by_stream["lists"].error and "\n" not in by_stream["lists"].error
    assert len(lists) == 2  # the first page, and its link to itself: once
    assert by_stream["tags"].status == "ok" and result.exit_code == 1


def test_a_window_refused_while_the_others_wait_for_the_probe_ends_the_run(
    sandbox_factory, tmp_path, monkeypatch
):
    """`sync events --since 0999-06-01` before filters wrote four-digit years: the first
    window's filter was refused (400) while the other workers waited for the new bucket's
    one request in flight; one of them lost the failing stream's cancel (Python 3.11's
    `wait_for`), read on alone and then waited for ever for the refused window, deaf to
    SIGTERM. The run must end, the stream failed with the 400, and a stop must end it too."""
    from klaviyo_etl.sync import filters

    # The filter times as they were written then: year 999 as "999-06-01T00:00:00Z".
    monkeypatch.setattr(
        filters, "fmt_time", lambda value: value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    with sandbox_factory("tiny") as sb:
        settings = settings_for(sb.server, sb.config, tmp_path / "k.db")
        stop = threading.Event()
        results: list = []
        options = SyncOptions(streams=["events"], since="0999-06-01T00:00:00+00:00")
        runner = threading.Thread(
            target=lambda: results.append(run_sync(settings, options, stop=stop)), daemon=True
        )
        runner.start()
        runner.join(10)
        stop.set()  # were it still running: a stop ends it too, promptly
        runner.join(5)
        assert not runner.is_alive(), "the sync neither ended nor honoured the stop"
    [events] = results[0].streams
    assert events.status == "failed" and "400" in (events.error or ""), events
