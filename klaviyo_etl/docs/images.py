"""`make docs-images`: what the README shows of the tool's output, made from the sandbox.

It starts the sandbox (the demo's account), syncs it into a temporary database through the
real CLI, then
- prints `report campaigns --last 90d` as a 100-column terminal shows it and puts the text in
  README.md (between `<!-- generated: campaigns-example -->` markers);
- writes `report dashboard --html` and screenshots it with headless Chromium into
  `klaviyo_etl/docs/images/dashboard.png`.

The output depends on today's date (the sandbox anchors its data to now), so unlike the
command table this is not checked by `make lint`; rerun it when the reports change. The
capture must show every campaign's name, or the generator stops: an example printed before
report tables were fitted to the terminal (Rich squeezing all 17 columns into 100) once landed
in the README as a header of empty, zero-width columns.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from klaviyo_etl.cli import app
from klaviyo_etl.db import open_database
from klaviyo_etl.docs.chromium import find_chromium, run_chromium
from klaviyo_etl.docs.readme import README, replace_part
from klaviyo_etl.reports.messages import campaign_report
from klaviyo_etl.reports.periods import resolve_period
from klaviyo_etl.reports.render import render
from klaviyo_etl.sandbox import SandboxConfig, SandboxData, serve

IMAGES = Path(__file__).resolve().parent / "images"
SCREENSHOT = IMAGES / "dashboard.png"
WIDTH = 100  # the terminal the README's example is printed for
WINDOW = "1280,1450"  # the page down to the flows table


def _cli(*args: str) -> None:
    code = app(list(args), prog_name="klaviyo-etl", standalone_mode=False)
    if code:
        raise SystemExit(f"klaviyo-etl {' '.join(args)} exited with {code}")


def campaigns_text(db_path: Path, last: str = "90d") -> str:
    """`report campaigns --last 90d --limit 10` as a WIDTH-column terminal prints it.

    Refuses (RuntimeError) a capture that does not show each campaign's name.
    """
    console = Console(width=WIDTH, file=io.StringIO(), force_terminal=True, color_system=None, record=True)
    db = open_database(db_path)
    try:
        report = campaign_report(db, resolve_period(last=last), limit=10)
    finally:
        db.close()
    render(report, "table", console=console)
    text = "\n".join(line.rstrip() for line in console.export_text().splitlines())
    # A fitted table may shorten a long name with an ellipsis, never drop it.
    lost = [row["name"] for row in report.rows if str(row["name"])[:12] not in text]
    if lost:
        raise RuntimeError(f"the campaigns example at {WIDTH} columns lost the names {lost}:\n{text}")
    return f"```text\n$ klaviyo-etl report campaigns --last {last} --limit 10\n{text}\n```"


def screenshot(html: Path, png: Path) -> None:
    if find_chromium() is None:
        raise SystemExit("chromium is not installed (make chromium installs it where it may)")
    run_chromium(
        "--hide-scrollbars", f"--screenshot={png}", f"--window-size={WINDOW}", html.resolve().as_uri()
    )
    # 256 colours are plenty for a page of text and flat charts: a third of the bytes.
    pngquant = shutil.which("pngquant")
    if pngquant:
        subprocess.run([pngquant, "--force", "--skip-if-larger", "--output", str(png), str(png)], check=False)
    else:
        print("note: pngquant is not installed; the screenshot stays uncompressed", file=sys.stderr)


def main() -> int:
    # 180 days of data, so that the dashboard's 90 days compare with 90 full days before them
    # (with the sandbox's default 120, the previous period held 30 days: every KPI "+160 %").
    config = SandboxConfig(
        seed=7, profiles=2000, events=90000, campaigns=36, flows=6, lists=5, segments=4, forms=4, days=180
    )
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "docs.db"
        html = Path(tmp) / "dashboard.html"
        data = SandboxData.generate(config)
        with serve(data, config) as server:
            os.environ["KLAVIYO_API_KEY"] = config.api_key
            _cli("--db", str(db_path), "--base-url", server.url, "--quiet", "sync", "all")
        _cli("--db", str(db_path), "--quiet", "report", "dashboard", "--html", str(html), "--last", "90d")
        text = campaigns_text(db_path)
        screenshot(html, SCREENSHOT)
    README.write_text(replace_part(README.read_text(encoding="utf-8"), "campaigns-example", text))
    print(f"wrote {SCREENSHOT} ({SCREENSHOT.stat().st_size // 1024} KB) and the example in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
