"""The `klaviyo-etl` command line: a thin shell that parses options and calls the library."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from klaviyo_etl import REVISION, __version__
from klaviyo_etl.errors import KlaviyoEtlError
from klaviyo_etl.settings import DEFAULT_BASE_URL, Settings, default_db_path


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


class ErrorHandlingGroup(TyperGroup):
    """Turn every library error into one line on stderr and an exit code, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KlaviyoEtlError as exc:
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except Exception as exc:
            if type(exc).__module__.startswith(("typer", "click")):
                raise  # Exit, Abort and usage errors are the CLI framework's own signals
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            if settings and settings.verbose:
                raise
            # a bug: still one line; the traceback only with --verbose
            raise _fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --verbose)", 1) from None


app = typer.Typer(
    cls=ErrorHandlingGroup,
    help="Extract Klaviyo into SQLite, keep it fresh, and report on it.",
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
        typer.Option("--base-url", envvar="KLAVIYO_BASE_URL", help="Klaviyo API base URL."),
    ] = DEFAULT_BASE_URL,
    revision: Annotated[
        str, typer.Option("--revision", envvar="KLAVIYO_REVISION", help="Klaviyo API revision.")
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
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """Global options; the API key comes only from KLAVIYO_API_KEY so it never lands in shell history."""
    import os

    ctx.obj = Settings(
        db_path=db,
        api_key=os.environ.get("KLAVIYO_API_KEY") or None,
        base_url=base_url.rstrip("/"),
        revision=revision,
        verbose=bool(verbose),
        quiet=verbose is False,
        retries=retries,
    )
    level = logging.DEBUG if verbose else logging.ERROR if verbose is False else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def settings_of(ctx: typer.Context) -> Settings:
    return ctx.find_root().obj


def _register() -> None:
    from klaviyo_etl.cli import migrate as migrate_cli

    app.add_typer(migrate_cli.app, name="migrate")
    for module_name in ("sandbox", "sync", "report", "schedule", "status", "config"):
        try:
            module = __import__(f"klaviyo_etl.cli.{module_name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"klaviyo_etl.cli.{module_name}":
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    sys.exit(app())
