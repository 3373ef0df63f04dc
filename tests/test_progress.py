import io

from rich.console import Console

from klaviyo_etl.progress import LogProgress, RichProgress
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
    assert "tags: started" in captured.out and "tags: ok 5 rows, 1 pages" in captured.out
    assert "forms" not in captured.out
    assert "flows: FAILED" in captured.err and "\x1b[" not in captured.out
