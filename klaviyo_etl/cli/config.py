"""`klaviyo-etl config`: where the config file is, what it sets, and a commented starter file."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated

import typer

from klaviyo_etl.cli.common import settings_of
from klaviyo_etl.settings import CONFIG_ENV, Settings, config_path

if TYPE_CHECKING:
    from klaviyo_etl.config_file import Config


def _cf():
    """The config module, loaded when a command needs it (pydantic is slow to import)."""
    from klaviyo_etl import config_file

    return config_file


app = typer.Typer(
    help="Show the config file (schedules, sync windows, defaults) or create one.",
    invoke_without_command=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

# By name: Typer ships its own copy of click, whose ParameterSource is not click's.
_SOURCES = {"COMMANDLINE": "command line", "ENVIRONMENT": "environment"}


def _given(ctx: typer.Context, name: str) -> str | None:
    """How the root option `name` was given ("command line"/"environment"), None if defaulted."""
    source = ctx.find_root().get_parameter_source(name)
    return _SOURCES.get(getattr(source, "name", ""))


def configured(ctx: typer.Context) -> tuple[Settings, Config]:
    """The global settings with the config file's [defaults] applied, and the config itself.

    Without a file, or with one that sets nothing, every value is a default: no validation
    (pydantic) to load, ~0.05 s of a sync's start (issue 12)."""
    from klaviyo_etl.config_values import apply_defaults, default_config, sets_nothing

    path = config_path()
    if sets_nothing(path):
        config = default_config(path, exists=path.exists())
    else:
        config = _cf().load_config()
    settings = apply_defaults(
        settings_of(ctx),
        config,
        db_given=_given(ctx, "db") is not None,
        base_url_given=_given(ctx, "base_url") is not None,
        request_timeout_given=_given(ctx, "request_timeout") is not None,
    )
    return settings, config


def _effective(ctx: typer.Context, settings: Settings, config: Config) -> list[dict]:
    def source(option: str, file_value: object) -> str:
        given = _given(ctx, option)
        if given:
            return given
        return "file" if file_value is not None else "default"

    rows = [
        {"key": "db", "value": str(settings.db_path), "source": source("db", config.db)},
        {"key": "base_url", "value": settings.base_url, "source": source("base_url", config.base_url)},
        {
            "key": "request_timeout",
            "value": f"{settings.request_timeout:g} s",
            "source": source("request_timeout", True if "sync.request_timeout" in config.from_file else None),
        },
    ]
    if config.accounts:
        from klaviyo_etl.accounts import account_target

        for name, account in config.accounts.items():
            target = account_target(settings, config, name)
            rows.append(
                {
                    "key": f"account {name} db",
                    "value": str(target.settings.db_path),
                    "source": "file" if account.db else "beside db",
                }
            )
            rows.append(
                {
                    "key": f"account {name} key",
                    "value": "set" if target.settings.api_key else "NOT SET",
                    "source": f"environment {account.key_env}",
                }
            )
    return rows


def _show(ctx: typer.Context, as_json: bool) -> None:
    settings, config = configured(ctx)
    settings_rows = [{"key": s.key, "value": s.value, "source": s.source} for s in config.settings()]
    effective = _effective(ctx, settings, config)
    from_env = bool(os.environ.get(CONFIG_ENV))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "path": str(config.path),
                    "exists": config.exists,
                    "path_from": CONFIG_ENV if from_env else "default",
                    "settings": settings_rows,
                    "effective": effective,
                },
                indent=2,
            )
        )
        return
    state = (
        "exists"
        if config.exists
        else ("not found, so defaults apply; `klaviyo-etl config init` writes a commented one")
    )
    from rich.console import Console  # only to print: `sync` imports this module for `configured`
    from rich.table import Table
    from rich.text import Text

    console = Console()

    def say(line: str) -> None:
        # On a terminal a long line wraps at its spaces (the terminal cut "confi" / "g init");
        # piped, it stays one line.
        console.print(Text(line), soft_wrap=not console.is_terminal)

    say(f"Config file: {config.path} ({state})")
    if from_env:
        say(f"  location set by {CONFIG_ENV}")
    table = Table("setting", "value", "source")
    for row in settings_rows:
        style = "bold" if row["source"] == "file" else None
        table.add_row(row["key"], row["value"], row["source"], style=style)
    console.print(table)
    for row in effective:
        say(f"Effective {row['key']}: {row['value']} (from {row['source']})")


@app.callback()
def show_default(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show where the config file is and every effective setting with its source."""
    if ctx.invoked_subcommand:
        return
    _show(ctx, as_json)


@app.command("show")
def show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show where the config file is and every effective setting with its source."""
    _show(ctx, as_json)


@app.command("path")
def path() -> None:
    """Print the config file's path (it may not exist yet)."""
    typer.echo(str(config_path()))


@app.command("init")
def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config file.")] = False,
) -> None:
    """Write a commented config file holding every default, ready to edit."""
    written = _cf().write_default_config(force=force)
    if not settings_of(ctx).quiet:
        typer.echo(f"wrote {written}")
