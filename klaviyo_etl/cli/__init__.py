"""The `klaviyo-etl` command line: a thin shell that parses options and calls the library."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from klaviyo_etl import REVISION, __version__
from klaviyo_etl.cli import (
    check,
    config,
    export,
    migrate,
    purge,
    report,
    sandbox,
    schedule,
    status,
    sync,
)
from klaviyo_etl.cli.common import ErrorHandlingGroup, settings_of
from klaviyo_etl.settings import DEFAULT_BASE_URL, Settings, default_db_path

__all__ = ["app", "main", "settings_of"]


app = typer.Typer(
    cls=ErrorHandlingGroup,
    help="Extract Klaviyo into SQLite, keep it fresh, and report on it.\n\n"
    "--db, --base-url, --revision, --retries, --allow-insecure and -v/-q may also follow the"
    " subcommand"
    " (`klaviyo-etl sync all --quiet`);"
    " given twice, the later one wins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"klaviyo-etl {__version__} (API revision {REVISION})")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    db: Annotated[
        Path,
        typer.Option("--db", envvar="KLAVIYO_ETL_DB", help="SQLite file to sync into and report from."),
    ] = default_db_path(),
    base_url: Annotated[
        str,
        typer.Option("--base-url", metavar="URL", envvar="KLAVIYO_BASE_URL", help="Klaviyo API base URL."),
    ] = DEFAULT_BASE_URL,
    revision: Annotated[
        str,
        typer.Option(
            "--revision", metavar="REVISION", envvar="KLAVIYO_REVISION", help="Klaviyo API revision."
        ),
    ] = REVISION,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            envvar="KLAVIYO_ETL_RETRIES",
            min=0,
            help="Retries per request for 429s, 5xx and dropped connections.",
        ),
    ] = 7,
    verbose: Annotated[
        bool, typer.Option("--verbose/--quiet", "-v/-q", help="More detail, or errors only.")
    ] = None,  # type: ignore[assignment]
    allow_insecure: Annotated[
        bool,
        typer.Option(
            "--allow-insecure",
            help="Send the API key over plain http:// to a host that is not loopback.",
        ),
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """Global options; the API key comes only from KLAVIYO_API_KEY so it never lands in shell history."""
    ctx.obj = Settings(
        db_path=db,
        api_key=os.environ.get("KLAVIYO_API_KEY") or None,
        base_url=base_url.rstrip("/"),
        revision=revision,
        verbose=bool(verbose),
        quiet=verbose is False,
        retries=retries,
        allow_insecure=allow_insecure,
    )
    level = logging.DEBUG if verbose else logging.ERROR if verbose is False else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


# One command or group per module, registered in plain sight (commands first, then groups,
# as `--help` lists them).
app.command("sync")(sync.sync)
app.command("status")(status.status)
app.command("check")(check.check)
app.command("purge")(purge.purge)
app.add_typer(migrate.app, name="migrate")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(report.app, name="report")
app.add_typer(schedule.app, name="schedule")
app.add_typer(config.app, name="config")
app.add_typer(export.app, name="export")


def main() -> None:
    sys.exit(app())
