"""Several accounts' reports as one (`reports.accounts.combine`): an account column, totals
recomputed from the counts, the sort and the limit over the merged rows."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest
from rich.console import Console

from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports.accounts import combine
from klaviyo_etl.reports.messages import CAMPAIGN_COLUMNS, COUNTS, add_rates
from klaviyo_etl.reports.model import Report
from klaviyo_etl.reports.periods import Period
from klaviyo_etl.reports.render import print_report, to_csv, to_json

PERIOD = Period(dt.date(2026, 5, 1), dt.date(2026, 6, 1), "May 2026")


def _campaign(name: str, channel: str, sent: str, **counts: float) -> dict:
    row = {"id": name.lower(), "name": name, "channel": channel, "send_time": sent}
    row.update({key: counts.get(key, 0) for key in COUNTS})
    return add_rates(row, channel)


APRIL = Period(dt.date(2026, 4, 1), dt.date(2026, 5, 1), "April 2026")


def _report(*rows: dict, before: list[dict] | None = None) -> Report:
    report = Report("campaigns", "Campaigns", CAMPAIGN_COLUMNS, list(rows), PERIOD, meta={"source": "events"})
    if before is not None:
        report.compare, report.previous_rows = APRIL, before
    return report


@pytest.fixture
def reports():
    big = _campaign(
        "Big", "email", "2026-05-03T10:00:00+00:00", recipients=100, delivered=100, opens_unique=50
    )
    sms = _campaign("Text", "sms", "2026-05-20T10:00:00+00:00", recipients=40, delivered=40, clicks_unique=4)
    small = _campaign(
        "Small", "email", "2026-05-10T10:00:00+00:00", recipients=10, delivered=10, opens_unique=1
    )
    small["conversion_value"] = 12.5
    return {"acme": _report(big, sms), "globex": _report(small)}


def test_every_row_carries_its_account_and_json_keeps_each_accounts_meta(reports):
    merged = combine(reports)
    assert [(r["account"], r["name"]) for r in merged.rows] == [
        ("acme", "Text"),
        ("globex", "Small"),
        ("acme", "Big"),
    ]  # newest first across accounts, as one account's report sorts
    assert merged.columns[0].key == "account"
    body = json.loads(to_json(merged))
    assert all(row["account"] in ("acme", "globex") for row in body["rows"])
    assert set(body["accounts"]) == {"acme", "globex"}
    assert "Total" not in to_csv(merged)  # the total row is the table's; JSON has `totals`


def test_totals_are_recomputed_from_the_counts_not_averaged(reports):
    totals = combine(reports).meta["totals"]
    assert totals["campaigns"] == 3
    assert (totals["recipients"], totals["delivered"], totals["opens_unique"]) == (150, 150, 51)
    # opens over the deliveries of the channels that have opens (not SMS): 51 / 110,
    # where the mean of the accounts' rates would say (0.5 + 0.1) / 2 = 0.3
    assert totals["open_rate"] == pytest.approx(51 / 110, abs=1e-6)
    assert totals["click_rate"] == pytest.approx(4 / 150, abs=1e-6)
    assert totals["conversion_value"] == 12.5


def test_the_table_ends_with_a_total_row_over_every_account(reports):
    console = Console(width=250, record=True)
    print_report(combine(reports), console)
    text = console.export_text()
    assert "Campaigns (2 accounts)" in text
    total = next(line for line in text.splitlines() if "Total" in line)
    assert "2 accounts" in total and "150" in total and "46.4%" in total


def test_sort_and_limit_apply_to_the_merged_rows(reports):
    merged = combine(reports, sort="recipients", limit=2)
    assert [r["name"] for r in merged.rows] == ["Big", "Text"]
    assert merged.meta["totals"]["campaigns"] == 3  # totals count every row, before the limit


def test_the_overview_cards_take_one_account():
    cards = Report("overview", "Overview", [], [], PERIOD)
    with pytest.raises(UsageError, match="give one --account"):
        combine({"a": cards, "b": cards})


def test_the_merged_report_names_each_account_s_conversion_metric_not_none(reports):
    # meta.conversion_metric of the merged report is null ("see meta.accounts"): that is no
    # sign that no "Placed Order" metric is synced.
    reports["acme"].meta["conversion_metric"] = {
        "id": "SHOP",
        "name": "Placed Order",
        "integration": "Shopify",
        "reason": "the only 'Placed Order'",
    }
    reports["globex"].meta["conversion_metric"] = None
    merged = combine(reports)
    assert merged.conversion_caption is None
    assert "acme: Conversions: Placed Order (Shopify, id SHOP)" in merged.notes
    assert any(n.startswith("globex: Conversions: no 'Placed Order' metric") for n in merged.notes)


def test_compared_totals_are_recomputed_from_every_account_s_rows_of_the_compare_period(reports):
    # Before: several accounts with --compare had no previous totals and no change at all.
    april = {
        "acme": [
            _campaign(
                "Old", "email", "2026-04-03T10:00:00+00:00", recipients=50, delivered=50, opens_unique=5
            )
        ],
        "globex": [
            _campaign(
                "Older", "email", "2026-04-09T10:00:00+00:00", recipients=10, delivered=10, opens_unique=7
            )
        ],
    }
    compared = {name: _report(*r.rows, before=april[name]) for name, r in reports.items()}
    merged = combine(compared)
    previous = merged.meta["previous_totals"]
    assert (previous["campaigns"], previous["recipients"], previous["opens_unique"]) == (2, 60, 12)
    assert previous["open_rate"] == pytest.approx(12 / 60, abs=1e-6)  # not (0.1 + 0.7) / 2
    assert merged.meta["change_pct"]["recipients"] == 150.0  # 150 vs 60
    assert "change_pct" not in combine(reports).meta  # without --compare: none


def test_accounts_in_different_timezones_each_say_whose_days_they_count(reports):
    reports["acme"].period = replace(PERIOD, zone="America/New_York")
    merged = combine(reports)
    body = json.loads(to_json(merged))
    assert body["timezone"] is None
    assert body["accounts"]["acme"]["timezone"] == "America/New_York"
    assert body["accounts"]["globex"]["timezone"] == "UTC"
    assert "acme: Days in America/New_York, the account's timezone (as Klaviyo counts them)" in merged.notes
    assert "All accounts: times are shown in UTC (the accounts' timezones differ)" in merged.notes
    console = Console(record=True, width=120)
    print_report(merged, console)
    assert "2026-05-03 10:00" in console.export_text()  # as stored: no one zone to show it in


def test_accounts_in_one_timezone_show_it_once(reports):
    for report in reports.values():
        report.period = replace(PERIOD, zone="Asia/Kolkata")
    merged = combine(reports)
    assert json.loads(to_json(merged))["timezone"] == "Asia/Kolkata"
    assert not any("Days in" in note for note in merged.notes)
    console = Console(record=True, width=120)
    print_report(merged, console)
    text = console.export_text()
    assert "Days in Asia/Kolkata" in text and "2026-05-03 15:30" in text  # Big, on India's clock
