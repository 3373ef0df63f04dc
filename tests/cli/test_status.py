"""`klaviyo-etl status` shows times compactly; `--json` keeps the stored ISO strings."""

from __future__ import annotations

import datetime as dt
import io

from rich.console import Console

from klaviyo_etl.cli.status import compact_time, print_fitted, status_table

NOW = dt.datetime(2026, 12, 1, 20, 40, tzinfo=dt.UTC)


def test_times_read_as_a_clock_today_then_hours_and_days_ago():
    utc = dt.UTC
    assert compact_time("2026-12-01T18:58:03.123+00:00", NOW, utc) == "18:58"
    assert compact_time("2026-11-30T23:10:00+00:00", NOW, utc) == "21 h ago"
    assert compact_time("2026-11-29T10:00:00+00:00", NOW, utc) == "2 d ago"
    assert compact_time("2026-08-01T10:00:00+00:00", NOW, utc) == "2026-08-01"
    assert compact_time("2026-12-01T20:30:00", NOW, utc) == "20:30"  # naive means UTC
    assert compact_time(None, NOW, utc) == ""


def test_today_is_the_local_day_of_the_zone_shown():
    tokyo = dt.timezone(dt.timedelta(hours=9))
    # 18:58 UTC on Dec 1 is 03:58 on Dec 2 in Tokyo, where it is 05:40 on Dec 2.
    assert compact_time("2026-12-01T18:58:00+00:00", NOW, tokyo) == "03:58"


def test_the_status_table_shows_whole_compact_times():
    rows = [
        {
            "stream": "campaign_messages",
            "last_success_at": "2026-12-01T18:58:03.817371+00:00",
            "age": "1.7h",
            "watermark": "2026-11-09T02:35:44+00:00",
            "rows": 30,
            "last_status": "ok",
            "last_error": None,
        }
    ]
    out = io.StringIO()
    Console(file=out, width=80).print(status_table(rows, NOW, dt.UTC))
    text = out.getvalue()
    assert "campaign_messages" in text and "18:58" in text and "22 d ago" in text
    assert "2026-12-01T" not in text and "…" not in text


def fitted_status(rows: list[dict], width: int) -> str:
    """The status table of `rows` at `width` columns, checked to fit whole (nothing cut)."""
    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(status_table(rows, NOW, dt.UTC, width=width))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    return text


def test_a_skipped_run_shows_why_instead_of_an_older_error():
    rows = [
        {
            "stream": "segment_members",
            "last_success_at": "2026-12-01T18:58:03+00:00",
            "watermark": "2026-12-01T18:50:00+00:00",
            "rows": 79,
            "last_status": "skipped",
            "last_error": "ReadTimeout: an error of an older run",
            "skipped_because": "segments did not finish",
        },
        {
            "stream": "segments",
            "last_success_at": "2026-12-01T18:58:03+00:00",
            "watermark": None,
            "rows": 2,
            "last_status": "failed",
            "last_error": "AuthError: 403: the API key lacks a required scope (GET /api/segments)",
            "skipped_because": None,
        },
    ]
    for width in (80, 100, 120):
        text = fitted_status(rows, width)
        flat = " ".join(text.split())
        assert "skipped because segments did not finish" in flat, text
        assert "older run" not in text and "lacks a required scope" in flat


def failed_after_success(error: str) -> list[dict]:
    """Status rows of one stream that synced before and failed since, with `error`."""
    return [
        {
            "stream": "campaign_messages",
            "last_success_at": "2026-12-01T18:58:03+00:00",
            "watermark": "2026-11-09T02:35:44+00:00",
            "rows": 60000,
            "last_status": "failed",
            "last_error": error,
        }
    ]


def test_a_long_last_error_is_shown_whole_at_80_columns():
    # The error is what a failed stream's row is for; at 80 columns it got 9 cells and each
    # long word was cut: "Retriabl…", "Unavaila…", "/api/eve…".
    error = (
        "RetriableAPIError: 503 Service Unavailable from GET"
        " /api/events/?filter=greater-or-equal(datetime,2026-11-29T08:16:00+00:00) after 7 retries"
    )
    rows = failed_after_success(error)
    for width in (80, 100, 120):
        text = fitted_status(rows, width)
        for word in ("RetriableAPIError:", "Unavailable", "after"):
            assert word in text, (width, text)
        flat = "".join(text.replace("│", "").split())  # a long word folds onto the next lines
        assert "greater-or-equal(datetime,2026-11-29T08:16:00+00:00)" in flat, text


def test_an_error_is_shown_as_it_is_never_read_as_markup():
    # "[schedule]" in an error (the config file's section) vanished: rich read it as a style.
    error = 'turn the stream off in the config file\'s [schedule] (accounts = "off") or [bold]'
    rows = [
        {
            "stream": "accounts",
            "last_success_at": None,
            "watermark": None,
            "rows": 0,
            "last_status": "failed",
            "last_error": error,
        }
    ]
    flat = " ".join(fitted_status(rows, 120).split())
    assert '[schedule] (accounts = "off") or [bold]' in flat, flat


def test_piped_the_status_table_keeps_each_row_on_one_line():
    # Piped or in a log file (no terminal: Rich's 80 columns), the boxed table folded the
    # error's words: "campaign" / "s".
    error = "AuthError: 403: the API key lacks a required scope (GET /api/campaigns) for the campaigns stream"
    rows = failed_after_success(error)
    out = io.StringIO()
    console = Console(file=out)  # not a terminal, as in a pipe
    assert not console.is_terminal and console.width == 80
    print_fitted(console, status_table(rows, NOW, dt.UTC))
    row = next(line for line in out.getvalue().splitlines() if "campaign_messages" in line)
    assert error in row, out.getvalue()
