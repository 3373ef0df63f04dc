"""The dashboard page: self-contained, and showing the right numbers once a browser renders it."""

from __future__ import annotations

import re

import pytest

from klaviyo_etl.docs.chromium import find_chromium, run_chromium
from klaviyo_etl.reports.html import dashboard_html, svg_chart
from klaviyo_etl.reports.periods import compare_period, resolve_period

MAY = resolve_period(from_="2026-05-01", to="2026-05-31")


def test_page_is_self_contained(tiny_db):
    page = dashboard_html(tiny_db, MAY, compare_period(MAY, "previous"))
    # No network: no external scripts, stylesheets, images or fonts.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page and "@import" not in page and "url(" not in page
    # Two charts, each drawn for a wide box and for a phone's (the CSS shows one of them).
    assert page.count("<svg") == 4 and page.count('class="narrow-chart"') == 2


def test_chart_scales_bars_to_the_peak():
    svg = svg_chart("t", ["a", "b"], {"Revenue": [50.0, 100.0]}, kind="money", bars="Revenue", height=260)
    heights = [
        float(h)
        for h in re.findall(
            r'<rect x="[^"]+" y="[^"]+" width="[^"]+" '
            r'height="([^"]+)"',
            svg,
        )
    ]
    plot = 260 - 30 - 40  # height minus top and bottom margins
    assert heights[:2] == [pytest.approx(plot / 2, abs=0.1), pytest.approx(plot, abs=0.1)]
    assert "b: 100.00" in svg  # hover title with the exact value


@pytest.mark.skipif(
    find_chromium() is None, reason="headless check needs Debian's chromium (apt-get install chromium)"
)
def test_rendered_dashboard_shows_the_numbers(tiny_db, tmp_path):
    target = tmp_path / "dashboard.html"
    target.write_text(dashboard_html(tiny_db, MAY, compare_period(MAY, "previous")))
    dom = run_chromium("--dump-dom", target.as_uri()).stdout
    cards = dict(
        re.findall(r'data-kpi="(\w+)"><div class="label">[^<]*</div><div class="value">([^<]*)</div>', dom)
    )
    assert cards["revenue"] == "240.00"
    assert cards["active_profiles"] == "6"
    assert cards["open_rate"] == "42.9%"
    assert cards["conversion_rate"] == "40.0%"
    assert "+2300.0%" in dom  # revenue vs April's 10.00
    campaigns = dom[dom.index('id="campaigns"') : dom.index('id="flows"')]
    assert "May newsletter" in campaigns and "SMS flash sale" in campaigns
    assert "37.50" in campaigns  # C1 revenue per recipient
    assert "April newsletter" not in campaigns and "Deleted campaign" not in campaigns
    assert "Welcome" in dom[dom.index('id="flows"') :]
    # And it paints: a screenshot of the page is written.
    shot = tmp_path / "dashboard.png"
    run_chromium(f"--screenshot={shot}", "--window-size=1280,1600", target.as_uri())
    assert shot.stat().st_size > 10_000


# Appended to the page in the test only: the dashboard itself has no script. It writes what
# overflows the viewport into the DOM that --dump-dom prints.
MEASURE = """<script>
const view = document.documentElement.clientWidth;
const wide = [...document.querySelectorAll('.chart, .cards, .charts, h1, .sub')]
  .filter(e => e.getBoundingClientRect().right > view + 0.5)
  .map(e => (e.id || e.className || e.tagName) + ':' + Math.round(e.getBoundingClientRect().right));
document.body.setAttribute('data-overflow', wide.join(' ') || 'none');
document.body.setAttribute('data-page-width', document.documentElement.scrollWidth + '/' + view);
</script></body>"""


@pytest.mark.skipif(
    find_chromium() is None, reason="headless check needs Debian's chromium (apt-get install chromium)"
)
def test_on_a_phone_the_charts_and_cards_fit_the_screen(tiny_db, tmp_path):
    # At 420 px the two charts stack, each as wide as the screen; only a wide table scrolls,
    # inside its own box. (The charts' grid asked for 520 px columns: the charts ran off the
    # right edge and the page scrolled sideways.)
    target = tmp_path / "dashboard.html"
    page = dashboard_html(tiny_db, MAY, compare_period(MAY, "previous"))
    target.write_text(page.replace("</body>", MEASURE))
    dom = run_chromium("--dump-dom", "--window-size=420,2000", target.as_uri()).stdout
    overflow = re.search(r'data-overflow="([^"]*)"', dom).group(1)
    assert overflow == "none"
    scroll, view = map(int, re.search(r'data-page-width="(\d+)/(\d+)"', dom).groups())
    assert scroll <= view


def test_chart_axis_labels_match_their_gridlines():
    # A period without data has a 0..1 axis with gridlines at 0.25 and 0.75: labelled 0.2 and
    # 0.8, the labels disagreed with their lines (and 1.25 read 1.2 on a 0..5 axis).
    empty = svg_chart("t", ["a", "b"], {"Revenue": [0.0, 0.0]}, kind="money", bars="Revenue")
    labels = re.findall(r'text-anchor="end">([^<]*)</text>', empty)
    assert labels == ["0", "0.25", "0.5", "0.75", "1"]
    five = svg_chart("t", ["a"], {"n": [4.0]})
    assert re.findall(r'text-anchor="end">([^<]*)</text>', five) == ["0", "1.25", "2.5", "3.75", "5"]


NAME_COLUMN = """<script>
const view = document.documentElement.clientWidth;
const cells = [...document.querySelectorAll('td:first-child')];
const widest = Math.max(...cells.map(c => c.getBoundingClientRect().width));
const clipped = cells.filter(c => c.scrollWidth > c.clientWidth + 1).length;
document.body.setAttribute('data-name-column', Math.round(widest) + '/' + view + '/' + clipped);
</script></body>"""


@pytest.mark.skipif(
    find_chromium() is None, reason="headless check needs Debian's chromium (apt-get install chromium)"
)
@pytest.mark.parametrize("width", [420, 1280])
def test_a_long_campaign_name_wraps_and_leaves_the_figures_room(tiny_db, tmp_path, width):
    # The name column never wrapped and stays put while a wide table scrolls: with a
    # 110-character campaign name it was wider than a phone's screen, so scrolling sideways
    # never brought a figure into view (and at 1280 px it took 40% of the table).
    long = "Black Friday Cyber Monday Mega Sale — Last Chance for VIP Members Only (EU + UK, resend) #1"
    tiny_db.execute("UPDATE campaigns SET name = ? WHERE id = 'C1'", [long])
    tiny_db.conn.commit()
    target = tmp_path / "dashboard.html"
    target.write_text(dashboard_html(tiny_db, MAY).replace("</body>", NAME_COLUMN))
    dom = run_chromium("--dump-dom", f"--window-size={width},2000", target.as_uri()).stdout
    widest, view, clipped = map(int, re.search(r'data-name-column="(\d+)/(\d+)/(\d+)"', dom).groups())
    assert widest <= view * 0.45 and widest <= 320, (widest, view)
    assert clipped == 0  # wrapped, not cut
    assert long in dom


# The shown charts' axis text: its height on the screen, and which drawing each chart shows.
CHART_TEXT = """<script>
const shown = [...document.querySelectorAll('.chart svg')].filter(s => s.getBoundingClientRect().width > 0);
const sizes = shown.map(s => Math.min(...[...s.querySelectorAll('text')]
  .map(t => t.getBoundingClientRect().height).filter(h => h > 0)));
const kinds = shown.map(s => s.parentElement.className);
document.body.setAttribute('data-chart-text', sizes.map(h => h.toFixed(1)).join(' '));
document.body.setAttribute('data-chart-kind', kinds.join(' '));
</script></body>"""


@pytest.mark.skipif(
    find_chromium() is None, reason="headless check needs Debian's chromium (apt-get install chromium)"
)
@pytest.mark.parametrize("width", [420, 1280])
@pytest.mark.parametrize("which", ["metric", "dashboard"])
def test_chart_text_is_readable_on_a_phone_and_unchanged_on_a_wide_screen(tiny_db, tmp_path, width, which):
    # At 420 px the metric chart (drawn 960 px wide) showed its axis text ~4 px high, the
    # dashboard's (560 px) ~7 px: a phone showed the wide drawing scaled down.
    from klaviyo_etl.reports import timeseries
    from klaviyo_etl.reports.html import report_page

    if which == "metric":
        page = report_page(timeseries.metric_report(tiny_db, "Placed Order", MAY, forecast="7d"))
    else:
        page = dashboard_html(tiny_db, MAY)
    target = tmp_path / "page.html"
    target.write_text(page.replace("</body>", CHART_TEXT))
    dom = run_chromium("--dump-dom", f"--window-size={width},2000", target.as_uri()).stdout
    sizes = [float(h) for h in re.search(r'data-chart-text="([^"]*)"', dom).group(1).split()]
    kinds = re.search(r'data-chart-kind="([^"]*)"', dom).group(1).split()
    assert len(sizes) == (1 if which == "metric" else 2)
    if width == 420:
        assert kinds == ["narrow-chart"] * len(sizes) and min(sizes) >= 10, sizes
    else:
        assert kinds == ["wide-chart"] * len(sizes), kinds  # the drawing shown before
