"""`klaviyo_etl.check`: scope probes, revision headers, the tolerance, and figures vs Klaviyo's."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import httpx
import pytest

from klaviyo_etl.check import (
    compare_figures,
    differs,
    readiness,
    revision_status,
    run_access_check,
    scope_probes,
)
from klaviyo_etl.client import KlaviyoClient
from klaviyo_etl.db import open_database
from klaviyo_etl.endpoints import contract
from klaviyo_etl.reports.periods import resolve_period
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import make_client
from klaviyo_etl.sync.streams import build_streams


@pytest.fixture
def synced(check_account):
    """A sandbox and a database synced from it with what the comparison reads."""
    return check_account


@pytest.fixture
def db(synced, tmp_path):
    """A copy of the synced database, free to tamper with."""
    copy = tmp_path / "k.db"
    shutil.copy(synced[1], copy)
    db = open_database(copy)
    yield db
    db.close()


def test_differs_is_relative_with_an_absolute_floor():
    assert not differs(1, 0, 0.02, 1)  # one event either way is noise on tiny counts
    assert differs(2, 0, 0.02, 1)
    assert not differs(100, 102, 0.02, 1)  # within 2 %
    assert differs(100, 103, 0.02, 1)
    assert not differs(0, None, 0.02, 1)  # Klaviyo gave no figure: nothing to compare
    assert differs(0, 1, 0.0, 0)  # tolerance and floor 0: exact


def test_one_probe_per_scope_the_sync_needs_each_on_an_endpoint_needing_that_scope_alone():
    probes = scope_probes()
    needed = {
        scope
        for stream in build_streams().values()
        for endpoint in (
            [stream.endpoint]
            if hasattr(stream, "endpoint")
            else [contract().report(path) for _, path, *_ in stream.REPORTS]
        )
        for scope in endpoint.scopes
    }
    assert {p.scope for p in probes} == needed
    assert "campaigns:read" in needed and "flows:read" in needed
    for probe in probes:
        assert contract().by_path(probe.path).scopes == [probe.scope], probe


def test_a_scope_the_key_lacks_is_listed_with_the_streams_that_need_it(sandbox_factory):
    with sandbox_factory("tiny", missing_scopes=frozenset({"flows:read", "segments:read"})) as sb:
        settings = Settings(api_key=sb.config.api_key, base_url=sb.server.url)
        access = run_access_check(make_client(settings))
    assert sorted(access.missing_scopes) == ["flows:read", "segments:read"]
    by_scope = {p.scope: p for p in access.probes}
    assert {"flows", "flow_messages", "reports"} <= set(by_scope["flows:read"].streams)
    assert by_scope["flows:read"].status == 403
    assert all(p.status == 200 for p in access.probes if p.scope not in access.missing_scopes)
    assert access.failed == []


def test_deprecation_and_sunset_headers_are_kept():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"data": [], "links": {"next": None}},
            headers={"Deprecation": "@1767225600", "Sunset": "Wed, 15 Jul 2027 00:00:00 GMT"},
        )

    access = run_access_check(
        lambda: KlaviyoClient("pk_test_abcd", base_url="http://k.test", transport=httpx.MockTransport(answer))
    )
    assert access.headers == {"deprecation": "@1767225600", "sunset": "Wed, 15 Jul 2027 00:00:00 GMT"}
    assert access.missing_scopes == []


def test_revision_age_follows_klaviyos_policy():
    today = dt.date(2026, 12, 1)
    assert revision_status("2026-07-15", today)["policy"] == "stable"
    assert revision_status("2025-07-15", today)["policy"] == "deprecated"
    assert revision_status("2024-07-15", today)["policy"] == "past retirement"


def test_figures_agree_with_the_sandboxs_reporting_api(db):
    figures = compare_figures(db, resolve_period(last="all"))
    assert figures.compared["campaigns"] > 0 and figures.compared["flows"] > 0
    assert figures.rows == []
    assert figures.advice == []


def test_a_tampered_klaviyo_figure_is_one_row_naming_the_figure(db):
    entity, statistics = db.execute(
        "SELECT entity_id, statistics FROM report_values WHERE report = 'campaign-values' ORDER BY id LIMIT 1"
    ).fetchone()
    tampered = {**json.loads(statistics)}
    tampered["recipients"] = tampered["recipients"] + 40
    db.execute(
        "UPDATE report_values SET statistics = ? WHERE entity_id = ? AND statistics = ?",
        [json.dumps(tampered), entity, statistics],
    )
    figures = compare_figures(db, resolve_period(last="all"))
    assert [(r["kind"], r["id"]) for r in figures.rows] == [("campaign", entity)]
    difference = figures.rows[0]["differences"]
    assert list(difference) == ["recipients"]
    assert difference["recipients"]["klaviyo"] - difference["recipients"]["ours"] == 40
    # a tolerance wide enough lets it pass
    assert compare_figures(db, resolve_period(last="all"), tolerance=0.99, floor=40).rows == []


def test_figures_count_the_configured_conversion_metric_the_one_sync_reports_sent(db):
    # The sync asked Klaviyo about the default pick (the busiest "Placed Order"); counting the
    # other "Placed Order" on our side must show up as conversion differences, and naming the
    # default explicitly must agree again.
    metrics = db.execute(
        "SELECT m.id, count(e.id) FROM metrics m JOIN events e ON e.metric_id = m.id"
        " WHERE m.name = 'Placed Order' GROUP BY m.id ORDER BY count(e.id) DESC"
    ).fetchall()
    assert len(metrics) == 2, "the sandbox has two Placed Order metrics"
    (busiest, _), (other, _) = metrics
    period = resolve_period(last="all")
    assert compare_figures(db, period, conversion=busiest).rows == []
    figures = compare_figures(db, period, conversion=other, tolerance=0, floor=0)
    assert figures.rows
    assert {f for r in figures.rows for f in r["differences"]} <= {
        "conversions",
        "conversion_uniques",
        "conversion_value",
    }


def test_an_unsynced_database_says_which_sync_to_run(tmp_path):
    db = open_database(tmp_path / "empty.db")
    figures = compare_figures(db, resolve_period(last="30d"))
    assert not figures.comparable
    assert figures.advice == [
        "never synced: metrics, events, campaigns, flows, flow_messages, reports; run"
        " `klaviyo-etl sync metrics events campaigns flows flow_messages reports` first (or pass --sync)"
    ]


def test_events_older_than_klaviyos_figures_ask_for_sync_events(db):
    db.execute("UPDATE sync_state SET last_success_at = '2020-01-01T00:00:00+00:00' WHERE stream = 'events'")
    advice = readiness(db, resolve_period(last="all"))
    assert len(advice) == 1 and "`klaviyo-etl sync events`" in advice[0]


def test_campaigns_without_stored_figures_ask_for_sync_reports(db):
    db.execute("DELETE FROM report_values WHERE report = 'campaign-values'")
    advice = readiness(db, resolve_period(last="all"))
    assert len(advice) == 1 and "`klaviyo-etl sync reports`" in advice[0]


def test_a_probe_refused_for_another_reason_is_a_failure_not_a_missing_scope():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/tags":
            return httpx.Response(
                404, json={"errors": [{"id": "1", "code": "not_found", "title": "Not found."}]}
            )
        return httpx.Response(200, json={"data": [], "links": {"next": None}})

    access = run_access_check(
        lambda: KlaviyoClient("pk_test_abcd", base_url="http://k.test", transport=httpx.MockTransport(answer))
    )
    assert access.missing_scopes == []
    assert [(p.scope, p.status) for p in access.failed] == [("tags:read", 404)]


def test_flows_compared_counts_each_flow_once_whatever_its_channels(db):
    flows = db.execute(
        "SELECT count(DISTINCT entity_id), count(DISTINCT entity_id || channel) FROM report_values"
        " WHERE report = 'flow-values'"
    ).fetchone()
    assert flows[1] > flows[0], "the account wants a flow sending on two channels"
    assert compare_figures(db, resolve_period(last="all")).compared["flows"] == flows[0]


def test_a_campaign_sent_before_klaviyos_timeframe_asks_for_no_sync(db):
    # `sync reports` asks only about campaigns sent inside the timeframe: telling the user to
    # run it for an older campaign sent them round in circles.
    fetched = db.execute("SELECT max(fetched_at) FROM report_values").fetchone()[0]
    old = (dt.datetime.fromisoformat(fetched) - dt.timedelta(days=400)).isoformat()
    campaign = db.execute(
        "SELECT entity_id FROM report_values WHERE report = 'campaign-values' LIMIT 1"
    ).fetchone()[0]
    db.execute("UPDATE campaigns SET send_time = ? WHERE id = ?", [old, campaign])
    db.execute("DELETE FROM report_values WHERE entity_id = ?", [campaign])
    assert readiness(db, resolve_period(last="all")) == []


def test_a_flow_that_sent_in_klaviyos_timeframe_without_stored_figures_asks_for_sync_reports(db):
    flow, name = db.execute(
        "SELECT f.id, f.name FROM report_values r JOIN flows f ON f.id = r.entity_id"
        " WHERE r.report = 'flow-values' LIMIT 1"
    ).fetchone()
    db.execute("DELETE FROM report_values WHERE entity_id = ?", [flow])
    advice = readiness(db, resolve_period(last="all"))
    assert len(advice) == 1 and "`klaviyo-etl sync reports`" in advice[0] and repr(name) in advice[0]
