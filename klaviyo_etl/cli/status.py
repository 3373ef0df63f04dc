"""`klaviyo-etl status`: how fresh each stream is and how its last run ended.

Times read compactly (`18:58` today, `3 h ago`, `2 d ago`, a date past two months), in the
local time zone; `--json` keeps the stored ISO strings.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from klaviyo_etl.cli.common import settings_of


def compact_time(value: str | None, now: dt.datetime | None = None, tz: dt.tzinfo | None = None) -> str:
    """An ISO time as `18:58` (today), `3 h ago`, `2 d ago` or `2026-01-05` (older than 60
    days, or ahead of `now` on another day); "" for none. `tz` None: the local zone."""
    if not value:
        return ""
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    when, now = when.astimezone(tz), now.astimezone(tz)
    if when.date() == now.date():
        return when.strftime("%H:%M")
    age = (now - when).total_seconds()
    if 0 < age < 86400:
        return f"{int(age // 3600)} h ago"
    if 0 < age < 60 * 86400:
        return f"{int(age // 86400)} d ago"
    return when.date().isoformat()


def status(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per stream: last success, watermark, rows, last run, last error."""
    from klaviyo_etl.db import open_database
    from klaviyo_etl.sync.status import stream_status

    rows = stream_status(open_database(settings_of(ctx).db_path, create=False))
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    Console().print(status_table(rows))


def status_table(rows: list[dict], now: dt.datetime | None = None, tz: dt.tzinfo | None = None) -> Table:
    """The rows of `stream_status` as the table `status` prints."""
    streams = max((len(r["stream"]) for r in rows), default=6)
    table = Table(
        Column("stream", no_wrap=True, min_width=streams),
        Column("last success", no_wrap=True),
        Column("watermark", no_wrap=True),
        Column("rows", justify="right", no_wrap=True),
        Column("last run", no_wrap=True),
        "last error",
    )
    for r in rows:
        table.add_row(
            r["stream"],
            compact_time(r["last_success_at"], now, tz) or "never",
            compact_time(r["watermark"], now, tz),
            f"{r['rows']:,}",
            r["last_status"] or "",
            r["last_error"] or "",
            style="red" if r["last_status"] == "failed" else None,
        )
    return table
