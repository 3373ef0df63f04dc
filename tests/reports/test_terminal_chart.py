"""The metric chart drawn in the terminal, read back from Rich's recording console."""

from __future__ import annotations

import datetime as dt

import pytest
from rich.console import Console
from rich.text import Text

from klaviyo_etl.reports.model import Report
from klaviyo_etl.reports.terminal_chart import metric_chart
from klaviyo_etl.reports.timeseries import COLUMNS

DAYS = 60
SPIKES = {20: 90.0, 45: 95.0}  # anomalies, far apart so their markers cannot merge


def _report(forecast: int = 0) -> Report:
    start = dt.date(2026, 3, 1)
    rows = []
    for i in range(DAYS):
        value = SPIKES.get(i, 20.0 + (i % 7))
        rows.append(
            {
                "bucket": (start + dt.timedelta(days=i)).isoformat(),
                "kind": "actual",
                "value": value,
                "trend": 23.0 if i >= 6 else None,
                "zscore": 4.0 if i in SPIKES else 0.1,
                "anomaly": i in SPIKES,
                "partial": False,
                "low": None,
                "high": None,
            }
        )
    for j in range(forecast):
        bucket = (start + dt.timedelta(days=DAYS + j)).isoformat()
        rows.append(
            {"bucket": bucket, "kind": "forecast", "value": 23.0, "trend": None, "zscore": None}
            | {"anomaly": False, "partial": False, "low": 10.0, "high": 36.0}
        )
    meta = {"metric": "Placed Order", "interval": "day", "measure": "count", "window": 7, "z_threshold": 3.0}
    return Report("metric", "Placed Order by day (count)", COLUMNS, rows, meta=meta)


def _draw(report: Report, width: int) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system="truecolor")
    console.print(metric_chart(report, console.width))
    return console.export_text().splitlines()


def _plot_area(lines: list[str]) -> list[str]:
    """The rows inside the frame, without the y-axis labels and the frame itself."""
    inside = [line.rstrip() for line in lines if line.rstrip().endswith("│")]
    return [(line.split("┤", 1) if "┤" in line else line.split("│", 1))[1][:-1] for line in inside]


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_chart_fits_the_width_and_shows_series_anomalies_and_band(width):
    lines = _draw(_report(forecast=14), width)
    assert all(len(line) <= width for line in lines)
    assert max(len(line) for line in lines) >= width - 2  # it uses the width it has
    assert "Placed Order by day (count)" in lines[0]
    area = _plot_area(lines)
    assert len(area) >= 12
    assert sum(row.count("x") for row in area) == len(SPIKES)  # each anomaly marked once
    # The spikes are the highest points: their markers sit on the top rows.
    assert "x" in area[0] or "x" in area[1]
    band = [row.rfind("•") for row in area if "•" in row]
    assert band and min(band) > max(row.rfind("x") for row in area)  # the band lies in the future
    assert "03-01" in lines[-3]  # the first bucket labels the x axis
    legend = lines[-1]
    assert "count" in legend and "7-day average" in legend
    assert "anomaly (|z| ≥ 3)" in legend and "forecast" in legend and "95% band" in legend


def test_without_a_forecast_there_is_no_band_and_the_legend_says_so():
    lines = _draw(_report(), 100)
    assert not any("•" in row for row in _plot_area(lines))
    assert "forecast" not in lines[-1]


def test_the_chart_is_rich_text_so_a_console_without_colour_prints_it_plain():
    chart = metric_chart(_report(forecast=7), 80)
    assert isinstance(chart, Text) and "\x1b[" not in chart.plain


def test_without_colour_the_series_its_average_and_the_forecast_look_different():
    # All three were braille lines and the legend showed "━━" for each: without colour (NO_COLOR,
    # a colour-blind reader, a pasted chart) no one could tell the count from its average.
    lines = _draw(_report(forecast=14), 100)
    area = "".join(_plot_area(lines))
    legend = lines[-1]
    glyphs = {}
    for name in ("count", "7-day average", "forecast"):
        before = legend[: legend.index(f" {name}")].rstrip()
        glyphs[name] = before.split()[-1]
    assert len(set(glyphs.values())) == 3, glyphs
    # The legend shows the marks each line is drawn with: braille dots, middle dots, blocks.
    braille = {chr(c) for c in range(0x2801, 0x2900)}
    blocks = set("▖▗▘▙▚▛▜▝▞▟▀▄▌▐█")
    marks = {"count": braille, "7-day average": {"·"}, "forecast": blocks}
    for name, glyph in glyphs.items():
        assert set(glyph) <= marks[name] and marks[name] & set(area), (name, glyph)
