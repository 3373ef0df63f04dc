"""`klaviyo-etl migrate`: apply schema migrations, or show which are applied."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Apply database migrations (idempotent).", invoke_without_command=True)


@app.callback()
def apply(ctx: typer.Context) -> None:
    """Bring the database schema up to date."""
    if ctx.invoked_subcommand:
        return
    from klaviyo_etl.cli.config import configured
    from klaviyo_etl.db import migrate, open_database

    settings = configured(ctx)[0]  # with the config file's [defaults], as sync
    db = open_database(settings.db_path, migrate=False)
    ran = migrate(db)
    if not settings.quiet:
        if ran:
            typer.echo(f"applied {len(ran)} migration(s) to {settings.db_path}: {', '.join(ran)}")
        else:
            typer.echo(f"{settings.db_path} is up to date")


@app.command("status")
def status(ctx: typer.Context) -> None:
    """List migrations and when each was applied."""
    from klaviyo_etl.cli.config import configured
    from klaviyo_etl.db import SCHEMA_VERSION, migration_status, open_database
    from klaviyo_etl.errors import DatabaseError

    db = open_database(configured(ctx)[0].db_path, migrate=False, create=False)
    table = Table("version", "name", "applied at")
    rows = migration_status(db)
    for row in rows:
        table.add_row(str(row["version"]), row["name"], row["applied_at"] or "pending")
    Console().print(table)
    newer = [row for row in rows if row["version"] > SCHEMA_VERSION]
    if newer:
        raise DatabaseError(
            f"database schema version {newer[-1]['version']} is newer than this klaviyo-etl (knows"
            f" {SCHEMA_VERSION}); upgrade klaviyo-etl"
        )
