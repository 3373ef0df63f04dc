"""`klaviyo-etl check`: the key, the revision and our figures against the account itself.

The work is in `klaviyo_etl.check`; this module parses options, prints and picks the exit code.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Annotated

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from klaviyo_etl.cli.account_options import account_options
from klaviyo_etl.cli.common import word_choice
from klaviyo_etl.cli.report_options import report_options
from klaviyo_etl.reports.periods import Period
from klaviyo_etl.settings import Settings
from klaviyo_etl.wording import counted

if TYPE_CHECKING:
    from klaviyo_etl.accounts import AccountTarget
    from klaviyo_etl.check import Access, Figures
    from klaviyo_etl.config_values import Config

Tolerance = Annotated[
    float,
    typer.Option(
        "--tolerance",
        min=0,
        help="Relative difference at or below which figures agree (0.02 = 2 %).",
    ),
]
Floor = Annotated[
    float,
    typer.Option(
        "--floor",
        min=0,
        help="Absolute difference at or below which figures agree (1: one event or one unit of money).",
    ),
]
Sync = Annotated[
    bool,
    typer.Option(
        "--sync",
        help="Sync what the comparison reads first (accounts, metrics, events, campaigns, flows, reports).",
    ),
]
Format = Annotated[str, typer.Option("--format", "-f", help="table | json.", callback=word_choice)]


@report_options(compare=False, output=False)
@account_options
def check(
    ctx: typer.Context,
    period: Period,
    accounts: list[AccountTarget] | None,
    tolerance: Tolerance = 0.02,
    floor: Floor = 1.0,
    sync: Sync = False,
    fmt: Format = "table",
) -> None:
    """Check the API key's scopes, the pinned revision, and our figures against Klaviyo's.

    The figures: `report campaigns` / `report flows` against Klaviyo's Reporting API figures.
    Exit 0: all good; 1: a scope is missing or figures differ (clicks that differ by
    exactly their bot clicks too, until [reports] exclude_bot_clicks counts them as the
    account does); 2: key rejected, revision retired, or nothing stored to compare yet.
    With several accounts, each is checked under its name and the exit code is the worst
    of theirs.

    Example: KLAVIYO_API_KEY=pk_... klaviyo-etl check --last 30d --sync
    """
    from klaviyo_etl.cli.report import configured_report
    from klaviyo_etl.errors import KlaviyoEtlError, UsageError

    if fmt not in ("table", "json"):
        raise UsageError(f"--format {fmt!r} must be table or json")
    if accounts is None:
        settings, config = configured_report(ctx)
        access, figures, exit_code = _check_one(settings, config, period, tolerance, floor, sync)
        if fmt == "json":
            typer.echo(json.dumps(_json(access, figures, exit_code), indent=2))
        else:
            _print(_console(), access, figures)
        raise typer.Exit(exit_code)
    codes: list[int] = []
    out: list[dict] = []
    console = _console()
    for account in accounts:
        if fmt == "table":
            _say(console, f"account   {account.name} ({account.settings.db_path})", "bold")
        try:
            account.require_api_key()
            access, figures, code = _check_one(
                account.settings, account.config, period, tolerance, floor, sync
            )
        except KlaviyoEtlError as exc:
            message = str(exc).replace("KLAVIYO_API_KEY", account.key_env)
            message = message.removeprefix(f"account {account.name}: ")  # said once, below
            codes.append(exc.exit_code)
            out.append({"account": account.name, "ok": False, "error": message})
            typer.echo(f"Error: account {account.name}: {message}", err=True)
            continue
        codes.append(code)
        out.append({"account": account.name, **_json(access, figures, code)})
        if fmt == "table":
            _print(console, access, figures)
    if fmt == "json":
        typer.echo(json.dumps({"ok": not any(codes), "accounts": out}, indent=2))
    raise typer.Exit(max(codes, default=0))


def _check_one(
    settings: Settings, config: Config, period: Period, tolerance: float, floor: float, sync: bool
) -> tuple[Access, Figures, int]:
    """One account's check: what the probes found, the figures compared, the exit code."""
    from klaviyo_etl.check import (
        CHECK_STREAMS,
        CHECK_SYNC_STREAMS,
        Figures,
        compare_figures,
        run_access_check,
    )
    from klaviyo_etl.db import open_database
    from klaviyo_etl.errors import DatabaseError, NoDatabase
    from klaviyo_etl.sync.engine import SyncOptions, make_client, run_sync

    conversion = config.conversion_metric
    access = run_access_check(make_client(settings))
    if sync:
        result = run_sync(settings, SyncOptions(streams=CHECK_SYNC_STREAMS, conversion_metric=conversion))
        # The account is optional: a key without its scope skips it, and the scopes line says so.
        failed = [s.stream for s in result.streams if s.status != "ok" and s.stream in CHECK_STREAMS]
        if failed:
            typer.echo(f"sync failed for {', '.join(failed)} (see `klaviyo-etl status`)", err=True)
    try:
        db = open_database(settings.db_path, create=False)
    except DatabaseError as exc:  # still show what the probes found
        # Only a missing file is what --sync mends: a file from a newer klaviyo-etl, another
        # program's or an unreadable one stops the sync the same way.
        hint = " (or pass --sync)" if isinstance(exc, NoDatabase) and not sync else ""
        figures = Figures(period, tolerance, floor, {}, [], [f"{exc}{hint}"])
    else:
        try:
            figures = compare_figures(
                db,
                period,
                tolerance=tolerance,
                floor=floor,
                conversion=conversion,
                exclude_bot_clicks=config.exclude_bot_clicks,
            )
        finally:
            db.close()
    problems = access.missing_scopes or access.failed or figures.rows or figures.bot_rows
    exit_code = 2 if figures.advice and not figures.comparable else 1 if problems else 0
    return access, figures, exit_code


def _json(access: Access, figures: Figures, exit_code: int) -> dict:
    return {"ok": exit_code == 0, **access.to_json(), "figures": figures.to_json()}


def _console() -> Console:
    # Names and advice are plain text (a campaign may be called "[Test] Sale"), and Rich
    # does not wrap a finding: piped, each stays on one line; `_say` wraps it on a terminal.
    console = Console(markup=False, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # piped or captured: room for the table
    return console


LABEL = len("revision  ")  # the label column each finding starts with


def _say(console: Console, text: str, style: str | None = None) -> None:
    """One finding on one line; on a terminal narrower than it, wrapped at its spaces, the
    lines after the first under its value (the terminal itself cut words: "ta" / "gs:read")."""
    if console.is_terminal and cell_len(text) > console.width:
        label = text[:LABEL]  # "scopes    ", or blank under one; advice has none
        indent = " " * LABEL if label.endswith(" ") and " " not in label.strip() else ""
        text = "\n".join(
            textwrap.wrap(
                text.replace(" %", "\xa0%"),  # "2 %" stays together
                console.width,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        ).replace("\xa0", " ")
    console.print(text, style=style)


def _print(console: Console, access: Access, figures: Figures) -> None:
    revision = access.to_json()["revision"]
    _say(console, f"key       accepted ({access.key}) at {access.base_url}")
    line = f"revision  {access.revision}: served"
    if revision["age_days"] is not None:
        line += f"; {counted(revision['age_days'], 'day')} old, {revision['policy']} under Klaviyo's policy"
    _say(console, line)
    for name, value in access.headers.items():
        _say(console, f"          {name}: {value}", "yellow")
    if access.missing_scopes or access.failed:
        for probe in access.probes:
            if probe.status == 403 and not probe.optional:
                _say(
                    console, f"scope     missing {probe.scope} (needed by {', '.join(probe.streams)})", "red"
                )
    else:
        needed = [p.scope for p in access.probes if not p.optional]
        line = f"scopes    all {len(needed)} the sync needs: {', '.join(needed)}"
        optional = [p.scope for p in access.probes if p.optional and p.granted]
        _say(console, line + (f", and the optional {', '.join(optional)}" if optional else ""))
    for probe in access.missing_optional:
        _say(
            console,
            f"scope     missing {probe.scope} (optional: {', '.join(probe.streams)} is skipped without it)",
            "yellow",
        )
    for probe in access.failed:
        _say(console, f"          {probe.path} answered {probe.status}: {probe.detail}", "yellow")
    compared = ", ".join(f"{n} {kind}" for kind, n in figures.compared.items()) or "nothing"
    differ = f"{len(figures.rows) + len(figures.bot_rows)} differ"
    if figures.bot_rows:  # they differ (exit 1) until the setting agrees with the account's
        which = f"{len(figures.bot_rows)} of them" if figures.rows else "all"
        differ += f", {which} by exactly their bot clicks (see clicks)"
    _say(
        console,
        f"figures   {compared} compared ({figures.period.describe()}); tolerance"
        f" {figures.tolerance * 100:g} %, floor {figures.floor:g}: {differ}",
    )
    if figures.timezone_note:
        _say(console, f"timezone  {figures.timezone_note}", None if figures.account_synced else "yellow")
    if figures.rows:
        table = Table("Kind", "Name", "Channel", "Timeframe", "Ours vs Klaviyo", title="Differences")
        for row in figures.rows:
            table.add_row(
                row["kind"],
                row["name"],
                row["channel"],
                row["timeframe"],
                "; ".join(
                    f"{figure} {_number(pair['ours'])} vs {_number(pair['klaviyo'])}"
                    for figure, pair in row["differences"].items()
                ),
            )
        console.print(table)
    if figures.bot_clicks_note:
        _say(console, f"clicks    {figures.bot_clicks_note}", "yellow")
    for advice in figures.advice:
        _say(console, advice, "yellow")


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
