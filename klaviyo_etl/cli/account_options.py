"""`--account NAME` (repeatable) and `--all-accounts`, defined once for every command that
takes them (`sync`, `status`, `check`, `purge`, `report ...`, `schedule ...`,
`export parquet`).

`@account_options` adds both options at the end of a command's signature, which is what Typer
reads, and hands the command `accounts` instead: the `AccountTarget`s asked for (see
`klaviyo_etl.accounts.select_accounts`), or None when neither option was given, in which case
the command runs exactly as it did before accounts existed (KLAVIYO_API_KEY and --db).
An unknown name is a one-line usage error listing the configured accounts (exit 2).
A command that goes on past an account that failed ends with `exit_if_failed`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from klaviyo_etl.accounts import AccountTarget

AccountOption = Annotated[
    list[str] | None,
    typer.Option(
        "--account",
        metavar="NAME",
        help="Run for this account of the config file ([accounts.NAME]); repeatable.",
        show_default=False,
    ),
]
AllAccounts = Annotated[
    bool, typer.Option("--all-accounts", help="Run for every account of the config file.")
]


def selected_accounts(
    ctx: typer.Context, names: list[str] | None, all_accounts: bool
) -> list[AccountTarget] | None:
    """The accounts the options name (None: neither option, the single account of old)."""
    if not names and not all_accounts:
        return None
    from klaviyo_etl.accounts import select_accounts
    from klaviyo_etl.cli.config import configured

    settings, config = configured(ctx)
    return select_accounts(settings, config, names, all_accounts)


def account_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give `command` --account and --all-accounts; it receives `accounts` (see the module)."""
    # `accounts` is annotated with a name imported for type checkers only (start-up time).
    signature = inspect.signature(command, eval_str=True, locals={"AccountTarget": Any})
    own = [p for p in signature.parameters.values() if p.name != "accounts"]
    added = [
        inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=a, default=d)
        for n, a, d in (("account", AccountOption, None), ("all_accounts", AllAccounts, False))
    ]
    parameters = own + added

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get("ctx") or next(a for a in args if isinstance(a, typer.Context))
        kwargs["accounts"] = selected_accounts(ctx, kwargs.pop("account"), kwargs.pop("all_accounts"))
        return command(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def exit_if_failed(failed: dict[str, str]) -> None:
    """Name each account that failed (`Error: account NAME: ...` on stderr) and exit 1 if any
    did: the other accounts have done their work by then."""
    for name, error in failed.items():
        typer.echo(f"Error: account {name}: {error}", err=True)
    if failed:
        raise typer.Exit(1)
