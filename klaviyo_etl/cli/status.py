"""`klaviyo-etl status`: how fresh each stream is and how its last run ended."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from klaviyo_etl.cli.common import settings_of


def status(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per stream: last success, watermark, rows, age, last error."""
    from klaviyo_etl.db import open_database
    from klaviyo_etl.sync.status import stream_status

    rows = stream_status(open_database(settings_of(ctx).db_path, create=False))
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("stream", "last success", "age", "watermark", "rows", "last run", "last error")
    for r in rows:
        table.add_row(
            r["stream"],
            r["last_success_at"] or "never",
            r["age"] or "",
            r["watermark"] or "",
            f"{r['rows']:,}",
            r["last_status"] or "",
            r["last_error"] or "",
            style="red" if r["last_status"] == "failed" else None,
        )
    Console().print(table)
