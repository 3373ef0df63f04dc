"""`klaviyo-etl purge --deleted`: erase what is left of profiles Klaviyo deleted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from klaviyo_etl.cli.account_options import account_options, exit_if_failed
from klaviyo_etl.errors import UsageError

if TYPE_CHECKING:
    from klaviyo_etl.accounts import AccountTarget


@account_options
def purge(
    ctx: typer.Context,
    accounts: list[AccountTarget] | None,
    deleted: Annotated[
        bool,
        typer.Option("--deleted", help="Delete the rows of deleted profiles, their events and memberships."),
    ] = False,
) -> None:
    """Delete outright what reconciliation only flags, for users who must prove erasure.

    A profile Klaviyo deleted is already stripped of its personal data and no report counts
    its events; this removes the rows themselves. Safe to run again. With several accounts,
    each account's database in turn: one whose database cannot be opened (or is being
    synced) is named, the others are purged, and the exit code is 1.

    For example:

        klaviyo-etl purge --deleted
        klaviyo-etl purge --deleted --all-accounts
    """
    if not deleted:
        raise UsageError("say what to purge: --deleted")
    from klaviyo_etl.cli.config import configured
    from klaviyo_etl.errors import DatabaseError

    settings = configured(ctx)[0]  # with the config file's [defaults], as sync
    if accounts is None:
        _report(None, _purge(settings.db_path), settings.quiet)
        return
    failed = {}
    for account in accounts:
        try:
            counts = _purge(account.settings.db_path)
        except DatabaseError as exc:
            failed[account.name] = str(exc)
            continue
        _report(account.name, counts, settings.quiet)
    exit_if_failed(failed)


def _purge(path: Path) -> dict[str, int]:
    from klaviyo_etl.db import open_database
    from klaviyo_etl.db.database import require_database
    from klaviyo_etl.db.lock import database_lock
    from klaviyo_etl.db.privacy import purge_deleted

    require_database(path)  # before the lock, whose file a mistyped --db would leave behind
    with database_lock(path):
        db = open_database(path, create=False)
        try:
            return purge_deleted(db)
        finally:
            db.close()


def _report(account: str | None, counts: dict[str, int], quiet: bool) -> None:
    if not quiet:
        line = ", ".join(f"{table}: {n} deleted" for table, n in counts.items())
        typer.echo(f"{account}: {line}" if account else line)
