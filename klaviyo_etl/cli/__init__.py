"""The `klaviyo-etl` command line: a thin shell that parses options and calls the library."""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from klaviyo_etl import REVISION, __version__
from klaviyo_etl.cli.common import ErrorHandlingGroup, LazyCommands, settings_of, typer_command
from klaviyo_etl.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RETRIES,
    Settings,
    default_db_path,
)

__all__ = ["app", "main", "settings_of"]

# httpx 0.28 imports its own command line (`httpx._main`: click, pygments, rich.progress and
# rich.syntax) at `import httpx`, and falls back to a stub when that import fails. We never
# run it, and it is ~0.05 s and ~3 MB of every sync (issue 12), so the CLI process blocks that
# one module (None in sys.modules makes its import fail); httpx itself is unchanged.
sys.modules.setdefault("httpx._main", None)


# One command or group per module, registered in plain sight (commands first, then groups,
# as `--help` lists them). Each module is imported only when its command runs (issue 12:
# `--help` and `report campaigns` start in < 0.3 s), so the root lists each command by the
# summary below; tests/cli/test_startup.py fails if one drifts from the command's own help.
SUMMARIES = {
    "sync": "Sync streams from Klaviyo into the database (incremental by default).",
    "status": "Per stream: last success, watermark, rows, last run, last error.",
    "check": "Check the API key's scopes, the pinned revision, and our figures against Klaviyo's.",
    "purge": "Delete outright what reconciliation only flags, for users who must prove erasure.",
    "migrate": "Apply database migrations (idempotent).",
    "sandbox": "A local server that speaks Klaviyo's API over generated data.",
    "report": "Reports from the local database: overview, campaigns, flows, forms, segments, lists,"
    " metric, rfm, cohorts, dashboard.",
    "schedule": "Sync each stream on its own schedule (see `klaviyo-etl config`).",
    "config": "Show the config file (schedules, sync windows, defaults) or create one.",
    "export": "Write the database out as files other engines read (Parquet).",
}


def load_command(name: str):
    """The command `name` of the root, its module imported now."""
    if name == "sync":
        from klaviyo_etl.cli.sync import sync as target
    elif name == "status":
        from klaviyo_etl.cli.status import status as target
    elif name == "check":
        from klaviyo_etl.cli.check import check as target
    elif name == "purge":
        from klaviyo_etl.cli.purge import purge as target
    elif name == "migrate":
        from klaviyo_etl.cli.migrate import app as target
    elif name == "sandbox":
        from klaviyo_etl.cli.sandbox import app as target
    elif name == "report":
        from klaviyo_etl.cli.report import app as target
    elif name == "schedule":
        from klaviyo_etl.cli.schedule import app as target
    elif name == "config":
        from klaviyo_etl.cli.config import app as target
    elif name == "export":
        from klaviyo_etl.cli.export import app as target
    else:
        raise KeyError(name)
    return typer_command(name, target)


class RootGroup(ErrorHandlingGroup):
    """The root: its commands load on first use (see `LazyCommands`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(dict(SUMMARIES), load_command)


app = typer.Typer(
    cls=RootGroup,
    help="Extract Klaviyo into SQLite, keep it fresh, and report on it.\n\n"
    "--db, --base-url, --revision, --retries, --request-timeout, --allow-insecure and -v/-q may also"
    " follow the"
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
    ] = DEFAULT_RETRIES,
    request_timeout: Annotated[
        float | None,
        typer.Option(
            "--request-timeout",
            envvar="KLAVIYO_ETL_REQUEST_TIMEOUT",
            metavar="SECONDS",
            help="Seconds to wait for an answer before a request is retried (at most 600)"
            f" [default: config, else {DEFAULT_REQUEST_TIMEOUT:g}].",
            show_default=False,
        ),
    ] = None,
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
        request_timeout=DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout,
    )
    level = logging.DEBUG if verbose else logging.ERROR if verbose is False else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main() -> None:
    try:
        sys.exit(app())
    finally:
        # The process ends here: what is alive now (every module, a sync's last objects)
        # goes out of the cycle collector's sight, so the interpreter's exit frees it without
        # walking it all once more (issue 12: 0.05-0.2 s of every run, ~0.01 s frozen).
        gc.freeze()
