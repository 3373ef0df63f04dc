"""Report tables fit the terminal: Rich's recording console at 80, 100 and 120 columns.

Every row's identifying cell (campaign, flow, form, segment, list, metric bucket...) shows
whole, or past its minimum width cut with an ellipsis, and every KEY figure of the row
shows whole on the row's line; the columns that did not fit are named under the table.
CSV cells a spreadsheet would run as formulas are neutralised.
"""

from __future__ import annotations

import csv
import datetime
import html
import io
import zoneinfo

import pytest
from rich.console import Console

from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports import audience, customers, messages, overview, timeseries
from klaviyo_etl.reports.compare import compare_report
from klaviyo_etl.reports.formatting import cell
from klaviyo_etl.reports.model import IDENTITY, KEY, Column, Report
from klaviyo_etl.reports.periods import resolve_period
from klaviyo_etl.reports.render import fit_columns, print_report, render, to_csv
from tests.reports.test_compare import store

MAY = resolve_period(from_="2026-05-01", to="2026-05-31")
APRIL = resolve_period(from_="2026-04-01", to="2026-04-30")
WIDTHS = (80, 100, 120)
IDENTITY_MIN = 20

# Names as long as real ones, so the narrow widths have something to shorten.
LONG_NAMES = {
    "campaigns": {"C1": "Black Friday Early Access Email #19", "C2": "SMS flash sale"},
    "flows": {"F1": "Welcome Series for New Subscribers"},
    "forms": {"FO1": "Newsletter popup on the home page"},
    "segments": {"S1": "Engaged in the last 90 days"},
    "lists": {"L1": "Newsletter subscribers (double opt-in)"},
}

BUILDERS = {
    "campaigns": lambda db: messages.campaign_report(db, MAY),
    "campaigns --compare": lambda db: messages.campaign_report(db, MAY, APRIL),
    "campaigns --source klaviyo": lambda db: messages.campaign_report(db, MAY, source="klaviyo"),
    "campaigns --source compare": lambda db: compare_report(db, "campaign-values", MAY),
    "flows": lambda db: messages.flow_report(db, MAY),
    "flows --by message": lambda db: messages.flow_report(db, MAY, by="message"),
    "flows --compare": lambda db: messages.flow_report(db, MAY, compare=APRIL),
    "flows --source klaviyo": lambda db: messages.flow_report(db, MAY, source="klaviyo"),
    "flows --source compare": lambda db: compare_report(db, "flow-values", MAY),
    "forms": lambda db: audience.form_report(db, MAY, APRIL),
    "segments": lambda db: audience.segment_report(db, MAY, APRIL),
    "lists": lambda db: audience.list_report(db, MAY),
    "metric": lambda db: timeseries.metric_report(db, "Placed Order", MAY, forecast="7d"),
    "rfm": lambda db: customers.rfm_report(db, MAY, APRIL),
    "rfm --by profile": lambda db: customers.rfm_report(db, MAY, by="profile"),
    "cohorts": lambda db: customers.cohort_report(db, resolve_period(from_="2026-04-01", to="2026-06-30")),
}


@pytest.fixture
def long_named_db(tiny_db):
    for table, names in LONG_NAMES.items():
        for key, name in names.items():
            tiny_db.execute(f"UPDATE [{table}] SET name = ? WHERE id = ?", [name, key])
    store(tiny_db)
    tiny_db.conn.commit()
    return tiny_db


def recorded(report: Report, width: int, **options) -> str:
    console = Console(record=True, width=width, force_terminal=True, file=io.StringIO())
    print_report(report, console, **options)
    return console.export_text()


def shortened_whole(line: str, text: str, column: Column) -> bool:
    """`line` holds `text` whole, or its start and its end around an ellipsis, together no
    shorter than the column's minimum (IDENTITY_MIN unless the column says otherwise)."""
    shortest = (column.min_width or IDENTITY_MIN) - 1
    return text in line or any(
        text[:head] + "…" + text[len(text) - (kept - head) :] in line
        for kept in range(shortest, len(text))
        for head in range(1, kept + 1)
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_row_shows_its_name_and_key_figures_whole(long_named_db, name, width):
    report = BUILDERS[name](long_named_db)
    assert report.rows, name
    text = recorded(report, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    identity = [c for c in report.columns if c.priority == IDENTITY]
    key_figures = [c for c in report.columns if c.priority == KEY and c.numeric]
    assert identity and key_figures, name
    footer = text[text.index(" hidden: ") : text.index("(--wide")] if " hidden: " in text else ""
    hidden = {c.key for c in key_figures if c.key in footer.replace(",", " ").split()}
    if width >= 120:
        assert not hidden, (name, width, text)
    for row in report.rows:
        figures = [cell(row, c) for c in key_figures if c.key not in hidden]
        # The row's line: it starts with the first identifying cell (cut, its first three
        # fifths before the "…") and holds every figure.
        start = cell(row, identity[0])[: ((identity[0].min_width or IDENTITY_MIN) - 1) * 3 // 5]
        line = next(
            (
                ln
                for ln in lines
                if start in ln
                and all(f in ln for f in figures)
                and all(shortened_whole(ln, cell(row, c), c) for c in identity)  # rows alike in figures
            ),
            None,
        )
        assert line is not None, (name, width, start, figures, text)
        for column in identity:
            assert shortened_whole(line, cell(row, column), column), (name, width, line)


@pytest.mark.parametrize("width", WIDTHS)
def test_campaigns_keep_name_sent_recipients_rates_conversions_and_revenue(long_named_db, width):
    report = messages.campaign_report(long_named_db, MAY)
    text = recorded(report, width)
    header = text[: text.index("───")]
    for label in ("Campaign", "Sent", "Revenue", "Open", "Click"):
        assert label in header
    assert "Recipients" in header or "Recip." in header
    assert "Conversions" in header or "Conv." in header
    assert "Spam" not in text.split("hidden:")[0]
    # The footer names what is hidden and how to see it.
    footer = text[text.index("hidden:") :]
    assert "spam_complaints" in footer and "--wide" in footer and "--columns" in footer


def test_the_campaign_names_stay_whole_from_100_columns(long_named_db):
    report = messages.campaign_report(long_named_db, MAY)
    assert "Black Friday Early Access Email #19" in recorded(report, 100)
    narrow = recorded(report, 80)  # past the minimum: cut with an ellipsis, never below 20
    assert "Black Friday Early Access Email #19" not in narrow
    assert shortened_whole(narrow, "Black Friday Early Access Email #19", report.columns[0])


def test_wide_shows_every_column_whatever_the_width(long_named_db):
    report = messages.campaign_report(long_named_db, MAY)
    text = recorded(report, 80, wide=True)
    for column in report.columns:
        assert column.label in text
    assert "hidden" not in text
    assert "Black Friday Early Access Email #19" in text


def test_columns_picks_the_columns_in_their_order(long_named_db):
    report = messages.campaign_report(long_named_db, MAY)
    text = recorded(report, 80, columns=["name", "spam_complaints", "recipients"])
    header = next(line for line in text.splitlines() if "Recipients" in line)
    assert header.replace("┃", " ").split() == ["Campaign", "Spam", "Recipients"]
    assert "Sent" not in text and "hidden" not in text


def test_an_unknown_column_is_a_usage_error_listing_the_keys(long_named_db):
    report = messages.campaign_report(long_named_db, MAY)
    with pytest.raises(UsageError) as error:
        render(report, "json", io.StringIO(), columns=["name", "revenue"])
    message = str(error.value)
    assert "'revenue'" in message and "conversion_value" in message and "\n" not in message


def test_piped_output_keeps_the_full_width_and_every_column(long_named_db):
    report = messages.campaign_report(long_named_db, MAY)
    out = io.StringIO()
    render(report, "table", out)
    text = out.getvalue()
    assert all(column.label in text for column in report.columns)
    assert "┃ Campaign" in text and "hidden" not in text
    assert max(len(line) for line in text.splitlines()) > 120


def test_fit_hides_by_priority_rightmost_first_and_never_cuts_a_number():
    columns = [
        Column("name", "Name", priority=IDENTITY),
        Column("a", "Alpha", "int", KEY),
        Column("b", "Beta", "int"),
        Column("c", "Gamma", "int"),
    ]
    cells = {"name": ["x" * 30], "a": ["1,234,567"], "b": ["22"], "c": ["333"]}
    layout = fit_columns(columns, cells, 48)
    assert [c.key for c in layout.hidden] == ["c"]
    assert layout.widths == {"name": 30, "a": 9, "b": 4} and layout.width() <= 48
    narrow = fit_columns(columns, cells, 31)
    assert [c.key for c in narrow.columns] == ["name", "a"]
    assert narrow.widths == {"name": 20, "a": 9}


def test_a_missing_rate_is_not_applicable_and_a_missing_field_a_dash():
    rate = Column("open_rate", "Open rate", "rate")
    assert cell({"open_rate": None}, rate) == "n/a"
    assert cell({}, rate) == "–"
    assert cell({"recipients": None}, Column("recipients", "Recipients", "int")) == "–"


@pytest.mark.parametrize("width", WIDTHS)
def test_overview_cards_show_every_kpi_whole(long_named_db, width):
    report = overview.overview_report(long_named_db, MAY, APRIL)
    text = recorded(report, width)
    for row in report.rows:
        assert row["label"] in text
        assert cell(row, Column("value", "", "kpi")) in text


def test_a_narrow_table_takes_a_column_s_short_header_and_a_wide_one_its_label():
    columns = [
        Column("name", "Name", priority=IDENTITY),
        Column("recipients", "Recipients", "int", KEY, short="Recip."),
    ]
    cells = {"name": ["n" * 20], "recipients": ["12"]}
    assert fit_columns(columns, cells, 28).labels == {"recipients": "Recip."}
    assert fit_columns(columns, cells, 32).labels == {}


def test_picked_columns_too_wide_for_the_terminal_are_all_shown_never_cut(long_named_db):
    report = messages.campaign_report(long_named_db, MAY)
    keys = ["name", "send_time", "recipients", "delivered", "opens_unique", "conversion_value", "bounced"]
    text = recorded(report, 60, columns=keys)
    assert "hidden" not in text
    for row in report.rows:
        figures = [cell(row, c) for c in report.columns if c.key in keys and c.numeric]
        assert any(all(f in line for f in figures) for line in text.splitlines()), (figures, text)


def test_csv_neutralises_formulas_but_keeps_negative_numbers():
    rows = [
        {"name": '=HYPERLINK("http://x")', "value": -3.5, "count": -2},
        {"name": "+1 555", "value": 0.0, "count": 3},
        {"name": "-cmd|' /C calc'!A0", "value": 1.0, "count": None},
        {"name": "@SUM(A1)", "value": 2.0, "count": 1},
        {"name": "Spring sale", "value": 3.0, "count": 4},
    ]
    report = Report("t", "T", [Column("name", "Name"), Column("value", "Value", "money")], rows)
    read = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert [r["name"] for r in read] == [
        '\'=HYPERLINK("http://x")',
        "'+1 555",
        "'-cmd|' /C calc'!A0",
        "'@SUM(A1)",
        "Spring sale",
    ]
    assert [r["value"] for r in read] == ["-3.5", "0.0", "1.0", "2.0", "3.0"]
    assert [r["count"] for r in read] == ["-2", "3", "", "1", "4"]


@pytest.mark.parametrize("width", WIDTHS)
def test_a_campaign_takes_one_line_its_sent_time_shortened_to_the_date_if_need_be(long_named_db, width):
    report = messages.campaign_report(long_named_db, MAY)
    text = recorded(report, width)
    body = text[text.index("───") :].splitlines()[1:]
    body = body[: next((i for i, line in enumerate(body) if "hidden:" in line), len(body))]
    rows = [line for line in body if line.strip()]
    assert len(rows) == len(report.rows), text  # no cell wrapped onto a second line
    for row, line in zip(report.rows, rows, strict=True):
        sent = cell(row, next(c for c in report.columns if c.key == "send_time"))
        assert sent in line or (width < 120 and sent[:10] in line and sent[11:] not in line), (sent, line)


def test_a_datetime_column_shows_its_date_alone_only_when_the_time_would_wrap():
    columns = [Column("name", "Name", priority=IDENTITY), Column("at", "Sent", "datetime", KEY)]
    cells = {"name": ["A campaign with quite a long name"], "at": ["2026-05-04 09:30"]}
    assert fit_columns(columns, cells, 60).dates == set()
    narrow = fit_columns(columns, cells, 34)
    assert narrow.dates == {"at"} and narrow.widths["at"] == 10


def test_a_datetime_column_of_a_report_without_rows_fits_too():
    columns = [Column("name", "Name", priority=IDENTITY), Column("at", "Sent", "datetime", KEY)]
    assert fit_columns(columns, {"name": [], "at": []}, 10).columns


@pytest.mark.parametrize("width", WIDTHS)
def test_a_table_narrower_than_its_title_keeps_the_title_on_one_line(long_named_db, width):
    # Two cohort months (or --columns picking two columns) make a table of ~50 cells; its
    # title ("Monthly retention cohorts — 2026-04-01 to 2026-06-30") wrapped at the table's
    # width, the period split over two lines.
    report = customers.cohort_report(
        long_named_db, resolve_period(from_="2026-04-01", to="2026-06-30"), months=1
    )
    title = "Monthly retention cohorts — 2026-04-01 to 2026-06-30"
    assert title in recorded(report, width).splitlines()
    picked = messages.campaign_report(long_named_db, MAY, APRIL)
    text = recorded(picked, width, columns=["name", "recipients"])
    assert "Campaigns — 2026-05-01 to 2026-05-31 vs 2026-04-01 to 2026-04-30" in text.splitlines()


def test_without_a_placed_order_metric_the_report_says_why_revenue_is_zero(tiny_db):
    # An account whose orders are under another name: every revenue, order and conversion
    # figure is 0, and the table, cards and page used to show the zeros with no word why.
    tiny_db.execute("UPDATE metrics SET name = 'Order Completed' WHERE name = 'Placed Order'")
    tiny_db.conn.commit()
    for report in (messages.campaign_report(tiny_db, MAY), overview.overview_report(tiny_db, MAY)):
        assert report.meta["conversion_metric"] is None  # JSON: unchanged
        caption = report.conversion_caption
        assert caption and "no 'Placed Order' metric" in caption and "conversion_metric" in caption
        assert caption in recorded(report, 120)
        assert caption in html.unescape(render_html(report))


def render_html(report: Report) -> str:
    out = io.StringIO()
    render(report, "html", out)
    return out.getvalue()


@pytest.mark.parametrize("width", WIDTHS)
def test_names_cut_to_fit_keep_their_ends_so_rows_stay_apart(long_named_db, width):
    # "Browse Abandonment MOBILE_PUSH #2", "#3" and "#4" all read "Browse Abandonmen…" at 80
    # columns: cut at the end, names that differ at the end made rows no one could tell apart.
    names = {
        "C1": "Black Friday Cyber Monday Mega Sale for VIP Members Only (resend to non-openers) #1",
        "C2": "Black Friday Cyber Monday Mega Sale for VIP Members Only (resend to non-openers) #2",
    }
    for key, name in names.items():
        long_named_db.execute("UPDATE campaigns SET name = ? WHERE id = ?", [name, key])
    long_named_db.conn.commit()
    report = messages.campaign_report(long_named_db, MAY)
    text = recorded(report, width)
    lines = [line for line in text.splitlines() if line.startswith("Black Friday")]
    assert len(lines) == 2 and all("…" in line for line in lines), text
    firsts = [line.split("  ")[0] for line in lines]
    assert sorted(first[-2:] for first in firsts) == ["#1", "#2"]
    for line in lines:
        name = names["C1"] if line.split("  ")[0].endswith("#1") else names["C2"]
        assert shortened_whole(line, name, report.columns[0])


def test_a_name_cut_in_the_middle_counts_wide_characters_as_two_cells():
    from rich.cells import cell_len

    from klaviyo_etl.reports.render import shorten_middle

    assert shorten_middle("Short", 20) == "Short"
    cut = shorten_middle("Gift guide 🎁🎁🎁 for the whole family 🎁 #12", 20)
    assert cell_len(cut) <= 20 and cut.startswith("Gift guide") and cut.endswith("#12") and "…" in cut


EMPTY_BUILDERS = {
    "campaigns": lambda db, p: messages.campaign_report(db, p),
    "campaigns --compare": lambda db, p: messages.campaign_report(db, p, APRIL),
    "campaigns --source klaviyo": lambda db, p: messages.campaign_report(db, p, source="klaviyo"),
    "flows": lambda db, p: messages.flow_report(db, p),
    "flows --by message": lambda db, p: messages.flow_report(db, p, by="message"),
    "flows --compare": lambda db, p: messages.flow_report(db, p, compare=APRIL),
    "flows --by message --compare": lambda db, p: messages.flow_report(db, p, by="message", compare=APRIL),
}


@pytest.mark.parametrize("name", sorted(EMPTY_BUILDERS))
def test_a_report_without_rows_still_writes_its_csv_header(tiny_db, tmp_path, name):
    # A quiet week (no campaign sent) or a database without flows wrote a CSV of one empty
    # line: no header, so `pandas.read_csv` raised EmptyDataError and a spreadsheet import
    # lost the column names. Empty, the header is the very one a report with rows writes.
    from klaviyo_etl.db import open_database

    build = EMPTY_BUILDERS[name]
    header = to_csv(build(tiny_db, MAY)).splitlines()[0]
    empty_db = open_database(tmp_path / "empty.db")
    quiet = resolve_period(from_="2020-01-01", to="2020-01-31")
    for report in (build(tiny_db, quiet), build(empty_db, MAY)):
        if report.rows:
            continue  # flows list every flow of the database, each period
        assert to_csv(report) == header + "\n"


def test_an_overview_card_widens_for_a_large_figure_rather_than_wrap_it(tiny_db):
    # Revenue in the billions: "-10.4% (was 7,298,777,840.00)" wrapped inside its 30-cell card,
    # the previous figure alone on a line of its own.
    tiny_db.execute("UPDATE events SET value = value * 123456789 WHERE value IS NOT NULL")
    tiny_db.conn.commit()
    report = overview.overview_report(tiny_db, MAY, APRIL)
    revenue = next(row for row in report.rows if row["kpi"] == "revenue")
    was = f"(was {cell(revenue, Column('previous', '', 'kpi'))})"
    for width in WIDTHS:
        text = recorded(report, width)
        assert max(len(line) for line in text.splitlines()) <= width
        assert any(cell(revenue, Column("value", "", "kpi")) in line for line in text.splitlines())
        assert any(was in line for line in text.splitlines()), text


def test_every_metric_row_has_the_same_keys_in_the_same_order(tiny_db):
    # The running bucket and the forecast rows listed their keys in other orders than the
    # finished buckets (anomaly last, partial after anomaly), so the JSON rows of one
    # report did not line up.
    report = timeseries.metric_report(
        tiny_db,
        "Placed Order",
        MAY,
        forecast="7d",
        now=datetime.datetime(2026, 5, 20, 12, tzinfo=datetime.UTC),
    )
    assert {row["kind"] for row in report.rows} == {"actual", "partial", "forecast"}
    orders = {tuple(row) for row in report.rows}
    assert len(orders) == 1, orders
    assert next(iter(orders)) == tuple(to_csv(report).splitlines()[0].split(","))


def test_a_metric_counted_in_events_or_profiles_shows_whole_numbers(tiny_db):
    # "Placed Order by day (count)" listed 26.00 orders a day and "total 1,818.00".
    counted = timeseries.metric_report(tiny_db, "Placed Order", MAY)
    busy = next(row for row in counted.rows if row["value"] >= 1)
    text = recorded(counted, 120, table=True)
    line = next(
        ln for ln in text.splitlines() if ln.startswith(busy["bucket"]) or f" {busy['bucket']} " in ln
    )
    assert f" {int(busy['value'])} " in line and f"{busy['value']:.2f}" not in line, line
    assert f"total {int(counted.meta['total']):,}," in text
    valued = timeseries.metric_report(tiny_db, "Placed Order", MAY, measure="value")
    assert f"total {valued.meta['total']:,.2f}," in recorded(valued, 120)  # money keeps its cents


def test_a_metric_without_data_claims_no_forecast(tiny_db):
    # A period before the first event: no bucket, so no forecast either, yet the footer read
    # "forecast: seasonal, 7 buckets; no back-test (too little history)".
    empty = timeseries.metric_report(
        tiny_db, "Placed Order", resolve_period(from_="2020-01-01", to="2020-01-31"), forecast="7d"
    )
    assert not empty.rows
    text = recorded(empty, 100)
    assert "forecast:" not in text and "No Placed Order events in 2020-01-01 to 2020-01-31." in text


def test_flows_source_compare_names_the_message_of_each_row(tiny_db):
    # One row per flow message, but the table named the flow alone: two emails of one flow
    # read as the same row twice ("Abandoned Cart  email  261 ...", "Abandoned Cart  email  254 ...").
    store(tiny_db)
    tiny_db.execute("UPDATE flow_messages SET channel = 'email'")
    tiny_db.execute("UPDATE report_values SET channel = 'email' WHERE report = 'flow-values'")
    tiny_db.conn.commit()
    report = compare_report(tiny_db, "flow-values", MAY)
    assert [row["message_name"] for row in report.rows] == ["Welcome email", "Welcome text"]
    for width in WIDTHS:
        text = recorded(report, width)
        assert "Welcome email" in text and "Welcome text" in text, text
    campaigns = compare_report(tiny_db, "campaign-values", MAY)
    assert "message_name" not in campaigns.rows[0]  # a campaign's row sums its messages


def test_the_hidden_columns_footer_never_splits_its_example(long_named_db):
    # At 80 columns the demo's flows footer broke between "--columns" and its value; where
    # it breaks depends on the width, so try each.
    reports = [BUILDERS[name](long_named_db) for name in ("flows --by message", "campaigns")]
    for report, width in ((report, width) for report in reports for width in range(60, 121)):
        text = recorded(report, width)
        if " hidden: " not in text:
            continue  # wide enough for every column
        footer = text[text.index(" hidden: ") :]
        example = footer[footer.index("e.g.") + 4 :].split(")")[0].strip()
        assert "\n" not in example and example.startswith("--columns"), (report.name, width, footer)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["campaigns --compare", "flows --compare"])
def test_a_compared_table_says_its_totals_beside_the_compare_period_s(tiny_db, name, width):
    # The campaigns table lists this period's campaigns only: without this line, --compare
    # showed nothing of the comparison on screen (only JSON had it).
    report = BUILDERS[name](tiny_db)
    text = " ".join(recorded(report, width).split())
    was = report.meta["previous_totals"]["recipients"]
    assert "Totals vs 2026-04-01 to 2026-04-30: recipients" in text
    assert f"recipients {report.meta['totals']['recipients']:,} (was {was:,}" in text
    assert f"revenue {report.meta['totals']['conversion_value']:,.2f} (was" in text  # no currency known
    report.set_currency([{"code": "EUR", "orders": 1, "value": 1.0}], note=False)
    assert "revenue (EUR) " in " ".join(recorded(report, width).split())  # as its column says
    assert "Totals vs" not in recorded(BUILDERS[name.split()[0]](tiny_db), width)  # not compared


@pytest.mark.parametrize(("anomalies", "horizon", "said"), [(1, 1, "1 anomaly"), (2, 7, "2 anomalies")])
def test_the_metric_footer_counts_anomalies_and_buckets_in_their_number(tiny_db, anomalies, horizon, said):
    # It printed "1 anomalies" and "forecast: linear, 1 buckets".
    report = timeseries.metric_report(tiny_db, "Placed Order", MAY, forecast="1d" if horizon == 1 else "7d")
    report.meta["anomalies"] = anomalies
    report.meta["forecast"]["horizon"] = horizon
    if report.meta["forecast"]["backtest"]:
        report.meta["forecast"]["backtest"]["points"] = horizon
    text = recorded(report, 120)
    assert f"total {int(report.meta['total']):,}, {said}" in text
    bucket = "1 bucket;" if horizon == 1 else f"{horizon} buckets;"
    assert bucket in text and ("over 1 bucket:" in text or horizon != 1 or "no back-test" in text)
    several = {"accounts": {"acme": {"total": 3, "anomalies": anomalies}}}
    lone = Report("metric", "Placed Order", [], [], meta=several)
    assert f"acme: total 3.00, {said}" in recorded(lone, 120)


def test_a_comparison_with_the_previous_single_day_says_day():
    from klaviyo_etl.reports.periods import compare_period

    today = resolve_period(last="today", today=datetime.date(2026, 5, 31))
    assert compare_period(today, "previous").label == "previous 1 day"
    assert compare_period(resolve_period(last="7d"), "previous").label == "previous 7 days"


@pytest.mark.parametrize("width", WIDTHS)
def test_an_account_outside_utc_shows_its_times_and_says_whose_days_are_counted(tiny_db, width):
    tiny_db.execute(
        "INSERT INTO accounts (id, timezone, attributes, synced_at) VALUES ('A1', 'Asia/Kolkata', '{}', '')"
    )
    report = messages.campaign_report(tiny_db, resolve_period(last="all"))
    sent = [r["send_time"] for r in report.rows if r["send_time"]]
    assert sent and report.to_json()["timezone"] == "Asia/Kolkata"
    assert [r["send_time"] for r in report.to_json()["rows"] if r["send_time"]] == sent  # stored UTC
    console = Console(record=True, width=width, force_terminal=True)
    print_report(report, console)
    text = console.export_text()
    india = zoneinfo.ZoneInfo("Asia/Kolkata")
    for stamp in sent:
        local = datetime.datetime.fromisoformat(stamp).astimezone(india).strftime("%Y-%m-%d %H:%M")
        assert local in text
    assert "Days in Asia/Kolkata, the account's timezone (as Klaviyo counts them)" in text
    assert max(len(line) for line in text.splitlines()) <= width
    page = html.unescape(render_html(report))
    assert "Days in Asia/Kolkata" in page


def test_a_utc_account_gets_no_timezone_line(tiny_db):
    report = messages.campaign_report(tiny_db, resolve_period(last="all"))
    console = Console(record=True, width=120, force_terminal=True)
    print_report(report, console)
    assert report.to_json()["timezone"] == "UTC" and "Days in" not in console.export_text()
