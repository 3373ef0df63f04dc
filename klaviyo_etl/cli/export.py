"""`klaviyo-etl export parquet DIR`: the database as Parquet files for a warehouse engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from klaviyo_etl.cli.common import settings_of

app = typer.Typer(help="Write the database out as files other engines read (Parquet).", no_args_is_help=True)


@app.command("parquet")
def parquet(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to write (created if missing).")],
    # SEAM(accounts): until `--account NAME` exists, the label is given by hand; with several
    # accounts the CLI passes each account's name as `account=` and its own DIR.
    account_label: Annotated[
        str | None,
        typer.Option(
            "--account-label",
            metavar="NAME",
            help="Add an `account` column holding NAME to every file (several accounts, one warehouse).",
        ),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Rewrite every file, changed or not.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write every public table as Parquet into DIR, rewriting only what changed since the last export.

    Events go to DIR/events/date=YYYY-MM-DD/part-0.parquet (one file per day), every other
    table to DIR/TABLE/TABLE.parquet. Each file is replaced atomically; an interrupted export
    leaves the previous files readable and the next one finishes the job.

        klaviyo-etl export parquet ./warehouse
    """
    from klaviyo_etl.db import open_database
    from klaviyo_etl.export import export_parquet

    settings = settings_of(ctx)
    db = open_database(settings.db_path, create=False)
    try:
        result = export_parquet(db, directory, account=account_label, full=full)
    finally:
        db.close()
    if json_output:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    if settings.verbose:
        for path in result.written:
            typer.echo(f"wrote {path}")
        for path in result.removed:
            typer.echo(f"removed {path}")
    if not settings.quiet:
        typer.echo(
            f"{result.target}: wrote {len(result.written)} file(s), {result.rows:,} rows;"
            f" {result.unchanged} unchanged; removed {len(result.removed)}"
        )
