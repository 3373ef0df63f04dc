"""`report metric` as a picture in the terminal: the series, its trend, the anomalies and the
forecast band, drawn with plotext and fitted to the console's width.

The chart reads only the report's rows (the same rows as the table, JSON and CSV), so it
cannot disagree with them. plotext draws in braille dots and colours with ANSI codes; Rich
takes the result as `Text`, so a console without colour (a pipe, NO_COLOR) prints it plain.
The legend is ours, under the chart, so it never hides a point. Each line has its own mark as
well as its colour (the series braille dots, its average middle dots, the forecast blocks), so
the chart reads without colour too.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from klaviyo_etl.reports.model import Report

# Rows of the plot itself; plotext adds the frame and the axis labels.
HEIGHT = 16
SERIES, TREND, ANOMALY, FORECAST = "blue", "orange", "red", "cyan"
# Below this the axis labels leave no room for the data.
MIN_WIDTH = 40


def _label(bucket: str, interval: str) -> str:
    """A short x-axis label: 09-03 for a day or week, 2026-09 for a month, 09-03 14h for an hour."""
    if interval == "month":
        return bucket[:7]
    if interval == "hour":
        return f"{bucket[5:10]} {bucket[11:13]}h"
    return bucket[5:10]


def _points(rows: list[dict[str, Any]], key: str, keep) -> tuple[list[int], list[float]]:
    xs = [i for i, row in enumerate(rows) if keep(row) and row.get(key) is not None]
    return xs, [float(rows[i][key]) for i in xs]


def metric_chart(report: Report, width: int, height: int = HEIGHT) -> Text:
    """The metric report's rows as a chart `width` columns wide, legend included."""
    rows = report.rows
    meta = report.meta
    interval = meta.get("interval", "day")
    width = max(width, MIN_WIDTH)
    import plotext  # ~35 ms: only a chart pays for it, not every start of the CLI (issue 12)

    plotext.clf()
    plotext.limit_size(False, False)  # our width, not the size plotext guesses for stdout
    plotext.theme("clear")  # the terminal's own background and text colours
    plotext.plotsize(width, height + 4)  # + title, frame and x labels
    actual = _points(rows, "value", lambda r: r["kind"] != "forecast")
    plotext.plot(*actual, color=SERIES, marker="braille")
    trend = _points(rows, "trend", lambda r: True)
    if trend[0]:
        plotext.plot(*trend, color=TREND, marker="·")
    future = [i for i, row in enumerate(rows) if row["kind"] == "forecast"]
    if future:
        # Join the forecast to the last actual point, so the line does not jump.
        start = [future[0] - 1] if future[0] > 0 else []
        joined = start + future
        plotext.plot(joined, [float(rows[i]["value"]) for i in joined], color=FORECAST, marker="hd")
        for edge in ("low", "high"):
            band = _points(rows, edge, lambda r: r["kind"] == "forecast")
            if band[0]:
                plotext.plot(*band, color=FORECAST, marker="dot")
    anomalies = _points(rows, "value", lambda r: r.get("anomaly"))
    if anomalies[0]:
        plotext.scatter(*anomalies, color=ANOMALY, marker="x")
    ticks = max(2, (width - 10) // 14)
    step = max(1, -(-len(rows) // ticks))
    positions = list(range(0, len(rows), step))
    plotext.xticks(positions, [_label(rows[i]["bucket"], interval) for i in positions])
    plotext.title(report.title)
    chart = Text.from_ansi(plotext.build())
    chart.append("\n")
    chart.append_text(_legend(report, bool(trend[0]), bool(future), len(anomalies[0])))
    return chart


def _legend(report: Report, trend: bool, forecast: bool, anomalies: int) -> Text:
    meta = report.meta
    # Each line's own mark, so that the legend reads without colour too.
    legend = Text("  ")
    legend.append("⠤⠤ ", style=SERIES)
    legend.append(str(meta.get("measure", "value")))
    if trend:
        legend.append("  ·· ", style=TREND)
        legend.append(f"{meta.get('window', '')}-{meta.get('interval', 'day')} average")
    if anomalies:
        legend.append("  x ", style=f"bold {ANOMALY}")
        legend.append(f"anomaly (|z| ≥ {meta.get('z_threshold', 3):g})")
    if forecast:
        legend.append("  ▄▄ ", style=FORECAST)
        legend.append("forecast")
        legend.append(" •• ", style=FORECAST)
        legend.append("95% band")
    return legend
