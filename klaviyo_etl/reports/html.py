"""Self-contained HTML: the dashboard page and any single report as a page.

Everything is inline (CSS in a <style> tag, charts as SVG drawn here), so the file opens
from disk with no network, can be mailed, and renders the same in a year.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Collection
from typing import Any

import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.reports import charts, messages, overview
from klaviyo_etl.reports.formatting import cell, format_value
from klaviyo_etl.reports.model import Column, Report
from klaviyo_etl.reports.periods import account_periods

CSS = """
:root { --ink:#1f2430; --muted:#6b7280; --line:#e5e7eb; --accent:#2563eb; --accent2:#f59e0b;
        --accent3:#10b981; --up:#047857; --down:#b91c1c; --card:#f8fafc; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--ink); margin: 24px auto; max-width: 1280px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: var(--muted); margin-bottom: 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.card .value { font-size: 24px; font-weight: 600; margin-top: 2px; }
.card .change { font-size: 13px; } .up { color: var(--up); } .down { color: var(--down); }
.card .prev { color: var(--muted); font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(520px, 100%), 1fr)); gap: 16px; }
/* min(): on a screen narrower than 520 px a chart takes the screen's width, not more. */
.chart { border: 1px solid var(--line); border-radius: 8px; padding: 8px; min-width: 0;
         container-type: inline-size; }
/* Each chart is drawn twice (`chart_html`): for a box of 480 px or less (a phone), the narrow
   drawing, whose text stays ~11 px; a wide drawing shrunk to a phone's width had 4-8 px text. */
.narrow-chart { display: none; }
@container (max-width: 480px) { .wide-chart { display: none; } .narrow-chart { display: block; } }
svg text { font: 11px -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; fill: var(--muted); }
svg .title { font-size: 13px; font-weight: 600; fill: var(--ink); }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { padding: 5px 5px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { text-align: left; color: var(--muted); font-weight: 600; position: sticky; top: 0; background: #fff;
     white-space: normal; vertical-align: bottom; min-width: 3.5em; }
/* A wide table scrolls sideways; its name column stays in view while it does, so it wraps
   rather than grow past a third of a phone's screen (a long name hid every figure). */
th:first-child, td:first-child { position: sticky; left: 0; background: #fff; z-index: 1; }
td:first-child { white-space: normal; overflow-wrap: anywhere; min-width: 8em; max-width: min(35vw, 20em); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; } .note { color: #92400e; }
"""

PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6"]


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def _axis_label(value: float, kind: str) -> str:
    if kind == "rate":
        return f"{value * 100:.0f}%"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    # A gridline sits at a quarter of a "nice" peak (0.25, 1.25, 12.5): two decimals at most,
    # so its label is its value, not a rounding of it.
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def svg_chart(
    title: str,
    labels: list[str],
    series: dict[str, list[float]],
    *,
    kind: str = "int",
    bars: str | None = None,
    width: int = 560,
    height: int = 260,
    ticks: int = 8,
) -> str:
    """A bar and/or line chart as inline SVG. `bars` names the series drawn as bars; the
    others are lines. Each point carries a <title> so hovering shows its exact value; at most
    `ticks` buckets are labelled under the axis."""
    left, right, top, bottom = 56, 12, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    peak = _nice_max(max([v for vals in series.values() for v in vals if v is not None] or [0]))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}"'
        f' width="100%" aria-label="{_esc(title)}">',
        f'<text class="title" x="{left}" y="18">{_esc(title)}</text>',
    ]
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_esc(_axis_label(value, kind))}</text>'
        )
    step = plot_w / n
    every = max(1, math.ceil(n / ticks))
    for i, label in enumerate(labels):
        if i % every == 0:
            x = left + step * (i + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{_esc(label)}</text>'
            )
    for index, (name, values) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        if name == bars:
            bar_w = max(step * 0.75, 1)
            for i, v in enumerate(values):
                h = plot_h * (v / peak)
                x = left + step * i + (step - bar_w) / 2
                parts.append(
                    f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}"'
                    f' height="{h:.1f}" fill="{color}" opacity="0.85"><title>'
                    f"{_esc(labels[i])}: {_esc(format_value(v, kind))}</title></rect>"
                )
        else:
            # A None leaves a gap: the line is drawn in runs of known values.
            runs: list[list[str]] = [[]]
            for i, v in enumerate(values):
                if v is None:
                    runs.append([])
                else:
                    runs[-1].append(f"{left + step * (i + 0.5):.1f},{top + plot_h - plot_h * v / peak:.1f}")
            for run in runs:
                if len(run) > 1:
                    parts.append(
                        f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" stroke-width="2"/>'
                    )
            for i, v in enumerate(values):
                if v is None:
                    continue
                parts.append(
                    f'<circle cx="{left + step * (i + 0.5):.1f}"'
                    f' cy="{top + plot_h - plot_h * v / peak:.1f}" r="2" fill="{color}">'
                    f"<title>{_esc(name)} {_esc(labels[i])}: "
                    f"{_esc(format_value(v, kind))}</title></circle>"
                )
        lx = left + 8 + index * 130
        parts.append(
            f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{height - 5}">{_esc(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# A phone's chart is drawn about as wide as it is shown (a 420 px screen leaves ~386 px), so
# its 11 px text stays ~11 px; the CSS shows it in a box of 480 px or less.
NARROW = 400


def chart_html(
    title: str,
    labels: list[str],
    series: dict[str, list[float]],
    *,
    kind: str = "int",
    bars: str | None = None,
    width: int = 560,
    height: int = 260,
) -> str:
    """The chart drawn at `width` and at NARROW with fewer axis labels; the page's CSS shows
    the one that fits the chart's box (one SVG scaled to a phone shrank its text to 4-8 px)."""
    wide = svg_chart(title, labels, series, kind=kind, bars=bars, width=width, height=height)
    narrow = svg_chart(title, labels, series, kind=kind, bars=bars, width=NARROW, height=260, ticks=4)
    return f'<div class="wide-chart">{wide}</div><div class="narrow-chart">{narrow}</div>'


def table_html(report: Report, columns: list[Column] | None = None) -> str:
    columns = columns or report.with_currency_headers().columns
    report = report.with_local_times()
    head = "".join(
        f'<th class="{"num" if c.numeric or c.kind == "kpi" else ""}">{_esc(c.label)}</th>' for c in columns
    )
    body = []
    for row in report.rows:
        tds = "".join(
            f'<td class="{"num" if c.numeric or c.kind == "kpi" else ""}">{_esc(cell(row, c))}</td>'
            for c in columns
        )
        body.append(f"<tr>{tds}</tr>")
    notes = "".join(f'<p class="note">{_esc(n)}</p>' for n in report.notes)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{notes}"
    )


def cards_html(report: Report) -> str:
    cards = []
    for row in report.rows:
        change = row.get("change_pct")
        extra = ""
        if report.compare:
            css = "up" if (change or 0) > 0 else "down" if (change or 0) < 0 else ""
            text = format_value(change, "pct") if change is not None else "n/a"
            extra = (
                f'<div class="change {css}">{_esc(text)}</div><div class="prev">was '
                f"{_esc(cell(row, Column('previous', '', 'kpi')))}</div>"
            )
        cards.append(
            f'<div class="card" data-kpi="{_esc(row["kpi"])}"><div class="label">'
            f'{_esc(report.card_label(row))}</div><div class="value">'
            f"{_esc(cell(row, Column('value', '', 'kpi')))}</div>{extra}</div>"
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def page(title: str, subtitle: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{_esc(title)}</h1><div class="sub">{_esc(subtitle)}</div>{body}</body></html>'
    )


def _subtitle(report: Report) -> str:
    text = report.period.describe() if report.period else ""
    if report.compare:
        text += f" compared with {report.compare.describe()}"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    captions = "".join(f" · {c}" for c in (report.timezone_caption, report.conversion_caption) if c)
    return f"{text} · generated {stamp}".strip(" ·") + captions


def report_page(report: Report) -> str:
    """Any report as one standalone page (`--format html`)."""
    body = cards_html(report) if report.name == "overview" else table_html(report)
    if report.name == "metric" and report.rows:
        body = f'<div class="chart">{metric_chart(report)}</div>' + body
    return page(report.title, _subtitle(report), body)


def metric_chart(report: Report) -> str:
    """The series, its trend and the forecast (joined to the last finished bucket)."""
    rows = report.rows
    actual = [None if r["kind"] == "forecast" else r["value"] for r in rows]
    trend = [r.get("trend") for r in rows]
    forecast: list[float | None] = [r["value"] if r["kind"] == "forecast" else None for r in rows]
    finished = [i for i, r in enumerate(rows) if r["kind"] == "actual"]
    if finished and any(v is not None for v in forecast):
        forecast[finished[-1]] = rows[finished[-1]]["value"]
    series = {"Actual": actual, "Trend": trend}
    if any(v is not None for v in forecast):
        series["Forecast"] = forecast
    labels = [r["bucket"] for r in rows]
    return chart_html(report.title, labels, series, kind="float", width=960, height=300)


def dashboard_html(
    db: sqlite_utils.Database,
    period,
    compare=None,
    conversion: str | None = None,
    *,
    exclude_bot_clicks: Collection[str] = kc.BOT_CLICK_CHANNELS,
) -> str:
    """KPI cards, revenue and engagement charts, and the campaign and flow tables.
    `conversion`: the `[reports] conversion_metric` setting; `exclude_bot_clicks`: the
    `[reports] exclude_bot_clicks` one (the engagement chart and the tables follow it)."""
    period, compare = account_periods(db, period, compare)
    kpis = overview.overview_report(db, period, compare, conversion, exclude_bot_clicks)
    labels, revenue, previous = charts.revenue_series(db, period, compare, conversion)
    series = {"Revenue": revenue}
    if previous is not None:
        series["Previous period"] = previous
    picked = kpis.meta.get("conversion_metric")
    code = f", {kpis.currency_label}" if kpis.currency_label else ""
    revenue_svg = chart_html(
        f"Revenue ({picked['name'] if picked else 'Placed Order'} value{code})",
        labels,
        series,
        kind="money",
        bars="Revenue",
    )
    labels, engagement = charts.engagement_series(db, period, exclude_bot_clicks)
    engagement_svg = chart_html("Email engagement (unique per message)", labels, engagement)
    bots = {"conversion": conversion, "exclude_bot_clicks": exclude_bot_clicks}
    campaigns = messages.campaign_report(db, period, limit=25, **bots)
    flows = messages.flow_report(db, period, **bots)
    body = (
        cards_html(kpis) + f'<h2>Trends</h2><div class="charts"><div class="chart" id="revenue-chart">'
        f'{revenue_svg}</div><div class="chart" id="engagement-chart">{engagement_svg}</div></div>'
        + f'<h2>Campaigns</h2><div id="campaigns">{table_html(campaigns)}</div>'
        + f'<h2>Flows</h2><div id="flows">{table_html(flows)}</div>'
    )
    notes = "".join(f'<p class="note">{_esc(n)}</p>' for n in kpis.notes)
    return page("Klaviyo dashboard", _subtitle(kpis), notes + body)
