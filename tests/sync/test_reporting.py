"""The `reports` stream: what it asks Klaviyo's Reporting API, and what it stores."""

from __future__ import annotations

import datetime as dt

from klaviyo_etl.check import compare_figures
from klaviyo_etl.db import open_database
from klaviyo_etl.reports.periods import resolve_period
from klaviyo_etl.sandbox.events import NONE
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import SyncOptions, run_sync
from klaviyo_etl.sync.streams import ReportingStream


def test_the_timeframe_is_posted_as_the_days_of_the_key_ending_at_the_start_of_today():
    body = ReportingStream().body("campaign-values-report", "campaign_id", ["c1"], "m1", dt.date(2026, 3, 1))
    assert body["data"]["attributes"]["timeframe"] == {
        "start": "2025-03-01T00:00:00+00:00",
        "end": "2026-03-01T00:00:00+00:00",
    }
    # a key without a fixed number of days is sent as it is
    monthly = ReportingStream("last_month").body(
        "flow-values-report", "flow_id", ["f1"], "m1", dt.date(2026, 3, 1)
    )
    assert monthly["data"]["attributes"]["timeframe"] == {"key": "last_month"}


def test_figures_agree_when_klaviyo_resolves_the_timeframe_on_the_day_before_ours(sandbox_factory, tmp_path):
    # Klaviyo resolves a timeframe key by its own clock when each request arrives: a sync
    # straddling midnight, or a clock a little off ours, stored yesterday's `last_365_days`
    # under today's date, and `check` then compared the two sides over different days. This
    # sandbox's account ends a second before midnight and resolves keys from there, while
    # its `Date` header and our clock say today.
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    db_path = tmp_path / "k.db"
    with sandbox_factory("small", seed=5, events=4000, now=today - dt.timedelta(seconds=1)) as sb:
        settings = Settings(db_path=db_path, api_key=sb.config.api_key, base_url=sb.server.url)
        result = run_sync(
            settings,
            SyncOptions(streams=["metrics", "events", "campaigns", "flows", "flow_messages", "reports"]),
        )
    assert result.ok, [(s.stream, s.error) for s in result.streams]
    db = open_database(db_path)
    try:
        figures = compare_figures(db, resolve_period(last="all"), tolerance=0, floor=0)
    finally:
        db.close()
    assert figures.compared["campaigns"] and figures.compared["flows"]
    assert figures.rows == []


def test_a_message_klaviyo_no_longer_reports_loses_its_stored_figures(sandbox_factory, tmp_path):
    # Before: each batch's rows were upserted, so a message missing from the newer answer (no
    # events left in the timeframe: its recipients deleted, or its sends now before the
    # timeframe's first day) kept the figures of an older fetch, over an older timeframe, and
    # `check` compared them with our events (CI saw 10 vs 0 on a day the account's days moved).
    db_path = tmp_path / "k.db"
    streams = ["metrics", "events", "campaigns", "flows", "flow_messages", "reports"]
    with sandbox_factory("small", seed=5, events=4000) as sb:
        data = sb.data
        settings = Settings(db_path=db_path, api_key=sb.config.api_key, base_url=sb.server.url)
        assert run_sync(settings, SyncOptions(streams=streams)).ok
        recipients: dict[int, set[int]] = {}
        for mi, p in zip(data.events.msg, data.events.profile, strict=True):
            if mi != NONE and data.messages[mi].kind == "campaign":
                recipients.setdefault(mi, set()).add(p)
        mi = min(recipients, key=lambda i: len(recipients[i]))
        gone = data.messages[mi]
        with open_database(db_path) as db:
            stored = "SELECT count(*) FROM report_values WHERE message_id = ?"
            assert db.execute(stored, [gone.id]).fetchone()[0] == 1
            before = db.execute("SELECT count(*) FROM report_values").fetchone()[0]
        for p in recipients[mi]:
            data.forget_profile(data.profile_ids[p])
        assert run_sync(settings, SyncOptions(streams=["reports"])).ok
    db = open_database(db_path)
    try:
        assert db.execute(stored, [gone.id]).fetchone()[0] == 0
        # Every other message is still stored (its figures are the newer fetch's).
        assert db.execute("SELECT count(*) FROM report_values").fetchone()[0] == before - 1
        assert db.execute("SELECT count(DISTINCT fetched_at) FROM report_values").fetchone()[0] == 1
    finally:
        db.close()
