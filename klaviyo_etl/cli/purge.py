"""`klaviyo-etl purge --deleted`: erase what is left of profiles Klaviyo deleted."""

from __future__ import annotations

from typing import Annotated

import typer

from klaviyo_etl.cli.common import settings_of
from klaviyo_etl.errors import UsageError


def purge(
    ctx: typer.Context,
    deleted: Annotated[
        bool,
        typer.Option("--deleted", help="Delete the rows of deleted profiles, their events and memberships."),
    ] = False,
) -> None:
    """Delete outright what reconciliation only flags, for users who must prove erasure.

    A profile Klaviyo deleted is already stripped of its personal data and no report counts
    its events; this removes the rows themselves. Safe to run again.

        klaviyo-etl purge --deleted
    """
    if not deleted:
        raise UsageError("say what to purge: --deleted")
    from klaviyo_etl.db import open_database
    from klaviyo_etl.db.lock import database_lock
    from klaviyo_etl.db.privacy import purge_deleted

    settings = settings_of(ctx)
    with database_lock(settings.db_path):
        db = open_database(settings.db_path, create=False)
        try:
            counts = purge_deleted(db)
        finally:
            db.close()
    if not settings.quiet:
        typer.echo(", ".join(f"{table}: {n} deleted" for table, n in counts.items()))
