"""Output: the same Report as a Rich table, JSON, CSV or a standalone HTML page.

A table on a terminal fits the terminal (`fit_columns`): when the whole table is wider,
it drops the lines around the cells, wraps the headers, hides the least useful columns
(each `Column` carries its `priority`) and lastly shortens the identifying column, cut in
the middle (`shorten_middle`), never below its minimum; a number is never cut. A footer names what was hidden.
`--wide` shows every column and `--columns` picks them; piped or written to a file, the
table keeps the full width it needs, so scripts see what they always saw.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich import box
from rich.cells import cell_len, get_character_cell_size
from rich.columns import Columns
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports.formatting import cell, format_value
from klaviyo_etl.reports.html import report_page
from klaviyo_etl.reports.model import IDENTITY, KEY, Column, Report
from klaviyo_etl.reports.periods import change_pct
from klaviyo_etl.reports.terminal_chart import metric_chart
from klaviyo_etl.wording import counted

FORMATS = ("table", "json", "csv", "html")

IDENTITY_MIN = 20  # the identifying column's narrowest, unless its Column says otherwise
IDENTITY_ENOUGH = 40  # columns are hidden to show an identifying cell up to this width whole
TEXT_FOLD = 24  # a longer word in another text column folds
GAP = 2  # between two columns of a fitted table (no lines: two spaces)
DATE = len("2026-12-01")  # a datetime cell too wide for its column shows this much


@dataclass
class Layout:
    """Which columns a table shows and how wide each is; `widths` None = natural widths."""

    columns: list[Column]
    hidden: list[Column] = field(default_factory=list)
    widths: dict[str, int] | None = None
    labels: dict[str, str] = field(default_factory=dict)  # short headers used instead
    dates: set[str] = field(default_factory=set)  # datetime columns showing the date alone

    def width(self) -> int:
        """Terminal cells a fitted table takes (its widths and the gaps between them)."""
        return sum((self.widths or {}).values()) + GAP * (len(self.columns) - 1)


def select_columns(report: Report, keys: Sequence[str]) -> list[Column]:
    """The columns `--columns a,b,c` names, in that order (an unknown key is a usage error)."""
    by_key = {c.key: c for c in report.columns}
    chosen = []
    for raw in keys:
        key = raw.strip().replace("-", "_")
        if not key:
            continue
        if key not in by_key:
            raise UsageError(
                f"--columns {key!r} is not a column of this report (choose from {', '.join(by_key)})"
            )
        if by_key[key] not in chosen:
            chosen.append(by_key[key])
    if not chosen:
        raise UsageError(f"--columns names no column (choose from {', '.join(by_key)})")
    return chosen


def _words(text: str) -> int:
    return max((cell_len(word) for word in text.split()), default=0)


def fit_columns(
    columns: list[Column], cells: dict[str, list[str]], width: int, *, hide: bool = True
) -> Layout:
    """Lay `columns` out in `width` terminal cells (`cells`: each column's formatted values).

    In order, until the table fits: wrap the headers (or take their `short` form); hide
    columns by priority (OTHER, then USEFUL, the rightmost first) while the identifying
    column is narrower than it needs (up to IDENTITY_ENOUGH); wrap the other text columns
    at their spaces (a datetime column shows its date alone rather than its time on a second
    line); shorten the identifying column towards its minimum; hide KEY columns.
    `hide=False` (columns the user picked) never hides one. Numbers keep the width of their
    widest cell throughout.
    """
    natural: dict[str, int] = {}
    floor: dict[str, int] = {}
    header_floor: dict[str, int] = {}
    for column in columns:
        values = cells[column.key]
        widest = max((cell_len(v) for v in values), default=0)
        natural[column.key] = max(cell_len(column.label), widest)
        header_floor[column.key] = max(_words(column.short or column.label), widest)
        if column.numeric or column.kind == "kpi":
            floor[column.key] = header_floor[column.key]
        elif column.priority == IDENTITY:
            floor[column.key] = min(natural[column.key], column.min_width or IDENTITY_MIN)
        elif column.kind == "datetime":
            floor[column.key] = max(
                [cell_len(column.short or column.label)] + [cell_len(v[:DATE]) for v in values]
            )
        else:
            longest = max([_words(v) for v in values] + [_words(column.label)])
            floor[column.key] = min(natural[column.key], max(min(longest, TEXT_FOLD), column.min_width or 0))
    identity = [c for c in columns if c.priority == IDENTITY and not (c.numeric or c.kind == "kpi")]
    shown = list(columns)
    widths = dict(natural)

    def total() -> int:
        return Layout(shown, widths={c.key: widths[c.key] for c in shown}).width()

    def wanted(column: Column) -> int:
        return min(natural[column.key], max(floor[column.key], IDENTITY_ENOUGH))

    def fits() -> bool:
        return total() <= width

    def hide_until_fits(priorities: set[int]) -> None:
        order = sorted(
            (c for c in shown if c.priority in priorities), key=lambda c: (-c.priority, -columns.index(c))
        )
        for column in order:
            if fits():
                return
            shown.remove(column)

    if fits():
        return Layout(columns=shown, widths=widths)
    # 1. headers wrap onto two lines
    for column in columns:
        if column.numeric or column.kind == "kpi":
            widths[column.key] = header_floor[column.key]
    for column in identity:
        widths[column.key] = wanted(column)
    # 2. hide the least useful columns while the identifying column is short of what it wants
    if hide:
        hide_until_fits({c.priority for c in columns if c.priority > KEY})
    # 3. other text columns wrap at their spaces; 4. the identifying column shortens
    if not fits():
        for column in shown:
            if column not in identity:
                widths[column.key] = floor[column.key]
    if not fits():
        for column in identity:
            spare = total() - width
            widths[column.key] = max(floor[column.key], widths[column.key] - spare)
    # 5. the key columns go last
    if hide and not fits():
        hide_until_fits({c.priority for c in columns if c.priority != IDENTITY})
    # Give back what is left: to the identifying column first, then unwrap whole columns.
    for column in identity:
        if column in shown:
            widths[column.key] = min(natural[column.key], widths[column.key] + max(0, width - total()))
    for column in shown:
        if natural[column.key] - widths[column.key] <= width - total():
            widths[column.key] = natural[column.key]
    return Layout(
        columns=shown,
        hidden=[c for c in columns if c not in shown],
        widths={c.key: widths[c.key] for c in shown},
        labels={c.key: c.short for c in shown if c.short and widths[c.key] < _words(c.label)},
        dates={c.key for c in shown if c.kind == "datetime" and widths[c.key] < natural[c.key]},
    )


def _title(report: Report) -> str:
    title = report.title
    if report.period:
        title += f" — {report.period.describe()}"
    if report.compare:
        title += f" vs {report.compare.describe()}"
    return title


def _cells(report: Report, columns: list[Column]) -> dict[str, list[str]]:
    return {c.key: [cell(row, c) for row in [*report.rows, *report.footer]] for c in columns}


def shorten_middle(text: str, width: int) -> str:
    """`text` in `width` terminal cells: whole if it fits, else its start and its end around
    "…". Names of a series differ at the end ("Welcome Email #1", "#2"); cut at the end they
    made rows no one could tell apart. The start keeps three fifths of the room."""
    if cell_len(text) <= width:
        return text
    room = max(width - 1, 0)
    tail_room = room * 2 // 5
    head, head_used = [], 0
    for char in text:
        size = get_character_cell_size(char)
        if head_used + size > room - tail_room:
            break
        head.append(char)
        head_used += size
    tail, used = [], 0
    for char in reversed(text):
        size = get_character_cell_size(char)
        if used + size > room - head_used:
            break
        tail.append(char)
        used += size
    return "".join(head).rstrip() + "…" + "".join(reversed(tail)).lstrip()


def _cell(row: dict[str, Any], column: Column, layout: Layout) -> str:
    text = cell(row, column)
    if column.key in layout.dates:
        return text[:DATE]
    if layout.widths is not None and column.priority == IDENTITY and not column.numeric:
        return shorten_middle(text, layout.widths[column.key])
    return text


def to_table(report: Report, layout: Layout | None = None) -> Table:
    """The report as a Rich table: every column at its natural width, or as `layout` fits it.
    The title is not the table's: `print_report` prints it on its own line, since Rich wraps a
    table's title at the table's width (a two-column table split the period over two lines)."""
    layout = layout or Layout(list(report.columns))
    if layout.widths is None:
        table = Table(show_lines=False)
    else:
        table = Table(
            show_lines=False,
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, 1, 0, 0),
        )
    for index, column in enumerate(layout.columns):
        numeric = column.numeric or column.kind == "kpi"
        if layout.widths is None:
            table.add_column(
                column.label,
                min_width=None if numeric else (16 if index == 0 else 8),
                justify="right" if numeric else "left",
                overflow="fold",
                no_wrap=numeric,
            )
        else:
            identity = column.priority == IDENTITY and not numeric
            table.add_column(
                layout.labels.get(column.key, column.label),
                width=layout.widths[column.key],
                justify="right" if numeric else "left",
                overflow="ellipsis" if identity else "fold",
                no_wrap=identity,
            )
    for row in report.rows:
        cells = []
        for column in layout.columns:
            text = _cell(row, column, layout)
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
    for index, row in enumerate(report.footer):
        texts = [
            "" if row.get(c.key) is None and not c.numeric else _cell(row, c, layout) for c in layout.columns
        ]
        table.add_row(*texts, style="bold", end_section=False)
        if index == 0 and report.rows:
            table.rows[len(report.rows) - 1].end_section = True
    return table


def hidden_note(layout: Layout) -> str:
    """The footer under a table that hides columns: which, and how to see them."""
    keys = [c.key for c in layout.hidden]
    example = f"{layout.columns[0].key},{keys[0]}"
    return (
        f"{counted(len(keys), 'column')} hidden: {', '.join(keys)}"
        f" (--wide shows all; --columns picks, e.g. --columns={example})"  # one word: never split
    )


CARD = 30  # an overview card's width, unless a figure needs more


def _overview_cards(report: Report) -> Columns:
    bodies = []
    for row in report.rows:
        body = Text(cell(row, Column("value", "", "kpi")), style="bold")
        change = row.get("change_pct")
        if report.compare:
            style = "green" if (change or 0) > 0 else "red" if (change or 0) < 0 else "dim"
            body.append(f"\n{format_value(change, 'pct') if change is not None else 'n/a'}", style=style)
            body.append(f" (was {cell(row, Column('previous', '', 'kpi'))})", style="dim")
        bodies.append((report.card_label(row), body))
    # One width for all, so they line up: wide enough for the longest line (borders and
    # padding take 4), where it would wrap "(was 7,298,777,840.00)" onto a line of its own.
    width = max([CARD] + [max(cell_len(line) for line in body.plain.split("\n")) + 4 for _, body in bodies])
    return Columns([Panel(body, title=label, width=width) for label, body in bodies])


# The totals a compared campaigns or flows table sums up under it, with their labels.
COMPARED_TOTALS = {
    "recipients": "recipients",
    "open_rate": "open rate",
    "click_rate": "click rate",
    "conversions": "conversions",
    "conversion_value": "revenue",
}


def compare_line(report: Report) -> str | None:
    """Under a compared table whose rows are this period's alone (campaigns, flows by
    flow): its totals beside the compare period's, or the table would show no comparison
    at all; JSON has every figure (`totals`, `previous_totals`, `change_pct`)."""
    meta = report.meta
    if report.compare is None or "totals" not in meta or "previous_totals" not in meta:
        return None
    kinds = {c.key: c.kind for c in report.columns}
    now, was = meta["totals"], meta["previous_totals"]
    parts = []
    money = f" ({report.currency_label})" if report.currency_label else ""
    for key, label in COMPARED_TOTALS.items():
        if kinds.get(key) == "money":
            label += money
        if key in now:
            kind = kinds.get(key, "int")
            change = change_pct(now[key], was.get(key))
            shown = f"{label} {format_value(now[key], kind)} (was {format_value(was.get(key), kind)}"
            parts.append(shown + (f", {format_value(change, 'pct')})" if change is not None else ")"))
    return f"Totals vs {report.compare.describe()}: " + ", ".join(parts) if parts else None


def _needed(table: Table) -> int:
    """The width `table` takes with every column at its natural width."""
    return Console(width=2000).measure(table).maximum


def widen_for(console: Console, table: Table) -> None:
    """Give `table` the width it needs on `console`, at most 400 columns: piped, written to a
    file or `--wide`, each row stays on one line instead of folding at Rich's 80."""
    console.width = max(console.width, min(_needed(table), 400))


def print_report(
    report: Report,
    console: Console,
    *,
    columns: Sequence[str] | None = None,
    wide: bool = False,
    table: bool = True,
) -> None:
    """Print `report` on `console`: fitted to a terminal, at full width elsewhere (or `wide`).

    `columns` (keys) picks the table's columns; the overview's cards ignore both. A metric
    leads with its chart; `table=False` leaves the metric's table out (the other reports
    are tables, and always print one). The conversion metric's line follows.
    """
    report = report.with_currency_headers().with_local_times()
    # Several accounts' series (`reports.accounts.combine`) would run into one line: their
    # table, with its account column, instead of a chart.
    several = report.name == "metric" and "total" not in report.meta
    if report.name == "metric" and report.rows and not several:
        console.print(metric_chart(report, console.width))
    if report.name == "metric" and not table and not several:
        pass
    elif report.name == "overview":
        title = f"{report.title} — {report.period.describe() if report.period else ''}"
        if report.compare:
            title += f" vs {report.compare.describe()}"
        console.print(Text(title, style="bold"))
        console.print(_overview_cards(report))
    else:
        chosen = select_columns(report, columns) if columns else list(report.columns)
        layout = Layout(chosen)
        grid = to_table(report, layout)
        if console.is_terminal and not wide and _needed(grid) > console.width:
            layout = fit_columns(chosen, _cells(report, chosen), console.width, hide=not columns)
            grid = to_table(report, layout)
            # Picked columns may not fit even at their narrowest: wider, rather than cut.
            console.width = max(console.width, layout.width())
        if layout.widths is None:
            widen_for(console, grid)  # piped, written to a file or --wide
        console.print(Text(_title(report), style="table.title"))
        console.print(grid)
        if layout.hidden and report.rows:
            console.print(Text(hidden_note(layout), style="dim"))
        if (line := compare_line(report)) is not None:
            console.print(Text(line))
    # Every report names its conversion metric, in a caption line under its table, cards or
    # chart (the title and a metric's chart lead).
    for caption in (report.timezone_caption, report.conversion_caption):
        if caption:
            console.print(Text(caption, style="dim"))
    meta = report.meta
    whole = "float" if meta.get("measure", "value") == "value" else "int"  # events, profiles
    if several:  # one summary line for each account
        for name, own in meta.get("accounts", {}).items():
            console.print(
                f"{name}: total {format_value(own['total'], whole)},"
                f" {counted(own['anomalies'], 'anomaly', 'anomalies')}"
            )
    elif report.name == "metric":
        anomalies = counted(meta["anomalies"], "anomaly", "anomalies")
        line = f"total {format_value(meta['total'], whole)}, {anomalies}"
        if "change_pct" in meta:
            line += (
                f"; previous {format_value(meta['previous_total'], whole)}"
                f" ({format_value(meta['change_pct'], 'pct')})"
            )
        console.print(line)
        forecast = meta.get("forecast")
        if forecast and any(row["kind"] == "forecast" for row in report.rows):  # none without data
            test = forecast["backtest"]
            error = (
                (
                    f"back-test over {counted(test['points'], 'bucket')}: MAE {test['mae']:,.2f},"
                    f" RMSE {test['rmse']:,.2f}, MAPE "
                    + (f"{test['mape']:.1f}%" if test["mape"] is not None else "n/a")
                )
                if test
                else "no back-test (too little history)"
            )
            console.print(
                f"forecast: {forecast['method']}, {counted(forecast['horizon'], 'bucket')}; {error}"
            )
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
    """Every scalar field of every row (lists and objects are for JSON), formulas neutralised;
    a report without rows writes its header alone."""
    keys: list[str] = []
    for row in report.rows:
        for key, value in row.items():
            if key not in keys and _scalar(value):
                keys.append(key)
    if not report.rows:  # the header all the same: a CSV of one empty line has no columns
        keys = list(report.fields or [c.key for c in report.columns])
    # What the money is in, on each row that has money ("EUR+USD": amounts added unconverted).
    code = report.currency_label
    money = any(c.kind == "money" for c in report.columns)
    if code and "currency" not in keys and (money or any(r.get("kind") == "money" for r in report.rows)):
        keys.append("currency")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        cells = {k: csv_cell(row.get(k)) for k in keys}
        if "currency" in keys and "currency" not in row:
            cells["currency"] = code if money or row.get("kind") == "money" else ""
        writer.writerow(cells)
    return out.getvalue()


def to_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, default=str)


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} must be one of {', '.join(FORMATS)}")


def render(
    report: Report,
    fmt: str,
    out: TextIO | None = None,
    console: Console | None = None,
    *,
    columns: Sequence[str] | None = None,
    wide: bool = False,
    table: bool = True,
) -> None:
    """Write the report in `fmt` to `out` (stdout by default); `columns` and `wide` shape
    the table only (JSON and CSV always hold every field); `table` as in `print_report`."""
    check_format(fmt)
    if columns:
        select_columns(report, columns)  # a wrong key is an error in every format
    if fmt == "table":
        print_report(report, console or Console(file=out), columns=columns, wide=wide, table=table)
        return
    if fmt == "json":
        text = to_json(report) + "\n"
    elif fmt == "csv":
        text = to_csv(report)
    else:
        text = report_page(report)
    if out is None:
        _check_encodable(text, sys.stdout, fmt)
    (out or sys.stdout).write(text)


def _check_encodable(text: str, stream: TextIO, fmt: str) -> None:
    """Refuse a CSV or HTML the stream cannot hold as it is: the CLI lets a stream that cannot
    encode a character write a stand-in (a table may degrade for the eye), but a CSV read by
    another program with "?" for "É" would be data changed without a word. JSON escapes
    such characters itself, so it never gets here with any."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        raise UsageError(
            f"--format {fmt}: standard output's encoding ({encoding}) cannot hold this report's"
            " text; write it to a file with -o FILE (UTF-8), or set PYTHONIOENCODING=utf-8"
        ) from None
    except LookupError:
        pass  # an encoding Python does not know: let the write say what it can
