"""What the money is in: each report that shows money names the currency of its orders
(`$currency_code`, LIVE_BEHAVIOUR.md §7), read from `rollup_currency_days`; orders in several
currencies are said to be, never shown as one currency; no figure changes."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console

from klaviyo_etl.db.repositories import Repository
from klaviyo_etl.db.rollups import ensure_rollups, refresh_rollups
from klaviyo_etl.models import Resource
from klaviyo_etl.reports import customers, messages, overview, timeseries
from klaviyo_etl.reports.accounts import combine
from klaviyo_etl.reports.html import dashboard_html, report_page
from klaviyo_etl.reports.periods import resolve_period
from klaviyo_etl.reports.render import print_report, render, to_csv

MAY = resolve_period(from_="2026-05-01", to="2026-05-31")


def priced(db, default: str | None = "USD", **by_profile: str | None) -> None:
    """Give the tiny account's orders a `$currency_code`: `default`, or by_profile's (p6="EUR")."""
    for event_id, profile in db.execute(
        "SELECT id, profile_id FROM events WHERE metric_id = 'mPO'"
    ).fetchall():
        code = by_profile.get(profile, default)
        props = {"$value": 1} if code is None else {"$value": 1, "$currency_code": code}
        db.execute(
            "UPDATE events SET attributes = ? WHERE id = ?",
            [json.dumps({"event_properties": props}), event_id],
        )
    db.conn.commit()
    refresh_rollups(db, None)


def text(report, width: int = 250) -> str:
    console = Console(record=True, width=width, force_terminal=True, file=io.StringIO())
    print_report(report, console)
    return console.export_text()


def test_the_money_columns_json_and_csv_name_the_currency_of_the_orders(tiny_db):
    # Revenue printed as "150.00" with no currency anywhere: table, JSON, CSV or page.
    priced(tiny_db)
    report = messages.campaign_report(tiny_db, MAY)
    shown = text(report)
    assert "Revenue (USD)" in shown and "Rev/recip. (USD)" in shown
    data = json.loads(_rendered(report, "json"))
    assert data["currency"] == "USD"
    assert data["currencies"] == [{"code": "USD", "orders": 5, "value": 240.0}]
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert {r["currency"] for r in rows} == {"USD"}
    c1 = next(r for r in rows if r["campaign_id"] == "C1")
    assert float(c1["conversion_value"]) == 150.0  # the figures are what they were
    assert '<th class="num">Revenue (USD)</th>' in report_page(report)
    assert not [n for n in report.notes if "currenc" in n]  # one currency: nothing to say


def test_orders_in_several_currencies_are_named_each_with_its_total_never_as_one(tiny_db):
    priced(tiny_db, p6="eur")  # p6's two orders (20.00 and 40.00) in euros, written lower case
    report = messages.campaign_report(tiny_db, MAY)
    shown = text(report)
    assert "Revenue (USD+EUR)" in shown
    note = next(n for n in report.notes if "currencies" in n)
    assert note.startswith("Orders in 2 currencies: USD 180.00 in 3 orders, EUR 60.00 in 2 orders.")
    assert "unconverted" in note and note in shown
    data = json.loads(_rendered(report, "json"))
    assert data["currency"] is None
    assert [c["code"] for c in data["currencies"]] == ["USD", "EUR"]
    assert {r["currency"] for r in csv.DictReader(io.StringIO(to_csv(report)))} == {"USD+EUR"}
    c2 = next(r for r in report.rows if r["campaign_id"] == "C2")
    assert c2["conversion_value"] == 20.0  # still added as it is: the note says so
    flows = messages.flow_report(tiny_db, MAY)
    assert "Revenue (USD+EUR)" in text(flows) and flows.meta["currency"] is None


def test_orders_that_name_no_currency_leave_the_headers_as_they_were_and_say_so_beside_others(tiny_db):
    plain = messages.campaign_report(tiny_db, MAY)  # the tiny account's orders name none
    assert "Revenue (" not in text(plain) and plain.meta["currency"] is None
    assert plain.meta["currencies"] == [{"code": None, "orders": 5, "value": 240.0}]
    assert "currency" not in to_csv(plain).splitlines()[0].split(",")
    priced(tiny_db, p1=None)  # p1's orders name no currency, the others USD
    report = messages.campaign_report(tiny_db, MAY)
    assert report.meta["currency"] == "USD" and "Revenue (USD)" in text(report)
    assert any("2 orders name no currency" in n for n in report.notes)


def test_the_overview_cards_and_the_dashboard_name_the_currency(tiny_db):
    priced(tiny_db)
    cards = overview.overview_report(tiny_db, MAY)
    shown = text(cards, 120)
    assert "Revenue (USD)" in shown and "Orders (USD)" not in shown
    assert [r["value"] for r in cards.rows if r["kpi"] == "revenue"] == [240.0]
    rows = {r["kpi"]: r for r in csv.DictReader(io.StringIO(to_csv(cards)))}
    assert (rows["revenue"]["currency"], rows["orders"]["currency"]) == ("USD", "")
    page = dashboard_html(tiny_db, MAY)
    assert '<div class="label">Revenue (USD)</div>' in page
    assert "Revenue (Placed Order value, USD)" in page
    assert '<th class="num">Revenue (USD)</th>' in page


def test_rfm_and_a_metric_measured_in_value_name_the_currency(tiny_db):
    priced(tiny_db)
    rfm = customers.rfm_report(tiny_db, MAY)
    assert rfm.meta["currency"] == "USD" and "Revenue (USD)" in text(rfm)
    value = timeseries.metric_report(tiny_db, "Placed Order", MAY, measure="value")
    assert value.title == "Placed Order by day (value, USD)" and value.meta["currency"] == "USD"
    counted = timeseries.metric_report(tiny_db, "Placed Order", MAY)
    assert "USD" not in counted.title and "currency" not in counted.meta  # a count is no money


def test_a_new_order_in_another_currency_is_counted_by_the_next_refresh(tiny_db):
    priced(tiny_db)
    tiny_db["events"].insert(
        {
            "id": "late",
            "metric_id": "mPO",
            "profile_id": "p2",
            "datetime": "2026-05-30T10:00:00+00:00",
            "value": 5.0,
            "attributes": json.dumps({"event_properties": {"$value": 5.0, "$currency_code": "GBP"}}),
        }
    )
    tiny_db.conn.commit()
    assert ensure_rollups(tiny_db).mode == "incremental"
    report = messages.campaign_report(tiny_db, MAY)
    assert report.meta["currencies"][-1] == {"code": "GBP", "orders": 1, "value": 5.0}


def test_accounts_in_different_currencies_say_their_totals_add_them(tmp_path, tiny_db):
    from tests.helpers.tiny_account import build_tiny_db

    priced(tiny_db)
    other = build_tiny_db(tmp_path / "other.db")
    try:
        priced(other, "EUR")
        merged = combine(
            {"us": messages.campaign_report(tiny_db, MAY), "eu": messages.campaign_report(other, MAY)}
        )
    finally:
        other.close()
    assert merged.meta["currency"] is None
    assert merged.meta["currencies"] == [
        {"code": "EUR", "orders": 5, "value": 240.0},
        {"code": "USD", "orders": 5, "value": 240.0},
    ]
    assert "Revenue (EUR+USD)" in text(merged)
    assert any(n.startswith("All accounts: Orders in 2 currencies") for n in merged.notes)


def _rendered(report, fmt: str) -> str:
    out = io.StringIO()
    render(report, fmt, out)
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_currency_headers_still_fit_the_terminal(tiny_db, width):
    priced(tiny_db, p6="EUR")
    shown = text(messages.campaign_report(tiny_db, MAY), width)
    assert (
        max(len(line) for line in shown.splitlines() if not line.startswith(("Orders in", "Conversions")))
        <= width
    )
    assert "May newsletter" in shown


def synced(db, currency: str, timezone: str = "UTC") -> None:
    """The account as the `accounts` stream stores it, with its preferred currency."""
    with db.conn:
        Repository(db).write_resources(
            [
                Resource(
                    type="account",
                    id="A1",
                    attributes={
                        "timezone": timezone,
                        "preferred_currency": currency,
                        "contact_information": {"organization_name": "Tiny Shop"},
                        "test_account": False,
                    },
                )
            ]
        )


def test_orders_that_name_no_currency_are_in_the_synced_accounts_preferred_currency(tiny_db):
    # Before: "Revenue" with no currency, `currency` null and a note that Klaviyo counts them
    # in a preferred currency "which is not synced", while the account was synced.
    synced(tiny_db, "eur")  # the tiny account's orders name none
    report = messages.campaign_report(tiny_db, MAY)
    shown = text(report)
    assert "Revenue (EUR)" in shown and report.meta["currency"] == "EUR"
    assert report.meta["currencies"] == [{"code": "EUR", "orders": 5, "value": 240.0, "unnamed_orders": 5}]
    note = next(n for n in report.notes if "currenc" in n)
    assert note == (
        "Money in EUR; 5 orders name no currency: counted in EUR, the account's preferred"
        " currency, as Klaviyo counts them."
    )
    assert "not synced" not in shown and note in shown
    assert {r["currency"] for r in csv.DictReader(io.StringIO(to_csv(report)))} == {"EUR"}
    c1 = next(r for r in report.rows if r["campaign_id"] == "C1")
    assert c1["conversion_value"] == 150.0  # the figures are what they were


def test_orders_naming_none_join_the_preferred_currencys_orders_beside_others(tiny_db):
    priced(tiny_db, p1=None, p6="EUR")  # p1's two orders name none, p6's are in euros
    synced(tiny_db, "USD")
    report = messages.campaign_report(tiny_db, MAY)
    assert "Revenue (USD+EUR)" in text(report)
    usd, eur = report.meta["currencies"]
    assert (usd["code"], usd["orders"], usd["unnamed_orders"]) == ("USD", 3, 2)
    assert eur == {"code": "EUR", "orders": 2, "value": 60.0}
    note = next(n for n in report.notes if "currencies" in n)
    assert note.startswith("Orders in 2 currencies: USD 180.00 in 3 orders, EUR 60.00 in 2 orders.")
    assert note.endswith(
        " 2 orders name no currency: counted in USD, the account's preferred currency, as Klaviyo"
        " counts them."
    )


def test_without_a_synced_account_orders_naming_none_stay_unnamed(tiny_db):
    priced(tiny_db, p1=None)
    report = messages.campaign_report(tiny_db, MAY)
    unnamed = next(c for c in report.meta["currencies"] if c["code"] is None)
    assert unnamed["orders"] == 2 and "unnamed_orders" not in report.meta["currencies"][0]
    assert any("which is not synced" in n for n in report.notes)
