"""`klaviyo-etl sync`: pull streams into the database."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Annotated

import typer

from klaviyo_etl.errors import UsageError
from klaviyo_etl.sync.names import STREAM_NAMES


def _valid_date(value: str | None) -> str | None:
    if value is None:
        return None
    from klaviyo_etl.timeutil import parse_time

    try:
        return parse_time(value).isoformat()
    except ValueError:
        raise UsageError(f"--since {value!r} is not a date (use YYYY-MM-DD or ISO 8601)") from None


def sync(
    ctx: typer.Context,
    streams: Annotated[
        list[str] | None,
        typer.Argument(help=f"Streams to sync (default all): {', '.join(STREAM_NAMES)}."),
    ] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Ignore watermarks and re-read everything.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DATE", help="Re-read from this date instead of the watermark."),
    ] = None,
    reconcile: Annotated[
        bool | None,
        typer.Option(
            "--reconcile/--no-reconcile",
            help="Scan all ids and flag rows deleted in Klaviyo (default: every N days).",
        ),
    ] = None,
    predictive: Annotated[
        bool, typer.Option("--predictive", help="Also fetch profiles' predictive analytics (slower).")
    ] = False,
    lookback_days: Annotated[
        float | None,
        typer.Option(
            "--lookback-days",
            min=0,
            metavar="DAYS",
            help="Days of events re-read for late arrivals [default: config, else 3].",
        ),
    ] = None,
    reconcile_days: Annotated[
        float | None,
        typer.Option(
            "--reconcile-days",
            min=0,
            metavar="DAYS",
            help="Reconcile deletions this often [default: config, else 7].",
        ),
    ] = None,
    due: Annotated[
        bool, typer.Option("--due", help="Only the streams whose schedule says they are due.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Sync streams from Klaviyo into the database (incremental by default)."""
    from klaviyo_etl.cli.config import configured
    from klaviyo_etl.progress import progress_for
    from klaviyo_etl.signals import stop_on_signals
    from klaviyo_etl.sync.engine import SyncOptions, run_sync

    settings, config = configured(ctx)
    names = [n for n in (streams or []) if n != "all"] or None
    if due:
        from klaviyo_etl.schedule import due_stream_names

        names = due_stream_names(settings, config)
        if not names:
            if json_output:
                typer.echo(json.dumps({"run_id": None, "ok": True, "streams": []}))
            elif not settings.quiet:
                typer.echo("nothing is due")
            return
    options = SyncOptions(
        streams=names,
        full_refresh=full_refresh,
        since=_valid_date(since),
        reconcile=reconcile,
        predictive=predictive,
        lookback_days=config.lookback_days if lookback_days is None else lookback_days,
        reconcile_days=config.reconcile_days if reconcile_days is None else reconcile_days,
        conversion_metric=config.conversion_metric,
        parse_workers=config.parse_workers,
    )
    stop = threading.Event()  # SIGINT/SIGTERM: finish the page being written, then stop
    with progress_for(settings.quiet, json_output) as progress, stop_on_signals(stop):
        result = run_sync(settings, options, progress=progress, stop=stop)
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "ok": result.ok,
                    "streams": [dataclasses.asdict(s) for s in result.streams],
                },
                indent=2,
            )
        )
    raise typer.Exit(result.exit_code)
