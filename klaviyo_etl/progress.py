"""Showing a sync as it runs: Rich bars on a terminal, plain log lines elsewhere, nothing when quiet."""

from __future__ import annotations

import sys
import time

import typer
from rich.console import Console
from rich.progress import Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from klaviyo_etl.sync.engine import StreamResult


class RichProgress:
    """One line per stream: pages, rows, rows per second."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.fields[status]:>2} [bold]{task.description:<16}"),
            TextColumn("{task.fields[pages]:>6} pages {task.fields[rows]:>10,} rows"),
            TextColumn("{task.fields[rate]:>8,.0f} rows/s"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.started: dict[str, float] = {}

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def start(self, stream: str) -> None:
        self.started[stream] = time.monotonic()
        self.tasks[stream] = self.bar.add_task(stream, total=None, status="…", pages=0, rows=0, rate=0.0)

    def advance(self, stream: str, rows: int, pages: int, requests: int) -> None:
        elapsed = max(time.monotonic() - self.started[stream], 1e-6)
        self.bar.update(self.tasks[stream], pages=pages, rows=rows, rate=rows / elapsed)

    def finish(self, result: StreamResult) -> None:
        mark = {"ok": "✓", "failed": "✗", "skipped": "-", "stopped": "■"}.get(result.status, "?")
        elapsed = max(time.monotonic() - self.started[result.stream], 1e-6)
        task = self.tasks[result.stream]
        self.bar.update(task, status=mark, pages=result.pages, rows=result.rows, rate=result.rows / elapsed)
        self.bar.stop_task(task)  # freezes its elapsed time at the stream's own duration
        if result.error:
            # Text, not markup: an error may contain [brackets] or numbers Rich would restyle.
            self.console.print(Text(f"  {result.stream}: {result.error}", style="red"))
        if result.warnings:
            self.console.print(Text(f"  {result.stream}: {warnings_text(result.warnings)}", style="yellow"))


def warnings_text(count: int) -> str:
    return f"{count} value{'s' if count != 1 else ''} not readable as numbers, kept raw in `attributes`"


class LogProgress:
    """For cron and pipes: a line when each stream starts and ends, errors always."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.started: dict[str, float] = {}

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _line(self, text: str, err: bool = False) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        typer.echo(f"{stamp} {text}", err=err)

    def start(self, stream: str) -> None:
        self.started[stream] = time.monotonic()
        if not self.quiet:
            self._line(f"{stream}: started")

    def advance(self, stream: str, rows: int, pages: int, requests: int) -> None:
        return None

    def finish(self, result: StreamResult) -> None:
        secs = time.monotonic() - self.started.get(result.stream, time.monotonic())
        if result.status == "failed":
            self._line(f"{result.stream}: FAILED after {secs:.1f}s: {result.error}", err=True)
        elif not self.quiet:
            self._line(
                f"{result.stream}: {result.status} {result.rows} rows, {result.pages} pages, "
                f"{result.requests} requests, {result.throttled} throttled in {secs:.1f}s"
            )
        if result.warnings:
            self._line(f"{result.stream}: {warnings_text(result.warnings)}", err=True)


def progress_for(quiet: bool, json_output: bool) -> RichProgress | LogProgress:
    if quiet or json_output or not sys.stderr.isatty():
        return LogProgress(quiet=quiet or json_output)
    return RichProgress()
