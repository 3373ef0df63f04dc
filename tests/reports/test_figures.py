"""Every report on the tiny account (tests/helpers/tiny_account.py), against hand-computed figures."""

from __future__ import annotations

import datetime as dt

import pytest

from klaviyo_etl.reports import audience, customers, messages, overview, timeseries
from klaviyo_etl.reports.periods import compare_period, resolve_period

MAY = resolve_period(from_="2026-05-01", to="2026-05-31")


def by(rows, key):
    return {row[key]: row for row in rows}


def test_campaigns_in_may_with_every_figure(tiny_db):
    report = messages.campaign_report(tiny_db, MAY)
    # C3 was sent in April and C4 is deleted; newest first by default.
    assert [r["campaign_id"] for r in report.rows] == ["C2", "C1"]
    c1 = by(report.rows, "campaign_id")["C1"]
    assert {k: c1[k] for k in messages.COUNTS} == {
        "recipients": 5,
        "delivered": 4,
        "opens": 3,
        "opens_unique": 2,
        "clicks": 1,
        "clicks_unique": 1,
        "conversions": 2,
        "conversion_uniques": 2,
        "conversion_value": 150.0,
        "unsubscribes": 1,
        "unsubscribe_uniques": 1,
        "bounced": 1,
        "failed": 0,
        "spam_complaints": 1,
    }
    assert c1["open_rate"] == 0.5  # 2 unique opens / 4 delivered (p5's open was deleted)
    assert c1["click_rate"] == 0.25
    assert c1["click_to_open_rate"] == 0.5
    assert c1["conversion_rate"] == 0.5
    assert c1["revenue_per_recipient"] == 37.5  # 150 / 4 delivered, as conventions.py says
    assert c1["bounce_rate"] == 0.2
    assert c1["spam_complaint_rate"] == 0.25
    assert c1["channel"] == "email" and c1["name"] == "May newsletter"


def test_sms_campaign_and_zero_denominators(tiny_db):
    c2 = by(messages.campaign_report(tiny_db, MAY).rows, "campaign_id")["C2"]
    assert (c2["recipients"], c2["delivered"], c2["clicks_unique"]) == (3, 2, 1)
    assert c2["click_rate"] == 0.5
    # SMS has no opens: open rate and click-to-open rate do not apply (None), they are not 0.
    assert c2["opens_unique"] == 0 and c2["open_rate"] is None and c2["click_to_open_rate"] is None
    assert c2["conversion_value"] == 20.0 and c2["revenue_per_recipient"] == 10.0
    # p2's "Failed to Deliver SMS" is a failed send, not a bounce.
    assert (c2["failed"], c2["bounced"], c2["bounce_rate"]) == (1, 0, 0.0)
    assert c2["failed_rate"] == pytest.approx(1 / 3, abs=1e-6)


def test_campaign_filters_sort_limit_and_totals(tiny_db):
    assert [r["campaign_id"] for r in messages.campaign_report(tiny_db, MAY, channel="email").rows] == ["C1"]
    report = messages.campaign_report(tiny_db, MAY, sort="conversion_value:asc", limit=1)
    assert [r["campaign_id"] for r in report.rows] == ["C2"]
    assert report.meta["totals"]["recipients"] == 8  # before --limit: 5 + 3
    assert report.meta["totals"]["conversion_value"] == 170.0
    all_time = messages.campaign_report(tiny_db, resolve_period(last="all"))
    assert sorted(r["campaign_id"] for r in all_time.rows) == ["C1", "C2", "C3"]


def test_campaign_compare_totals(tiny_db):
    report = messages.campaign_report(tiny_db, MAY, compare_period(MAY, "previous"))
    previous = report.meta["previous_totals"]
    assert previous["campaigns"] == 1 and previous["recipients"] == 2  # C3 in April
    assert report.meta["change_pct"]["recipients"] == 300.0  # 8 vs 2


def test_flows_per_flow_and_channel(tiny_db):
    rows = messages.flow_report(tiny_db, MAY).rows
    email = next(r for r in rows if r["channel"] == "email")
    sms = next(r for r in rows if r["channel"] == "sms")
    assert email["name"] == "Welcome"
    # p5 received FM1 twice (05-03, 05-25): one recipient, two open events, one opener.
    assert (email["recipients"], email["delivered"], email["opens"], email["opens_unique"]) == (2, 2, 2, 1)
    assert email["open_rate"] == 0.5
    assert (email["conversions"], email["conversion_value"]) == (1, 40.0)
    assert email["revenue_per_recipient"] == 20.0
    assert (sms["recipients"], sms["clicks_unique"], sms["click_rate"]) == (1, 1, 1.0)


@pytest.mark.parametrize(
    ("start", "end", "delivered", "opens", "openers"),
    [
        # p5's first receipt (05-03) is before this window, but the 05-25 one is inside it.
        ("2026-05-20", "2026-05-31", 2, 1, 1),
        ("2026-05-01", "2026-05-24", 2, 1, 1),
        ("2026-05-04", "2026-05-20", 0, 0, 0),
        ("2026-05-03", "2026-05-25", 2, 2, 1),
    ],
)
def test_flow_message_uniques_inside_any_window(tiny_db, start, end, delivered, opens, openers):
    period = resolve_period(from_=start, to=end)
    fm1 = by(messages.flow_report(tiny_db, period, by="message").rows, "message_id")["FM1"]
    assert (fm1["delivered"], fm1["opens"], fm1["opens_unique"]) == (delivered, opens, openers)


def test_overview_kpis_with_previous_period(tiny_db):
    report = overview.overview_report(tiny_db, MAY, compare_period(MAY, "previous"))
    rows = by(report.rows, "kpi")
    value = {k: r["value"] for k, r in rows.items()}
    assert value == {
        "revenue": 240.0,
        "orders": 5,
        "active_profiles": 6,
        "new_profiles": 2,
        "email_sends": 9,
        "sms_sends": 4,
        "open_rate": 0.428571,
        "click_rate": 0.142857,
        "conversion_rate": 0.4,
        "form_submissions": 1,
    }
    previous = {k: r["previous"] for k, r in rows.items()}
    assert previous == {
        "revenue": 10.0,
        "orders": 1,
        "active_profiles": 3,
        "new_profiles": 1,
        "email_sends": 2,
        "sms_sends": 0,
        "open_rate": 0.5,
        "click_rate": 0.0,
        "conversion_rate": 0.0,
        "form_submissions": 0,
    }
    assert rows["revenue"]["change_pct"] == 2300.0
    assert rows["active_profiles"]["change_pct"] == 100.0
    assert rows["open_rate"]["change_pct"] == -14.29
    assert rows["sms_sends"]["change_pct"] is None  # nothing to compare with


def test_forms(tiny_db):
    report = audience.form_report(tiny_db, MAY, compare_period(MAY, "previous"))
    fo1 = by(report.rows, "form_id")["FO1"]
    assert (fo1["views"], fo1["viewers"], fo1["submissions"], fo1["submitters"]) == (3, 2, 1, 1)
    assert fo1["submit_rate"] == 0.5
    assert fo1["submissions_previous"] == 0 and fo1["submissions_change_pct"] is None
    assert by(report.rows, "form_id")["FO2"]["views"] == 0


def test_segments_and_lists_growth(tiny_db):
    s1 = audience.segment_report(tiny_db, MAY).rows[0]
    assert {k: s1[k] for k in ("members_at_start", "joined", "left", "net_growth", "members")} == {
        "members_at_start": 2,
        "joined": 2,
        "left": 1,
        "net_growth": 1,
        "members": 3,
    }
    assert s1["growth_rate"] == 0.5
    l1 = audience.list_report(tiny_db, MAY).rows[0]
    assert (l1["members_at_start"], l1["joined"], l1["members"]) == (0, 1, 1)
    assert l1["growth_rate"] is None  # no members at the start


def test_rfm_scores_and_segments(tiny_db):
    scored = by(customers.rfm_scores(tiny_db, MAY), "profile_id")
    assert set(scored) == {"p1", "p2", "p6"}
    assert (scored["p1"]["recency_days"], scored["p1"]["frequency"], scored["p1"]["monetary"]) == (
        11,
        2,
        130.0,
    )
    assert scored["p1"]["rfm"] == "224" and scored["p1"]["segment"] == "Hibernating"
    assert scored["p2"]["rfm"] == "111"
    assert scored["p6"]["rfm"] == "422" and scored["p6"]["segment"] == "Potential Loyalists"
    segments = by(customers.rfm_report(tiny_db, MAY).rows, "segment")
    assert segments["Hibernating"]["customers"] == 2
    assert segments["Hibernating"]["revenue"] == 180.0
    assert segments["Potential Loyalists"]["share"] == pytest.approx(1 / 3, abs=1e-6)
    assert segments["Champions"]["customers"] == 0


def test_cohorts(tiny_db):
    report = customers.cohort_report(tiny_db, resolve_period(last="all"), now=dt.date(2026, 6, 30))
    rows = by(report.rows, "cohort")
    assert rows["2026-04"]["customers"] == 1  # p3
    assert rows["2026-04"]["retention"] == [1.0, 0.0, 1.0]  # ordered Apr, not May, Jun
    assert rows["2026-05"]["customers"] == 3  # p1, p2, p6
    assert rows["2026-05"]["retention"] == [1.0, 0.0]
    assert rows["2026-05"]["revenue"] == [240.0, 0.0]
    only_may = customers.cohort_report(tiny_db, MAY, now=dt.date(2026, 6, 30))
    assert [r["cohort"] for r in only_may.rows] == ["2026-05"]


def test_metric_series_by_day_and_week(tiny_db):
    now = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    daily = timeseries.metric_report(tiny_db, "placed order", MAY, now=now)
    assert len(daily.rows) == 31
    counts = {r["bucket"]: r["value"] for r in daily.rows if r["value"]}
    assert counts == {"2026-05-02": 1, "2026-05-04": 1, "2026-05-11": 1, "2026-05-20": 1, "2026-05-22": 1}
    assert daily.meta["metric"] == "Placed Order" and daily.meta["total"] == 5
    weekly = timeseries.metric_report(tiny_db, "Placed Order", MAY, interval="week", measure="value", now=now)
    assert [(r["bucket"], r["value"]) for r in weekly.rows] == [
        ("2026-04-27", 100.0),
        ("2026-05-04", 50.0),
        ("2026-05-11", 20.0),
        ("2026-05-18", 70.0),
        ("2026-05-25", 0.0),
    ]
    uniques = timeseries.metric_report(
        tiny_db, "Received Email", MAY, interval="month", measure="uniques", now=now
    )
    # p1, p2, p3, p5 (M1) and p6 (FM1); p1 and p5 received two messages but count once.
    assert [(r["bucket"], r["value"]) for r in uniques.rows] == [("2026-05", 5.0)]


def test_metric_forecast_has_backtest(tiny_db):
    now = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    report = timeseries.metric_report(tiny_db, "Placed Order", MAY, forecast="7d", now=now)
    forecast = [r for r in report.rows if r["kind"] == "forecast"]
    assert [r["bucket"] for r in forecast][:2] == ["2026-06-01", "2026-06-02"]
    assert len(forecast) == 7
    test = report.meta["forecast"]["backtest"]
    assert test["points"] == 7 and test["mae"] >= 0
    assert report.meta["forecast"]["method"] in ("seasonal", "linear")


def test_metric_trend_looks_back_before_the_period(tiny_db):
    now = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    period = resolve_period(from_="2026-05-08", to="2026-05-31")
    rows = timeseries.metric_report(tiny_db, "Placed Order", period, now=now).rows
    assert rows[0]["bucket"] == "2026-05-08"
    # 7-day trend on 05-08 covers 05-02..05-08: orders on 05-02 and 05-04.
    assert rows[0]["trend"] == pytest.approx(2 / 7, abs=1e-4)
    assert rows[0]["zscore"] is not None


def test_metric_series_starts_at_the_first_event(tiny_db):
    now = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    period = resolve_period(from_="2026-04-20", to="2026-05-10")
    rows = timeseries.metric_report(tiny_db, "Form submitted by profile", period, now=now).rows
    # The only submission is on 05-02: before it the metric did not exist yet.
    assert [r["bucket"] for r in rows][:2] == ["2026-05-02", "2026-05-03"]
    assert len(rows) == 9 and rows[0]["value"] == 1


# LIVE_BEHAVIOUR.md §13: Klaviyo's SMS metrics as named since July 2026, and before.
TEXT_MESSAGE_NAMES = {
    "mRS": "Received Text Message",
    "mCS": "Clicked Text Message",
    "mFS": "Failed to Deliver Text Message",
}
SMS_NAMES = {"mRS": "Received SMS", "mCS": "Clicked SMS", "mFS": "Failed to Deliver SMS"}


def _sms_figures(db) -> tuple:
    c2 = by(messages.campaign_report(db, MAY).rows, "campaign_id")["C2"]
    fm2 = by(messages.flow_report(db, MAY, by="message").rows, "message_id")["FM2"]
    sends = by(overview.overview_report(db, MAY).rows, "kpi")["sms_sends"]["value"]
    return (
        {k: c2[k] for k in (*messages.COUNTS, *messages.RATES)},
        {k: fm2[k] for k in (*messages.COUNTS, *messages.RATES)},
        sends,
    )


@pytest.mark.parametrize("names", ["text message", "sms", "both"])
def test_sms_figures_count_under_the_metric_names_of_before_and_after_the_rename(tiny_db, names):
    expected = _sms_figures(tiny_db)
    assert expected[0]["recipients"] == 3 and expected[1]["clicks_unique"] == 1 and expected[2] == 4
    if names == "both":
        # An account whose older events stay under the old metric: p1's receipt and the flow's
        # under "Received SMS", the others under "Received Text Message".
        tiny_db["metrics"].insert({"id": "mRSold", "name": "Received SMS"})
        tiny_db.execute(
            "UPDATE events SET metric_id = 'mRSold' WHERE metric_id = 'mRS' AND profile_id IN ('p1', 'p4')"
        )
        renamed = TEXT_MESSAGE_NAMES
    else:
        renamed = TEXT_MESSAGE_NAMES if names == "text message" else SMS_NAMES
    for metric_id, name in renamed.items():
        tiny_db["metrics"].update(metric_id, {"name": name})
    assert _sms_figures(tiny_db) == expected


def test_a_channel_whose_delivery_metric_goes_by_an_unknown_name_is_said_to_count_none(tiny_db):
    # Were Klaviyo to rename its SMS metrics again (LIVE_BEHAVIOUR.md §13), no SMS delivery
    # would count: the reports say so instead of showing a 0 that passes for no sends.
    said = [n for n in messages.campaign_report(tiny_db, MAY).notes if "deliveries counted" in n]
    assert said == []
    tiny_db["metrics"].update("mRS", {"name": "Received Texts"})
    note = 'No sms deliveries counted: no synced metric is named "Received Text Message" or "Received SMS"'
    for report in (messages.campaign_report(tiny_db, MAY), messages.flow_report(tiny_db, MAY)):
        assert [n for n in report.notes if "deliveries counted" in n] == [
            f"{note} (has Klaviyo renamed it?)."
        ]
    assert not [
        n for n in messages.flow_report(tiny_db, MAY, channel="email").notes if "deliveries counted" in n
    ]
