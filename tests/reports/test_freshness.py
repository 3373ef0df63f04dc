"""--max-age: which streams count as stale, and that only stale ones are synced first."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from klaviyo_etl.cli.freshness import ensure_fresh, parse_age, stale_streams, streams_for
from klaviyo_etl.db import open_database
from klaviyo_etl.errors import KlaviyoEtlError, UsageError

NOW = dt.datetime(2026, 5, 31, 12, tzinfo=dt.UTC)


@pytest.fixture
def db(tmp_path):
    database = open_database(tmp_path / "fresh.db")
    database["sync_state"].insert_all(
        [
            {"stream": "metrics", "last_success_at": "2026-05-31T11:00:00+00:00"},
            {"stream": "events", "last_success_at": "2026-05-31T02:00:00+00:00"},
            {"stream": "campaigns", "last_success_at": "2026-05-31T11:30:00Z"},
        ]
    )
    yield database
    database.close()


def test_parse_age():
    assert parse_age("6h") == dt.timedelta(hours=6)
    assert parse_age("90s") == dt.timedelta(seconds=90)
    assert parse_age("1.5d") == dt.timedelta(hours=36)
    with pytest.raises(UsageError):
        parse_age("soon")


def test_stale_streams(db):
    needed = streams_for("campaigns")
    assert needed == ["metrics", "events", "campaigns", "campaign_messages"]
    # events is 10 h old; campaign_messages never synced.
    assert stale_streams(db, needed, dt.timedelta(hours=6), NOW) == ["events", "campaign_messages"]
    assert stale_streams(db, needed, dt.timedelta(hours=12), NOW) == ["campaign_messages"]
    assert "reports" in streams_for("campaigns", source="klaviyo")


def test_ensure_fresh_syncs_only_when_stale(db):
    calls = []

    def sync(streams):
        calls.append(streams)
        return SimpleNamespace(ok=True, streams=[])

    assert ensure_fresh(None, db, "metric", None, sync=sync, now=NOW) == []  # no --max-age
    assert ensure_fresh(None, db, "metric", "12h", sync=sync, now=NOW) == []  # fresh enough
    assert calls == []
    assert ensure_fresh(None, db, "metric", "6h", sync=sync, now=NOW) == ["events"]
    assert calls == [["events"]]


def test_failed_sync_is_an_error(db):
    failed = SimpleNamespace(ok=False, streams=[SimpleNamespace(stream="events", status="failed")])
    with pytest.raises(KlaviyoEtlError, match="could not refresh events"):
        ensure_fresh(None, db, "metric", "1h", sync=lambda streams: failed, now=NOW)
