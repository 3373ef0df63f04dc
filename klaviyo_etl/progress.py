"""Showing a sync as it runs: Rich bars on a terminal, plain log lines elsewhere, nothing when quiet.

A stream that knows its time range (events, profiles: the windowed streams) reports how
much of it is read (`covered`: seconds read, seconds in all); its line then shows percent
done and an ETA, projected from the time taken so far, and not only a page count.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from klaviyo_etl.sync.options import StreamResult
from klaviyo_etl.timeutil import log_stamp
from klaviyo_etl.wording import counted

if TYPE_CHECKING:
    from rich.console import Console

Covered = tuple[float, float] | None  # (seconds of the time range read, seconds in it)


def duration(seconds: float) -> str:
    """A duration as people say it: 45s, 4m 05s, 1h 12m, 2d 3h."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def done_and_eta(covered: Covered, elapsed: float) -> tuple[float, float | None] | None:
    """(fraction done, seconds left or None while nothing is read yet), or None for a
    stream that does not know its range."""
    if not covered or covered[1] <= 0:
        return None
    fraction = min(max(covered[0] / covered[1], 0.0), 1.0)
    if fraction <= 0:
        return fraction, None
    return fraction, elapsed * (1 - fraction) / fraction


def describe_done(covered: Covered, elapsed: float) -> str:
    """`42% ETA 1h 12m` (or `0%` before the first page); "" without a known range."""
    estimate = done_and_eta(covered, elapsed)
    if estimate is None:
        return ""
    fraction, left = estimate
    percent = f"{int(fraction * 100)}%"
    return percent if left is None else f"{percent} ETA {duration(left)}"


class RichProgress:
    """One line per stream: pages, rows, rows per second, and percent done with an ETA
    for the streams that know their time range."""

    def __init__(self, console: Console | None = None):
        # Rich's console and bars load here, for a terminal only: cron and --json runs use
        # LogProgress and skip them (issue 12: an incremental run's memory and start-up).
        from rich.console import Console
        from rich.progress import Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.fields[status]:>2} [bold]{task.description:<16}"),
            TextColumn("{task.fields[pages]:>6} pages {task.fields[rows]:>10,} rows"),
            TextColumn("{task.fields[rate]:>8,.0f} rows/s"),
            TextColumn("{task.fields[done]:<16}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.done: dict[str, str] = {}

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def start(self, stream: str) -> None:
        self.started[stream] = time.monotonic()
        self.tasks[stream] = self.bar.add_task(
            stream, total=None, status="…", pages=0, rows=0, rate=0.0, done=""
        )

    def advance(self, stream: str, rows: int, pages: int, requests: int, covered: Covered = None) -> None:
        elapsed = max(time.monotonic() - self.started[stream], 1e-6)
        self.done[stream] = describe_done(covered, elapsed)
        self.bar.update(
            self.tasks[stream], pages=pages, rows=rows, rate=rows / elapsed, done=self.done[stream]
        )

    def finish(self, result: StreamResult) -> None:
        mark = {"ok": "✓", "failed": "✗", "skipped": "-", "stopped": "■"}.get(result.status, "?")
        if result.stream not in self.tasks:  # skipped: the stream it reads from did not finish
            self.start(result.stream)
        elapsed = max(time.monotonic() - self.started[result.stream], 1e-6)
        task = self.tasks[result.stream]
        done = self.done.get(result.stream, "")
        if result.status == "ok" and done:
            done = "100%"
        self.bar.update(
            task, status=mark, pages=result.pages, rows=result.rows, rate=result.rows / elapsed, done=done
        )
        self.bar.stop_task(task)  # freezes its elapsed time at the stream's own duration
        from rich.text import Text

        if result.status == "skipped":
            self.console.print(Text(f"  {skipped_text(result)}", style="yellow"))
        elif result.error:
            # Text, not markup: an error may contain [brackets] or numbers Rich would restyle.
            self.console.print(Text(f"  {result.stream}: {result.error}", style="red"))
        if result.warnings:
            self.console.print(Text(f"  {result.stream}: {warnings_text(result.warnings)}", style="yellow"))


def skipped_text(result: StreamResult) -> str:
    return f"{result.stream}: skipped because {result.error}"


def warnings_text(count: int) -> str:
    return f"{counted(count, 'value')} not readable as numbers, kept raw in `attributes`"


class LogProgress:
    """For cron and pipes: a line when each stream starts and ends, errors always, and for
    a stream that knows its range a line with percent done and ETA at most every `every`
    seconds."""

    def __init__(self, quiet: bool = False, every: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.quiet = quiet
        self.every = every
        self.clock = clock
        self.started: dict[str, float] = {}
        self.said: dict[str, float] = {}

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _line(self, text: str, err: bool = False) -> None:
        typer.echo(f"{log_stamp()} {text}", err=err)

    def start(self, stream: str) -> None:
        self.started[stream] = self.said[stream] = self.clock()
        if not self.quiet:
            self._line(f"{stream}: started")

    def advance(self, stream: str, rows: int, pages: int, requests: int, covered: Covered = None) -> None:
        now = self.clock()
        if self.quiet or covered is None or now - self.said.get(stream, now) < self.every:
            return
        self.said[stream] = now
        done = describe_done(covered, now - self.started.get(stream, now))
        self._line(f"{stream}: {done}, {counted(rows, 'row', grouped=True)}, {counted(pages, 'page')}")

    def finish(self, result: StreamResult) -> None:
        secs = self.clock() - self.started.get(result.stream, self.clock())
        if result.status == "failed":
            self._line(f"{result.stream}: FAILED after {secs:.1f}s: {result.error}", err=True)
        elif result.status == "skipped":  # not synced: said even when quiet, like a failure
            self._line(skipped_text(result), err=True)
        elif not self.quiet:
            self._line(
                f"{result.stream}: {result.status} {counted(result.rows, 'row', grouped=True)},"
                f" {counted(result.pages, 'page')}, {counted(result.requests, 'request')},"
                f" {result.throttled} throttled in {secs:.1f}s"
            )
        if result.warnings:
            self._line(f"{result.stream}: {warnings_text(result.warnings)}", err=True)


def progress_for(quiet: bool, json_output: bool) -> RichProgress | LogProgress:
    if quiet or json_output or not sys.stderr.isatty():
        return LogProgress(quiet=quiet or json_output)
    return RichProgress()


class AccountProgress:
    """One account's view of the shared display: its streams show as `ACCOUNT/stream`."""

    def __init__(self, inner: RichProgress | LogProgress, account: str):
        self.inner, self.account = inner, account

    def _name(self, stream: str) -> str:
        return f"{self.account}/{stream}"

    def start(self, stream: str) -> None:
        self.inner.start(self._name(stream))

    def advance(self, stream: str, rows: int, pages: int, requests: int, covered: Covered = None) -> None:
        self.inner.advance(self._name(stream), rows, pages, requests, covered)

    def finish(self, result: StreamResult) -> None:
        self.inner.finish(dataclasses.replace(result, stream=self._name(result.stream)))
