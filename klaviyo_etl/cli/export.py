"""`klaviyo-etl export parquet DIR`: the database as Parquet files for a warehouse engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from klaviyo_etl.cli.account_options import account_options, exit_if_failed

if TYPE_CHECKING:
    from klaviyo_etl.accounts import AccountTarget
    from klaviyo_etl.export import ExportResult

app = typer.Typer(help="Write the database out as files other engines read (Parquet).", no_args_is_help=True)


@app.command("parquet")
@account_options
def parquet(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to write (created if missing).")],
    accounts: list[AccountTarget] | None,
    full: Annotated[bool, typer.Option("--full", help="Rewrite every file, changed or not.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write every public table as Parquet into DIR, rewriting only what changed since the last export.

    Events go to DIR/events/date=YYYY-MM-DD/part-0.parquet (one file per day), every other
    table to DIR/TABLE/TABLE.parquet. Each file is replaced atomically; an interrupted export
    leaves the previous files readable and the next one finishes the job. With --account or
    --all-accounts, each account's files go under DIR/TABLE/account=NAME/, which engines read
    as one table with an `account` column; an account whose database cannot be read is
    reported under its name, and the exit code is 1. The files of an account no longer in
    the config are removed by an export of every configured account (--all-accounts), and
    named by an export of some.

        klaviyo-etl export parquet ./warehouse
    """
    from klaviyo_etl.cli.config import configured
    from klaviyo_etl.db import open_database
    from klaviyo_etl.db.lock import check_writable
    from klaviyo_etl.errors import DatabaseError
    from klaviyo_etl.export import account_partitions, export_parquet, remove_account

    settings = configured(ctx)[0]  # with the config file's [defaults], as sync
    if accounts is None:
        check_writable(settings.db_path)  # the export records what it wrote in the database
        db = open_database(settings.db_path, create=False)
        try:
            result = export_parquet(db, directory, full=full)
        finally:
            db.close()
        if json_output:
            typer.echo(json.dumps(result.as_dict(), indent=2))
            return
        _say(result, settings.verbose, settings.quiet)
        return
    done: list[dict] = []
    failed: dict[str, str] = {}
    for account in accounts:
        try:
            check_writable(account.settings.db_path)
            db = open_database(account.settings.db_path, create=False)
            try:
                result = export_parquet(db, directory, account=account.name, full=full)
            finally:
                db.close()
        except DatabaseError as exc:  # this account's database: the others are exported
            failed[account.name] = str(exc)
            done.append({"account": account.name, "ok": False, "error": str(exc)})
            continue
        done.append({"account": account.name, "ok": True, **result.as_dict()})
        if not json_output:
            _say(result, settings.verbose, settings.quiet, prefix=f"{account.name}: ")
    # An account taken out of the config: its partitions would go on counting in every engine.
    configured_names = set(accounts[0].config.accounts) if accounts else set()
    gone = sorted(account_partitions(directory) - configured_names)
    removed: list[str] = []
    if gone and {a.name for a in accounts} >= configured_names:  # the export of every account
        for name in gone:
            folders = remove_account(directory, name)
            removed.append(name)
            if settings.verbose and not json_output:
                for folder in folders:
                    typer.echo(f"removed {folder}")
            if not settings.quiet and not json_output:
                typer.echo(
                    f"{name}: removed its files ({len(folders)} table folders): not in the config any more"
                )
    elif gone and not settings.quiet:
        typer.echo(
            f"Note: {directory} also holds the files of {', '.join(gone)}, not in the config any more:"
            " engines count their rows in every table; an export with --all-accounts removes them",
            err=True,
        )
    if json_output:
        typer.echo(json.dumps({"ok": not failed, "accounts": done, "removed_accounts": removed}, indent=2))
    exit_if_failed(failed)


def _say(result: ExportResult, verbose: bool, quiet: bool, prefix: str = "") -> None:
    if verbose:
        for path in result.written:
            typer.echo(f"{prefix}wrote {path}")
        for path in result.removed:
            typer.echo(f"{prefix}removed {path}")
    if not quiet:
        typer.echo(
            f"{prefix}{result.target}: wrote {len(result.written)} file(s), {result.rows:,} rows;"
            f" {result.unchanged} unchanged; removed {len(result.removed)}"
        )
