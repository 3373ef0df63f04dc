"""`klaviyo-etl status`: how fresh each stream is and how its last run ended.

Times read compactly (`18:58` today, `3 h ago`, `2 d ago`, a date past two months), in the
local time zone; `--json` keeps the stored ISO strings.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from klaviyo_etl.cli.account_options import account_options, exit_if_failed
from klaviyo_etl.cli.common import unboxed_to_fit

if TYPE_CHECKING:
    from klaviyo_etl.accounts import AccountTarget


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


@account_options
def status(
    ctx: typer.Context,
    accounts: list[AccountTarget] | None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per stream: last success, watermark, rows, last run, last error.

    With several accounts, one table per account (JSON: `account` on every row); an account
    whose database cannot be read is reported under its name, and the exit code is 1.
    """
    from klaviyo_etl.db import open_database
    from klaviyo_etl.errors import DatabaseError
    from klaviyo_etl.sync.status import stream_status

    if accounts is None:
        from klaviyo_etl.cli.config import configured

        rows = stream_status(open_database(configured(ctx)[0].db_path, create=False))
        if json_output:
            typer.echo(json.dumps(rows, indent=2))
            return
        console = Console()
        print_fitted(console, status_table(rows, width=console.width if console.is_terminal else None))
        return
    by_account: dict[str, list[dict]] = {}
    failed: dict[str, str] = {}
    for account in accounts:
        try:
            db = open_database(account.settings.db_path, create=False)
        except DatabaseError as exc:
            failed[account.name] = str(exc)
            continue
        try:
            by_account[account.name] = stream_status(db)
        finally:
            db.close()
    if json_output:
        rows = [{"account": name, **row} for name, rows in by_account.items() for row in rows]
        errors = [{"account": name, "error": error} for name, error in failed.items()]
        typer.echo(json.dumps(rows + errors, indent=2))
    else:
        console = Console()
        for account in accounts:
            if account.name in by_account:
                width = console.width if console.is_terminal else None
                table = status_table(by_account[account.name], width=width)
                table.title, table.title_justify = f"{account.name} ({account.settings.db_path})", "left"
                print_fitted(console, table)
    exit_if_failed(failed)


def print_fitted(console: Console, table: Table) -> None:
    """Print `table`; piped or to a log file, as wide as it needs, as a report is: each row on
    one line. At the pipe's 80 columns the boxed table folded the error's words ("campaign" /
    "s")."""
    if not console.is_terminal:
        from klaviyo_etl.reports.render import widen_for

        widen_for(console, table)
    console.print(table)


def status_table(
    rows: list[dict], now: dt.datetime | None = None, tz: dt.tzinfo | None = None, width: int | None = None
) -> Table:
    """The rows of `stream_status` as the table `status` prints; on a terminal `width` cells
    wide that the boxed table would not fit, without its lines (as the reports), so the last
    error gets the room. A long word of the error folds onto the next line, never cut: at
    80 columns it read "Retriabl…", "/api/eve…"."""
    streams = max((len(r["stream"]) for r in rows), default=6)
    table = Table(
        Column("stream", no_wrap=True, min_width=streams),
        Column("last success", no_wrap=True),
        Column("watermark", no_wrap=True),
        Column("rows", justify="right", no_wrap=True),
        Column("last run", no_wrap=True),
        Column("last error", overflow="fold"),
    )
    for r in rows:
        # A skipped run's reason explains the row better than an older error of its own.
        skipped = r.get("skipped_because")
        table.add_row(
            r["stream"],
            compact_time(r["last_success_at"], now, tz) or "never",
            compact_time(r["watermark"], now, tz),
            f"{r['rows']:,}",
            r["last_status"] or "",
            # Text, not markup: an error's own "[schedule]" or "[/api/x]" is shown as it is.
            Text(f"because {skipped}" if skipped else r["last_error"] or ""),
            style="red" if r["last_status"] == "failed" else "yellow" if skipped else None,
        )
    unboxed_to_fit(table, width)
    return table
