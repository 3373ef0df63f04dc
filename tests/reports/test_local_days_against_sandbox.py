"""Our days are the account's, as Klaviyo's are: a sandbox company in America/New_York (its
Reporting API and metric aggregates count New York days, LIVE_BEHAVIOUR.md §6, §8) gives the
figures we count from the synced events, and UTC days would not."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import zoneinfo

import httpx
import pytest

from klaviyo_etl import conventions as kc
from klaviyo_etl.db import open_database
from klaviyo_etl.reports import timeseries
from klaviyo_etl.reports.compare import compare_report
from klaviyo_etl.reports.periods import resolve_period
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import SyncOptions, run_sync

ZONE = "America/New_York"


@pytest.fixture(scope="module")
def new_york(sandbox_factory, tmp_path_factory):
    """A sandbox company in New York and a database synced from it (every stream)."""
    path = tmp_path_factory.mktemp("ny") / "k.db"
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    with sandbox_factory(
        "small", seed=5, profiles=300, events=8000, campaigns=10, days=60, now=now, timezone=ZONE
    ) as sb:
        _send_between_the_midnights(sb.data)
        result = run_sync(
            Settings(db_path=path, api_key=sb.config.api_key, base_url=sb.server.url), SyncOptions()
        )
        assert result.ok, [(s.stream, s.error) for s in result.streams]
        yield sb, path


def _send_between_the_midnights(data) -> None:
    """A flow email received on New York's today, before New York's midnight but after UTC's
    of the same date: the stored timeframe ends at that date, and read as UTC's days it holds
    the email. The test need not hope that generated sends fall in those hours."""
    zone = zoneinfo.ZoneInfo(ZONE)
    today = dt.datetime.now(zone).date()
    utc_midnight = dt.datetime.combine(today, dt.time(), dt.UTC)
    ny_midnight = dt.datetime.combine(today, dt.time(), zone).astimezone(dt.UTC)
    message = next(m for m in data.messages if m.kind == "flow" and m.channel == "email")
    data.add_received(message.id, data.profile_ids[:3], utc_midnight + (ny_midnight - utc_midnight) / 2)


def _aggregate(sb, metric_id: str, first: dt.date, end: dt.date) -> dict:
    """The sandbox's daily count and unique of a metric over [first, end), days in New York."""
    attributes = {
        "metric_id": metric_id,
        "measurements": ["count", "unique"],
        "interval": "day",
        "timezone": ZONE,
        "filter": [f"greater-or-equal(datetime,{first}T00:00:00)", f"less-than(datetime,{end}T00:00:00)"],
    }
    response = httpx.post(
        f"{sb.server.url}/api/metric-aggregates",
        json={"data": {"type": "metric-aggregate", "attributes": attributes}},
        headers={"Authorization": f"Klaviyo-API-Key {sb.config.api_key}", "revision": "2026-07-15"},
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["attributes"]


def test_our_daily_series_is_the_metric_aggregates_in_the_accounts_timezone(new_york):
    sb, path = new_york
    tz = zoneinfo.ZoneInfo(ZONE)
    today = dt.datetime.now(tz).date()
    first = today - dt.timedelta(days=45)  # 2026's DST change, if within
    metric_id = sb.data.metric_ids[sb.data.metric_named(kc.OPENED_EMAIL)]
    theirs = _aggregate(sb, metric_id, first, today)
    starts = [dt.datetime.fromisoformat(d).astimezone(tz) for d in theirs["dates"]]
    assert all(s.time() == dt.time(0) for s in starts)  # New York's midnights
    days = [s.date().isoformat() for s in starts]
    measured = theirs["data"][0]["measurements"]

    db = open_database(path)
    period = resolve_period(from_=first.isoformat(), to=(today - dt.timedelta(days=1)).isoformat())
    for measure, key in (("count", "count"), ("uniques", "unique")):
        ours = timeseries.metric_report(db, kc.OPENED_EMAIL, period, measure=measure)
        assert ours.to_json()["timezone"] == ZONE
        assert {r["bucket"]: r["value"] for r in ours.rows} == dict(zip(days, measured[key], strict=True))
    # UTC days count other figures from the same events.
    utc = dict(
        db.execute(
            "SELECT substr(datetime, 1, 10), count(*) FROM events WHERE metric_id = ? AND deleted_at IS NULL"
            " AND datetime >= ? AND datetime < ? GROUP BY 1",
            [metric_id, first.isoformat(), today.isoformat()],
        ).fetchall()
    )
    assert [utc.get(d, 0) for d in days] != measured["count"]
    db.close()


def test_campaign_and_flow_figures_equal_the_reporting_apis_new_york_days_and_not_utcs(new_york, tmp_path):
    sb, path = new_york
    db = open_database(path)
    everything = resolve_period(last="all")
    for report in ("campaign-values", "flow-values"):
        compared = compare_report(db, report, everything)
        assert compared.rows and compared.to_json()["timezone"] == ZONE
        assert [(r["name"], r["agree"]) for r in compared.rows if r["agree"] != "yes"] == [], report
    db.close()
    # Without the account (a key lacking accounts:read) our days are UTC's, and the flow email
    # received between the two midnights (`_send_between_the_midnights`) falls in the timeframe.
    utc_path = tmp_path / "utc.db"
    shutil.copy(path, utc_path)
    with sqlite3.connect(utc_path) as conn:
        conn.execute("DELETE FROM accounts")
    db = open_database(utc_path)
    compared = compare_report(db, "flow-values", everything)
    assert compared.to_json()["timezone"] == "UTC"
    assert any(r["agree"] != "yes" for r in compared.rows)
    db.close()
