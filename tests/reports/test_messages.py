"""Campaign and flow figures under the live conventions of issue 8, on the tiny account.

Each test changes the hand-checkable account (tests/helpers/tiny_account.py) the way a live
account differs from our old beliefs, and checks the report still gives the true figures:
campaign ids in `$message`, statuses that are not sends, archived items, SMS without opens
and a second "Placed Order" metric.
"""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from klaviyo_etl import conventions as kc
from klaviyo_etl.reports import messages
from klaviyo_etl.reports.compare import compare_report
from klaviyo_etl.reports.html import report_page
from klaviyo_etl.reports.periods import resolve_period
from klaviyo_etl.reports.render import print_report, to_json
from tests.helpers.tiny_account import at

MAY = resolve_period(from_="2026-05-01", to="2026-05-31")
FIGURES = ("recipients", "delivered", "opens_unique", "clicks_unique", "conversions", "conversion_value")


def by_id(report):
    return {r["campaign_id"]: r for r in report.rows}


def key_events_by_campaign_id(db):
    """Rewrite the account as live Klaviyo sends it: `$message` (and `$attributed_message`)
    on campaign events is the campaign id, not the campaign-message id."""
    for message, campaign in db.execute("SELECT id, campaign_id FROM campaign_messages").fetchall():
        db.execute("UPDATE events SET message_id = ? WHERE message_id = ?", [campaign, message])
        db.execute(
            "UPDATE events SET attributed_message_id = ? WHERE attributed_message_id = ?", [campaign, message]
        )


def test_campaign_events_keyed_by_the_campaign_id_give_the_campaign_its_figures(tiny_db):
    before = by_id(messages.campaign_report(tiny_db, MAY))
    key_events_by_campaign_id(tiny_db)
    after = by_id(messages.campaign_report(tiny_db, MAY))
    for cid in ("C1", "C2"):
        assert {k: after[cid][k] for k in FIGURES} == {k: before[cid][k] for k in FIGURES}, cid
    assert (after["C1"]["recipients"], after["C1"]["conversion_value"]) == (5, 150.0)
    assert (after["C2"]["recipients"], after["C2"]["conversion_value"]) == (3, 20.0)


def test_a_campaign_sums_events_keyed_by_its_id_and_by_its_message_ids(tiny_db):
    # Half the history in each convention (e.g. data synced before and after a change).
    tiny_db.execute(
        "UPDATE events SET message_id = 'C1' WHERE message_id = 'M1' AND profile_id IN ('p1', 'p2')"
    )
    c1 = by_id(messages.campaign_report(tiny_db, MAY))["C1"]
    assert (c1["recipients"], c1["delivered"], c1["opens_unique"], c1["clicks_unique"]) == (5, 4, 2, 1)


def store_c1_values(db, timeframe_end: str, fetched_at: str, statistics: dict) -> None:
    """Klaviyo's stored figures for campaign C1 (message M1), over a timeframe from May 1."""
    db["report_values"].insert(
        {
            "id": "r1",
            "report": "campaign-values",
            "entity_id": "C1",
            "message_id": "M1",
            "channel": "email",
            "timeframe_start": "2026-05-01T00:00:00+00:00",
            "timeframe_end": timeframe_end,
            "fetched_at": fetched_at,
            "statistics": json.dumps(statistics),
        },
        pk="id",
        alter=True,
    )


def test_compare_resolves_campaign_ids_too(tiny_db):
    key_events_by_campaign_id(tiny_db)
    store_c1_values(
        tiny_db,
        "2026-06-01T00:00:00+00:00",
        "2026-06-01T00:00:00",
        {"recipients": 5, "delivered": 4, "opens_unique": 2, "clicks_unique": 1, "conversion_value": 150.0},
    )
    row = compare_report(tiny_db, "campaign-values", MAY).rows[0]
    assert row["entity_id"] == "C1" and row["recipients"] == 5 and row["agree"] == "yes", row


def test_campaigns_sent_outside_klaviyos_timeframe_are_not_sent_to_sync_reports(tiny_db):
    # `sync reports` asks only about campaigns sent in the timeframe it fetches, which ends at
    # the start of the day of the fetch: for an older campaign, or one sent that day, "run
    # `klaviyo-etl sync reports`" sent the user round in circles.
    tiny_db["campaigns"].insert(
        {"id": "C6", "name": "Restock", "channel": "email", "status": "Sent", "send_time": "2026-05-03"},
        alter=True,
    )
    store_c1_values(tiny_db, "2026-05-10T00:00:00+00:00", "2026-05-10T14:00:00+00:00", {"recipients": 5})
    report = messages.campaign_report(
        tiny_db, resolve_period(from_="2026-04-01", to="2026-05-31"), source="klaviyo"
    )
    recipients = {r["campaign_id"]: r["recipients"] for r in report.rows}
    assert recipients == {"C1": 5, "C2": None, "C3": None, "C6": None}
    assert report.notes == [
        "1 campaign(s) have no stored Reporting API figures; run `klaviyo-etl sync reports` to fetch them",
        "1 campaign(s) sent before 2026-05-01, where Klaviyo's stored figures begin, have none"
        " (the Reporting API reports on the 365 days before the day of the fetch)",
        "1 campaign(s) sent since 2026-05-10, where Klaviyo's stored figures end, have none yet"
        " (a `klaviyo-etl sync reports` on a later day fetches them)",
    ]


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        ("Sent", True),
        ("Variations Sent", True),
        ("Sending", True),
        ("Sending Segments", True),
        ("Draft", False),
        ("Scheduled", False),
        ("Queued without Recipients", False),
        ("Cancelled", False),
        ("Cancelled: No Recipients", False),
        ("Cancelled: Smart Sending", False),
        ("Preparing to send", False),
        ("Adding Recipients", False),
        ("Unknown", False),
    ],
)
def test_only_sent_statuses_count(tiny_db, status, counted):
    tiny_db.execute("UPDATE campaigns SET status = ? WHERE id = 'C1'", [status])
    report = messages.campaign_report(tiny_db, MAY)
    assert ("C1" in by_id(report)) is counted
    assert report.meta["totals"]["campaigns"] == (2 if counted else 1)
    assert report.meta["totals"]["recipients"] == (8 if counted else 3)


def test_archived_campaigns_keep_their_history(tiny_db):
    tiny_db.execute("UPDATE campaigns SET archived = 1 WHERE id = 'C1'")
    tiny_db.execute("UPDATE flows SET archived = 1")
    assert by_id(messages.campaign_report(tiny_db, MAY))["C1"]["recipients"] == 5
    flows = messages.flow_report(tiny_db, MAY, by="message").rows
    assert {r["message_id"] for r in flows} == {"FM1", "FM2"}


def test_sms_has_no_open_rate_and_totals_take_opens_from_email_only(tiny_db):
    report = messages.campaign_report(tiny_db, MAY)
    c2 = by_id(report)["C2"]
    assert c2["open_rate"] is None and c2["click_to_open_rate"] is None
    assert c2["click_rate"] == 0.5  # clicks still apply
    totals = report.meta["totals"]
    # Email only: 2 unique opens of 4 delivered, 1 click of 2 opens (SMS's 2 deliveries and
    # its click are not in the denominators).
    assert totals["open_rate"] == 0.5 and totals["click_to_open_rate"] == 0.5
    sms_only = messages.campaign_report(tiny_db, MAY, channel="sms").meta["totals"]
    assert sms_only["open_rate"] is None and sms_only["click_to_open_rate"] is None
    flows = {r["channel"]: r for r in messages.flow_report(tiny_db, MAY).rows}
    assert flows["sms"]["open_rate"] is None and flows["email"]["open_rate"] == 0.5


def test_sms_open_rate_is_n_a_in_the_table_null_in_json_and_n_a_in_html(tiny_db):
    report = messages.campaign_report(tiny_db, MAY, channel="sms")
    console = Console(width=400, record=True)
    print_report(report, console)
    line = next(t for t in console.export_text().splitlines() if "SMS flash sale" in t)
    assert line.count("n/a") == 2  # open rate and CTOR, not 0.0%
    row = json.loads(to_json(report))["rows"][0]
    assert row["open_rate"] is None and row["click_to_open_rate"] is None
    page = report_page(report)
    assert page.count('<td class="num">n/a</td>') == 2


def test_sms_failed_is_apart_from_bounced(tiny_db):
    c2 = by_id(messages.campaign_report(tiny_db, MAY))["C2"]
    assert (c2["recipients"], c2["delivered"], c2["failed"], c2["bounced"]) == (3, 2, 1, 0)
    assert c2["failed_rate"] == pytest.approx(1 / 3, abs=1e-6) and c2["bounce_rate"] == 0.0


def add_second_placed_order(db, events: int = 1, created: str | None = None):
    """A "Placed Order" metric from another integration, with `events` orders credited to M1."""
    db["metrics"].insert(
        {"id": "mPO2", "name": kc.PLACED_ORDER, "integration_name": "API", "created": created},
        pk="id",
        alter=True,
    )
    for n in range(events):
        db["events"].insert(
            {
                "id": f"po2-{n}",
                "metric_id": "mPO2",
                "profile_id": "p3",
                "datetime": at("05-06"),
                "value": 999.0,
                "attributed_message_id": "M1",
            },
            pk="id",
            alter=True,
        )


def test_only_the_conversion_metric_counts_as_conversions(tiny_db):
    add_second_placed_order(tiny_db)  # 1 event against Shopify's 7: Shopify is the default
    report = messages.campaign_report(tiny_db, MAY)
    c1 = by_id(report)["C1"]
    assert (c1["conversions"], c1["conversion_value"]) == (2, 150.0)
    assert report.meta["conversion_metric"]["id"] == "mPO"
    assert "most events" in report.meta["conversion_metric"]["reason"]
    configured = messages.campaign_report(tiny_db, MAY, conversion="mPO2")
    c1 = by_id(configured)["C1"]
    assert (c1["conversions"], c1["conversion_value"]) == (1, 999.0)
    assert configured.meta["conversion_metric"]["id"] == "mPO2"
    assert "Conversions: Placed Order (API, id mPO2)" in configured.conversion_caption


def test_flows_seen_only_through_their_events_come_with_a_note_saying_how_to_name_them(tiny_db):
    # After `sync events` alone, the flows' figures were there but every name read "–", with
    # no word why: the flows and their messages were simply not synced yet.
    tiny_db.execute("DELETE FROM flows")
    tiny_db.execute("DELETE FROM flow_messages")
    tiny_db.conn.commit()
    by_flow = messages.flow_report(tiny_db, MAY)
    assert by_flow.rows and all(row["name"] is None for row in by_flow.rows)
    assert any("sync flows" in note and "–" in note for note in by_flow.notes), by_flow.notes
    by_message = messages.flow_report(tiny_db, MAY, by="message")
    assert any("sync flows flow_messages" in note for note in by_message.notes), by_message.notes
