import io

from rich.console import Console

from klaviyo_etl.progress import LogProgress, RichProgress, describe_done, duration
from klaviyo_etl.sync.engine import StreamResult


def test_rich_progress_shows_a_line_per_stream_with_pages_rows_and_rate():
    out = io.StringIO()
    with RichProgress(Console(file=out, force_terminal=True, width=120)) as progress:
        progress.start("events")
        progress.advance("events", rows=2000, pages=2, requests=2)
        progress.finish(StreamResult("events", "ok", rows=2500, pages=3))
        progress.start("flows")
        progress.finish(StreamResult("flows", "failed", error="TransientError: 503"))
    text = out.getvalue()
    assert "events" in text and "2,500 rows" in text and "3 pages" in text and "rows/s" in text
    assert "flows: TransientError: 503" in text


def test_log_progress_is_plain_lines_and_quiet_keeps_only_failures(capsys):
    progress = LogProgress()
    progress.start("tags")
    progress.finish(StreamResult("tags", "ok", rows=5, pages=1, requests=1))
    quiet = LogProgress(quiet=True)
    quiet.start("forms")
    quiet.finish(StreamResult("forms", "ok", rows=3))
    quiet.finish(StreamResult("flows", "failed", error="boom"))
    captured = capsys.readouterr()
    assert (
        "tags: started" in captured.out
        and "tags: ok 5 rows, 1 page, 1 request, 0 throttled in" in captured.out
    )
    assert "forms" not in captured.out
    assert "flows: FAILED" in captured.err and "\x1b[" not in captured.out


def test_log_lines_count_in_words_as_the_rest_of_the_tool_does(capsys):
    progress = LogProgress()
    progress.finish(StreamResult("accounts", "ok", rows=1, pages=1, requests=1))
    progress.finish(StreamResult("events", "ok", rows=12345, pages=13, requests=14))
    progress.start("profiles")
    progress.clock = lambda: 10**6  # a minute and more later: a progress line is due
    progress.advance("profiles", rows=1, pages=1, requests=1, covered=(1.0, 2.0))
    out = capsys.readouterr().out
    assert "accounts: ok 1 row, 1 page, 1 request, 0 throttled in" in out
    assert "events: ok 12,345 rows, 13 pages, 14 requests, 0 throttled in" in out
    assert "profiles: 50% ETA" in out and ", 1 row, 1 page" in out


def test_a_stream_that_knows_its_range_shows_percent_done_and_an_eta():
    assert describe_done((25.0, 100.0), elapsed=60) == "25% ETA 3m 00s"
    assert describe_done((0.0, 100.0), elapsed=5) == "0%"
    assert describe_done(None, elapsed=5) == ""
    assert duration(4000) == "1h 06m" and duration(45) == "45s" and duration(2 * 86400 + 7200) == "2d 2h"


def test_rich_progress_shows_percent_and_eta_for_a_windowed_stream():
    out = io.StringIO()
    with RichProgress(Console(file=out, force_terminal=True, width=120)) as progress:
        progress.start("events")
        progress.advance("events", rows=2000, pages=2, requests=2, covered=(3600.0, 4 * 3600.0))
    assert "25% ETA" in out.getvalue()


def test_log_progress_prints_percent_and_eta_lines_off_a_terminal(capsys):
    now = [0.0]
    progress = LogProgress(every=60, clock=lambda: now[0])
    progress.start("events")
    now[0] = 30.0
    progress.advance("events", rows=100, pages=1, requests=1, covered=(10.0, 100.0))  # too soon
    now[0] = 120.0
    progress.advance("events", rows=5000, pages=5, requests=5, covered=(40.0, 100.0))
    progress.advance("tags", rows=5, pages=1, requests=1)  # no range: no line
    out = capsys.readouterr().out
    assert "events: 10%" not in out
    assert "events: 40% ETA 3m 00s, 5,000 rows, 5 pages" in out
    assert "tags" not in out


def test_each_accounts_streams_show_under_its_name_in_one_display(capsys):
    from klaviyo_etl.progress import AccountProgress

    shared = LogProgress()
    acme, globex = AccountProgress(shared, "acme"), AccountProgress(shared, "globex")
    acme.start("events")
    globex.start("events")
    result = StreamResult("events", "failed", error="boom")
    globex.finish(result)
    acme.finish(StreamResult("events", "ok", rows=5, pages=1))
    captured = capsys.readouterr()
    assert "acme/events: started" in captured.out and "globex/events: started" in captured.out
    assert "acme/events: ok 5 rows" in captured.out
    assert "globex/events: FAILED" in captured.err
    assert result.stream == "events"  # the engine's own result keeps the stream's name


def test_a_stream_skipped_before_it_started_shows_with_its_reason():
    out = io.StringIO()
    with RichProgress(Console(file=out, force_terminal=True, width=120)) as progress:
        progress.start("segments")
        progress.finish(StreamResult("segments", "failed", error="AuthError: 403"))
        progress.finish(StreamResult("segment_members", "skipped", error="segments did not finish"))
    text = out.getvalue()
    assert "segment_members" in text and "skipped because segments did not finish" in text


def test_log_progress_says_a_skipped_stream_and_why_even_when_quiet(capsys):
    LogProgress(quiet=True).finish(StreamResult("reports", "skipped", error="events did not finish"))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "reports: skipped because events did not finish" in captured.err
