"""`klaviyo-etl sync`: pull streams into the database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from klaviyo_etl.cli.account_options import account_options
from klaviyo_etl.cli.common import LOG_TIMES, echo_line
from klaviyo_etl.errors import UsageError
from klaviyo_etl.sync.names import STREAM_NAMES, resolve
from klaviyo_etl.sync.options import MAX_DAYS

if TYPE_CHECKING:
    from klaviyo_etl.accounts import AccountTarget
    from klaviyo_etl.config_file import Config
    from klaviyo_etl.settings import Settings
    from klaviyo_etl.sync.engine import SyncOptions


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _valid_date(value: str | None) -> str | None:
    if value is None:
        return None
    from klaviyo_etl.timeutil import beyond_tomorrow, parse_time

    try:
        since = parse_time(value)
    except ValueError:
        raise UsageError(f"--since {value!r} is not a date (use YYYY-MM-DD or ISO 8601)") from None
    if beyond_tomorrow(since):
        raise UsageError(f"--since {value} is in the future: give the past date to re-read from")
    if since < EPOCH:  # a mistyped year ("0226"): years before 1000 hung the events stream
        raise UsageError(
            f"--since {value} is before 1970: Klaviyo holds nothing older; give a later date, or"
            " --full-refresh to re-read everything"
        )
    return since.isoformat()


@account_options
def sync(
    ctx: typer.Context,
    accounts: list[AccountTarget] | None,
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
            max=MAX_DAYS,
            metavar="DAYS",
            help="Days of events re-read for late arrivals [default: config, else 3].",
        ),
    ] = None,
    reconcile_days: Annotated[
        float | None,
        typer.Option(
            "--reconcile-days",
            min=0,
            max=MAX_DAYS,
            metavar="DAYS",
            help="Reconcile deletions this often [default: config, else 7].",
        ),
    ] = None,
    due: Annotated[
        bool, typer.Option("--due", help="Only the streams whose schedule says they are due.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Sync streams from Klaviyo into the database (incremental by default).

    With --account or --all-accounts, the accounts sync at once, each into its own database.

    Example: klaviyo-etl sync all --all-accounts --quiet
    """
    from klaviyo_etl.cli.config import configured
    from klaviyo_etl.progress import progress_for
    from klaviyo_etl.signals import stop_on_signals
    from klaviyo_etl.sync.engine import SyncOptions, run_sync

    if due and not sys.stderr.isatty():  # the crontab line's run: every line to its log dated
        ctx.meta[LOG_TIMES] = True
    settings, config = configured(ctx)
    names = list(streams or []) or None
    if names and "all" in names:  # `sync all events` synced events alone
        resolve(names)  # a mistyped name beside `all` is still refused
        names = None
    if due and names:  # `sync --due events` ignored `events` without a word
        raise UsageError(
            f"give stream names ({', '.join(names)}) or --due, not both: --due syncs the streams"
            " the schedule says are due"
        )
    since = _valid_date(since)

    def options_for(settings: Settings, config: Config) -> SyncOptions | None:
        """The run's options for one account; None when --due finds nothing due."""
        picked = names
        if due:
            from klaviyo_etl.schedule import due_stream_names

            picked = due_stream_names(settings, config)
            if not picked:
                return None
        return SyncOptions(
            streams=picked,
            full_refresh=full_refresh,
            since=since,
            reconcile=reconcile,
            predictive=predictive,
            lookback_days=config.lookback_days if lookback_days is None else lookback_days,
            reconcile_days=config.reconcile_days if reconcile_days is None else reconcile_days,
            conversion_metric=config.conversion_metric,
            parse_workers=config.parse_workers,
        )

    if accounts is not None:
        _sync_accounts(ctx, settings, accounts, options_for, json_output)
        return
    options = options_for(settings, config)
    if options is None:
        if json_output:
            typer.echo(json.dumps({"run_id": None, "ok": True, "streams": []}))
        elif not settings.quiet:
            echo_line(ctx, "nothing is due")
        return
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


def _sync_accounts(
    ctx: typer.Context, settings: Settings, accounts: list[AccountTarget], options_for, json_output: bool
) -> None:
    """Sync several accounts at once; report each under its name; exit 1 if any failed."""
    from klaviyo_etl.progress import AccountProgress, progress_for
    from klaviyo_etl.signals import stop_on_signals
    from klaviyo_etl.sync.accounts import AccountResult, AccountSync, exit_code, run_accounts

    jobs: list[AccountSync] = []
    idle: list[AccountResult] = []  # --due found nothing due
    for account in accounts:
        options = options_for(account.settings, account.config)
        if options is None:
            idle.append(AccountResult(account.name))
        else:
            jobs.append(AccountSync(account.name, account.settings, options))
    stop = threading.Event()
    with progress_for(settings.quiet, json_output) as progress, stop_on_signals(stop):
        results = run_accounts(jobs, progress=lambda name: AccountProgress(progress, name), stop=stop)
    by_name = {r.name: r for r in [*results, *idle]}
    ordered = [by_name[a.name] for a in accounts]
    key_envs = {a.name: a.key_env for a in accounts}
    for outcome in ordered:
        if outcome.error:
            # The client's message names the single account's variable; say this one's.
            outcome.error = outcome.error.replace("KLAVIYO_API_KEY", key_envs[outcome.name])
            echo_line(ctx, f"Error: account {outcome.name}: {outcome.error}", err=True)
        elif outcome.result is None and not settings.quiet and not json_output:
            echo_line(ctx, f"{outcome.name}: nothing is due")
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "ok": all(r.ok or (r.result is None and r.error is None) for r in ordered),
                    "accounts": [
                        {
                            "account": r.name,
                            "db": str(next(a.settings.db_path for a in accounts if a.name == r.name)),
                            "run_id": r.result.run_id if r.result else None,
                            "ok": r.error is None and (r.result is None or r.result.ok),
                            "error": r.error,
                            "streams": [dataclasses.asdict(s) for s in r.result.streams] if r.result else [],
                        }
                        for r in ordered
                    ],
                },
                indent=2,
            )
        )
    raise typer.Exit(exit_code(results))
