"""Output: the same Report as a Rich table, JSON, CSV or a standalone HTML page."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any, TextIO

from rich.columns import Columns
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports.formatting import cell, format_value
from klaviyo_etl.reports.html import report_page
from klaviyo_etl.reports.model import Column, Report

FORMATS = ("table", "json", "csv", "html")


def to_table(report: Report) -> Table:
    title = report.title
    if report.period:
        title += f" — {report.period.describe()}"
    if report.compare:
        title += f" vs {report.compare.describe()}"
    table = Table(title=title, title_justify="left", show_lines=False)
    for index, column in enumerate(report.columns):
        numeric = column.numeric or column.kind == "kpi"
        table.add_column(
            column.label,
            min_width=None if numeric else (16 if index == 0 else 8),
            justify="right" if numeric else "left",
            overflow="fold",
            no_wrap=numeric,
        )
    for row in report.rows:
        cells = []
        for column in report.columns:
            text = cell(row, column)
            if column.kind == "pct" and row.get(column.key) is not None:
                style = "green" if row[column.key] > 0 else "red" if row[column.key] < 0 else ""
                cells.append(Text(text, style=style))
            elif column.key == "anomaly" and row.get("anomaly"):
                cells.append(Text("yes", style="bold red"))
            elif row.get("kind") == "forecast" and column.key in ("bucket", "kind", "value"):
                cells.append(Text(text, style="cyan"))
            else:
                cells.append(text)
        table.add_row(*cells)
    return table


def _overview_cards(report: Report) -> Columns:
    cards = []
    for row in report.rows:
        body = Text(cell(row, Column("value", "", "kpi")), style="bold")
        change = row.get("change_pct")
        if report.compare:
            style = "green" if (change or 0) > 0 else "red" if (change or 0) < 0 else "dim"
            body.append(f"\n{format_value(change, 'pct') if change is not None else 'n/a'}", style=style)
            body.append(f" (was {cell(row, Column('previous', '', 'kpi'))})", style="dim")
        cards.append(Panel(body, title=row["label"], width=30))
    return Columns(cards)


def print_report(report: Report, console: Console) -> None:
    if report.name == "overview":
        title = f"{report.title} — {report.period.describe() if report.period else ''}"
        if report.compare:
            title += f" vs {report.compare.describe()}"
        console.print(Text(title, style="bold"))
        console.print(_overview_cards(report))
    else:
        table = to_table(report)
        if not console.is_terminal:
            # Piped or written to a file: give the table the width it needs, not 80 columns.
            needed = Console(width=2000).measure(table).maximum
            console.width = max(console.width, min(needed, 400))
        console.print(table)
    meta = report.meta
    if report.name == "metric":
        line = f"total {format_value(meta['total'], 'float')}, {meta['anomalies']} anomalies"
        if "change_pct" in meta:
            line += (
                f"; previous {format_value(meta['previous_total'], 'float')}"
                f" ({format_value(meta['change_pct'], 'pct')})"
            )
        console.print(line)
        forecast = meta.get("forecast")
        if forecast:
            test = forecast["backtest"]
            error = (
                (
                    f"back-test over {test['points']} buckets: MAE {test['mae']:,.2f},"
                    f" RMSE {test['rmse']:,.2f}, MAPE "
                    + (f"{test['mape']:.1f}%" if test["mape"] is not None else "n/a")
                )
                if test
                else "no back-test (too little history)"
            )
            console.print(f"forecast: {forecast['method']}, {forecast['horizon']} buckets; {error}")
    for note in report.notes:
        console.print(Text(note, style="yellow"))


def _scalar(value: Any) -> bool:
    return not isinstance(value, (list, dict))


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: text that a spreadsheet would run as a formula gets a leading
    `'`; numbers (negative ones too) stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def to_csv(report: Report) -> str:
    """Every scalar field of every row (lists and objects are for JSON), formulas neutralised."""
    keys: list[str] = []
    for row in report.rows:
        for key, value in row.items():
            if key not in keys and _scalar(value):
                keys.append(key)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({k: csv_cell(row.get(k)) for k in keys})
    return out.getvalue()


def to_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, default=str)


def render(report: Report, fmt: str, out: TextIO | None = None, console: Console | None = None) -> None:
    """Write the report in `fmt` to `out` (stdout by default)."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} must be one of {', '.join(FORMATS)}")
    if fmt == "table":
        print_report(report, console or Console(file=out))
        return
    if fmt == "json":
        text = to_json(report) + "\n"
    elif fmt == "csv":
        text = to_csv(report)
    else:
        text = report_page(report)
    (out or sys.stdout).write(text)
