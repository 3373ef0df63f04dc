"""Our figures from events agree with the sandbox's Reporting API (our model of Klaviyo's).

The sandbox answers the Reporting API from its own generated events; the sync stores those
answers and the events; `--source compare` recomputes ours over Klaviyo's timeframe. The
sandbox shares our reading of Klaviyo's conventions, so this proves our arithmetic, not our
reading: `klaviyo-etl check` makes the same comparison against a real account.
"""

from __future__ import annotations

import datetime as dt

from klaviyo_etl.db import open_database
from klaviyo_etl.reports import messages
from klaviyo_etl.reports.compare import compare_report
from klaviyo_etl.reports.periods import resolve_period
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import SyncOptions, run_sync


def test_campaign_and_flow_figures_agree_with_the_sandboxs_reporting_api(sandbox_factory, tmp_path):
    db_path = tmp_path / "k.db"
    with sandbox_factory(
        "small",
        seed=5,
        profiles=300,
        events=6000,
        campaigns=10,
        now=dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0),
    ) as sb:
        settings = Settings(db_path=db_path, api_key=sb.config.api_key, base_url=sb.server.url)
        result = run_sync(settings, SyncOptions())
    assert result.ok, [(s.stream, s.error) for s in result.streams]

    db = open_database(db_path)
    period = resolve_period(last="all")
    for report in ("campaign-values", "flow-values"):
        compared = compare_report(db, report, period)
        assert compared.rows, report
        disagreeing = [(r["name"], r["agree"]) for r in compared.rows if r["agree"] != "yes"]
        assert not disagreeing, (report, disagreeing)
    channels = {r["channel"] for r in compare_report(db, "campaign-values", period).rows}
    assert {"email", "sms"} <= channels

    # and `report campaigns --source klaviyo` shows those same stored figures
    theirs = messages.campaign_report(db, period, source="klaviyo")
    assert {r["campaign_id"] for r in theirs.rows} >= {
        r["entity_id"] for r in compare_report(db, "campaign-values", period).rows
    }
