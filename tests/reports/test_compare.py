"""`--source klaviyo`: the stored Reporting API figures, in the same row shape as ours."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.reports import messages
from klaviyo_etl.reports.periods import resolve_period

MAY = resolve_period(from_="2026-05-01", to="2026-05-31")


def stats(**values):
    return json.dumps(values)


def store(db):
    db["report_values"].insert_all(
        [
            # An older fetch of C1 that the newer one supersedes.
            {
                "id": "r0",
                "report": "campaign-values",
                "entity_id": "C1",
                "message_id": "M1",
                "channel": "email",
                "statistics": stats(recipients=1),
                "fetched_at": "2026-05-30T00:00:00",
            },
            {
                "id": "r1",
                "report": "campaign-values",
                "entity_id": "C1",
                "message_id": "M1",
                "channel": "email",
                "fetched_at": "2026-05-31T00:00:00",
                "statistics": stats(
                    recipients=5,
                    delivered=4,
                    opens=3,
                    opens_unique=2,
                    open_rate=0.5,
                    clicks=1,
                    clicks_unique=1,
                    click_rate=0.25,
                    click_to_open_rate=0.5,
                    conversions=2,
                    conversion_uniques=2,
                    conversion_value=150.0,
                    conversion_rate=0.5,
                    revenue_per_recipient=37.5,
                    unsubscribes=1,
                    unsubscribe_uniques=1,
                    bounced=1,
                    spam_complaints=1,
                ),
            },
            {
                "id": "f1",
                "report": "flow-values",
                "entity_id": "F1",
                "message_id": "FM1",
                "channel": "email",
                "fetched_at": "2026-05-31T00:00:00",
                "statistics": stats(recipients=2, delivered=2, opens_unique=1, open_rate=0.5),
            },
            {
                "id": "f2",
                "report": "flow-values",
                "entity_id": "F1",
                "message_id": "FM2",
                "channel": "sms",
                "fetched_at": "2026-05-31T00:00:00",
                "statistics": stats(recipients=1, delivered=1, clicks_unique=1, click_rate=1.0),
            },
        ],
        pk="id",
    )


def test_campaigns_from_klaviyo_agree_with_ours(tiny_db):
    store(tiny_db)
    ours = {r["campaign_id"]: r for r in messages.campaign_report(tiny_db, MAY).rows}
    theirs = messages.campaign_report(tiny_db, MAY, source="klaviyo")
    klaviyo = {r["campaign_id"]: r for r in theirs.rows}
    for figure in (
        "recipients",
        "delivered",
        "opens_unique",
        "open_rate",
        "clicks_unique",
        "click_rate",
        "conversions",
        "conversion_value",
        "revenue_per_recipient",
        "bounced",
        "spam_complaints",
    ):
        assert klaviyo["C1"][figure] == ours["C1"][figure], figure
    assert klaviyo["C2"]["recipients"] is None  # nothing stored for C2
    assert any("no stored Reporting API figures" in n for n in theirs.notes)


def test_flows_from_klaviyo(tiny_db):
    store(tiny_db)
    rows = messages.flow_report(tiny_db, MAY, source="klaviyo").rows
    by_channel = {r["channel"]: r for r in rows}
    assert by_channel["email"]["recipients"] == 2 and by_channel["email"]["open_rate"] == 0.5
    assert by_channel["sms"]["click_rate"] == 1.0


def test_cli_source_klaviyo(tiny_db_path):
    from klaviyo_etl.db import open_database

    db = open_database(tiny_db_path)
    store(db)
    db.close()
    result = CliRunner().invoke(
        app,
        [
            "--db",
            str(tiny_db_path),
            "report",
            "campaigns",
            "--from",
            "2026-05-01",
            "--to",
            "2026-05-31",
            "--source",
            "klaviyo",
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"] == "klaviyo"
    assert {r["campaign_id"]: r["recipients"] for r in data["rows"]} == {"C1": 5, "C2": None}


def test_timeframes_resolve_like_klaviyo():
    from klaviyo_etl.reports.compare import timeframe_period

    fetched = "2026-05-31T13:00:00+00:00"
    year = timeframe_period("last_365_days", fetched, fetched)
    assert (year.lo, year.hi) == ("2025-05-31", "2026-05-31")  # today is not in it
    month = timeframe_period("last_month", None, fetched)
    assert (month.lo, month.hi) == ("2026-04-01", "2026-05-01")
    custom = timeframe_period("2026-05-01T00:00:00+00:00", "2026-05-11T00:00:00+00:00", fetched)
    assert (custom.lo, custom.hi) == ("2026-05-01", "2026-05-11")
    assert timeframe_period("next_decade", None, fetched) is None


def test_compare_lists_what_differs(tiny_db):
    from klaviyo_etl.reports.compare import compare_report

    store(tiny_db)
    tiny_db["report_values"].insert(
        {
            "id": "r2",
            "report": "campaign-values",
            "entity_id": "C2",
            "message_id": "M2",
            "channel": "sms",
            "timeframe_start": "last_365_days",
            "timeframe_end": "2026-05-31T00:00:00",
            "fetched_at": "2026-05-31T00:00:00",
            "statistics": stats(recipients=4, delivered=2, clicks_unique=1),
        }
    )
    # The fixture's C1 row has no timeframe: give it Klaviyo's default.
    tiny_db.execute("UPDATE report_values SET timeframe_start = 'last_365_days'")
    report = compare_report(tiny_db, "campaign-values", MAY)
    rows = {r["entity_id"]: r for r in report.rows}
    assert rows["C1"]["agree"] == "yes" and rows["C1"]["differences"] == {}
    assert rows["C2"]["differences"] == {"recipients": {"events": 3, "klaviyo": 4}}
    assert rows["C2"]["agree"] == "no: recipients"
    assert {k: report.meta[k] for k in ("source", "compared", "agree")} == {
        "source": "compare",
        "compared": 2,
        "agree": 1,
    }
    assert report.meta["conversion_metric"]["id"] == "mPO"
    flows = compare_report(tiny_db, "flow-values", MAY)
    assert all(r["agree"] == "yes" for r in flows.rows) and len(flows.rows) == 2
