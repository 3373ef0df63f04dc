"""`klaviyo-etl schedule`: run the per-stream schedule in the foreground, or from cron."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from klaviyo_etl import REVISION
from klaviyo_etl.cli.account_options import account_options, exit_if_failed
from klaviyo_etl.cli.common import settings_of, unboxed_to_fit
from klaviyo_etl.cli.config import configured
from klaviyo_etl.errors import DatabaseError, UsageError
from klaviyo_etl.settings import DEFAULT_BASE_URL, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRIES
from klaviyo_etl.sync.names import ALIASES

if TYPE_CHECKING:
    from klaviyo_etl.accounts import AccountTarget
    from klaviyo_etl.schedule import StreamPlan

app = typer.Typer(help="Sync each stream on its own schedule (see `klaviyo-etl config`).")


@app.command("run")
@account_options
def run(
    ctx: typer.Context,
    accounts: list[AccountTarget] | None,
    poll: Annotated[
        float,
        typer.Option("--poll", min=1, help="Longest sleep between checks, and the wait after a locked run."),
    ] = 60.0,
) -> None:
    """Run each stream whenever it is due, until Ctrl-C or SIGTERM.

    A failed stream is logged and retried with backoff; the others carry on. A manual `sync`
    meanwhile holds the database lock, and the loop skips that pass and tries again. Stopping
    lets the page being written commit first. With several accounts, each runs its own
    schedule in the same process, and its log lines start with its name.
    """
    from klaviyo_etl.schedule import Scheduler, engine_runner

    if accounts is not None:
        _run_accounts(accounts, poll)
        return
    settings, config = configured(ctx)
    settings.require_api_key()  # fail now, not at the first due stream
    from klaviyo_etl.config_file import load_config

    # The runner reads the scheduler's config at each pass (bound late), so a reloaded
    # config's sync windows apply too, not only its intervals.
    runner = engine_runner(settings, lambda: scheduler.config)
    scheduler = Scheduler(settings.db_path, config, runner, poll_seconds=poll, reload=load_config)
    scheduler.run()  # returns only after a clean stop, which is a success (exit 0)


class _AccountPrefix(logging.Filter):
    """Log lines from an account's scheduler thread start with the account's name."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = threading.current_thread().name
        if name.startswith("account:"):
            record.msg = f"{name.removeprefix('account:')}: {record.msg}"
        return True


def _run_accounts(accounts: list[AccountTarget], poll: float) -> None:
    """`schedule run` for several accounts: one scheduler thread each, one stop for all."""
    from klaviyo_etl.config_file import load_config
    from klaviyo_etl.schedule import Scheduler, engine_runner
    from klaviyo_etl.signals import stop_on_signals
    from klaviyo_etl.sync.accounts import LinkedStop

    for account in accounts:
        account.require_api_key()  # fail now, not at the first due stream
    stop = threading.Event()
    failed: dict[str, str] = {}
    schedulers = []
    for account in accounts:
        holder: dict[str, Scheduler] = {}
        runner = engine_runner(account.settings, lambda holder=holder: holder["it"].config)
        holder["it"] = Scheduler(
            account.settings.db_path,
            account.config,
            runner,
            poll_seconds=poll,
            # its own stop, so that its rejected key stops it alone; a signal stops them all
            stop=LinkedStop(stop),
            reload=lambda name=account.name: load_config().for_account(name),
        )
        schedulers.append((account, holder["it"]))

    def loop(account: AccountTarget, scheduler: Scheduler) -> None:
        try:
            scheduler.run(handle_signals=False)
        except Exception as exc:  # this account's key or revision: the others carry on
            failed[account.name] = str(exc).replace("KLAVIYO_API_KEY", account.key_env)
            logging.getLogger("klaviyo_etl.schedule").error("stopped: %s", failed[account.name])

    prefix = _AccountPrefix()
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(prefix)
    threads = [
        threading.Thread(target=loop, args=pair, name=f"account:{pair[0].name}", daemon=True)
        for pair in schedulers
    ]
    try:
        with stop_on_signals(stop):
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(timeout=0.5)
    finally:
        stop.set()
        for handler in handlers:
            handler.removeFilter(prefix)
    exit_if_failed(failed)


@app.command("crontab")
@account_options
def crontab(
    ctx: typer.Context,
    accounts: list[AccountTarget] | None,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="File the cron job appends its output to.", show_default=False),
    ] = None,
) -> None:
    """Print crontab lines that run `sync --due` often enough for every stream's interval."""
    from klaviyo_etl.schedule import crontab_text, default_log_path

    settings, config = configured(ctx)
    sync_options: list[str] = []
    variables = ["KLAVIYO_API_KEY"]
    if accounts is not None:
        # One line for every account: `sync --due` runs them at once, each on its schedule,
        # and wakes as often as the most frequent stream of any account needs.
        schedule = {f"{a.name}/{s}": i for a in accounts for s, i in a.config.schedule.items()}
        config = dataclasses.replace(config, schedule=schedule)
        every = len(accounts) == len(config.accounts)
        sync_options = ["--all-accounts"] if every else [o for a in accounts for o in ("--account", a.name)]
        variables = [a.key_env for a in accounts]
    log_path = (log or default_log_path()).expanduser().absolute()
    # cron's `>>` fails if the directory is missing, or the path is one, and nothing would
    # tell the user.
    if log_path.is_dir():
        raise UsageError(f"--log {log_path} is a folder: give the path of a file to append to")
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = (
            "a file is in the way" if isinstance(exc, FileExistsError | NotADirectoryError) else exc.strerror
        )
        raise UsageError(f"--log {log_path}: cannot create its folder: {reason or exc}") from None
    # Every global option given (or set by its KLAVIYO_* variable, which cron does not have)
    # goes into the line: without --allow-insecure, every run against an http:// base URL was
    # refused, and cron's only trace of it was one line in the log.
    # Values from the config file stay out (cron's runs read the file, and a later edit of it
    # must not be overridden by a copy in the line): `given` holds the options alone.
    given = settings_of(ctx)
    extra: list[str] = []
    if given.base_url != DEFAULT_BASE_URL:
        extra += ["--base-url", given.base_url]
    if given.revision != REVISION:
        extra += ["--revision", given.revision]
    if given.retries != DEFAULT_RETRIES:
        extra += ["--retries", str(given.retries)]
    if given.request_timeout != DEFAULT_REQUEST_TIMEOUT:
        extra += ["--request-timeout", f"{given.request_timeout:g}"]
    if given.allow_insecure:
        extra.append("--allow-insecure")
    typer.echo(
        crontab_text(
            config,
            db_path=settings.db_path,
            log_path=log_path,
            extra_options=extra,
            sync_options=sync_options,
            key_variables=variables,
        ),
        nl=False,
    )


def _ago(when: dt.datetime | None, now: dt.datetime) -> str:
    return "never" if when is None else f"{_span(now - when)} ago"


def _span(delta: dt.timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    for size, unit, sub_size, sub_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m")):
        if seconds >= size:
            count, rest = divmod(seconds, size)
            return f"{count}{unit}{rest // sub_size}{sub_unit}" if rest >= sub_size else f"{count}{unit}"
    return f"{seconds // 60}m" if seconds >= 60 else f"{seconds}s"


def _local(when: dt.datetime, now: dt.datetime) -> str:
    """Local wall-clock time, with the date only when it is not today, and the year only when
    it is not this one (a "9999d" interval's next run read "Apr 18", 27 years off)."""
    local, today = when.astimezone(), now.astimezone().date()
    if local.date() == today:
        return local.strftime("%H:%M")
    return local.strftime("%b %d %H:%M" if local.year == today.year else "%Y-%m-%d %H:%M")


def _next(p: StreamPlan, now: dt.datetime) -> str:
    if p.due_at is None:
        return "off"
    if p.is_overdue(now):
        return f"overdue {_span(now - p.due_at)}"
    if p.is_due(now):  # as `sync --due` and the "due now" column see it (cron's lag allowed)
        return "now"
    return f"in {_span(p.due_at - now)} ({_local(p.due_at, now)})"


def _last_run(p: StreamPlan, now: dt.datetime) -> str:
    if p.last_run is None:
        return "-"
    run = p.last_run
    text = f"{run.status or 'running'} {_ago(run.ended_at or run.started_at, now)}"
    return f"{text} ({p.failures} in a row)" if p.failures > 1 else text


@app.command("status")
@account_options
def status(
    ctx: typer.Context,
    accounts: list[AccountTarget] | None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each stream's interval, last success, last run and when it is next due."""
    settings, config = configured(ctx)
    if accounts is None:
        _status(settings, config, as_json)
        return
    failed: dict[str, str] = {}  # an account whose database cannot be read: named, the others shown
    if as_json:
        shown = []
        for a in accounts:
            try:
                shown.append({"account": a.name, **_status_json(a.settings, a.config)})
            except DatabaseError as exc:
                failed[a.name] = str(exc)
                shown.append({"account": a.name, "error": str(exc)})
        typer.echo(json.dumps(shown, indent=2))
        exit_if_failed(failed)
        return
    for account in accounts:
        Console().print(f"account {account.name}", style="bold")
        try:
            _status(account.settings, account.config, False)
        except DatabaseError as exc:
            failed[account.name] = str(exc)
    exit_if_failed(failed)


def _plans(settings, config, now: dt.datetime) -> list[StreamPlan]:
    from klaviyo_etl.db import open_database
    from klaviyo_etl.schedule import plan

    if settings.db_path.expanduser().exists():
        db = open_database(settings.db_path)
    else:  # nothing synced yet, every stream due; a status creates no database (a mistyped --db)
        import sqlite_utils

        from klaviyo_etl.db import migrate

        db = sqlite_utils.Database(memory=True)
        migrate(db)
    try:
        return plan(db, config, now)
    finally:
        db.close()


def _status_json(settings, config) -> dict:
    now = dt.datetime.now(dt.UTC)
    plans = _plans(settings, config, now)
    return {
        "db": str(settings.db_path),
        "config": str(config.path),
        "now": now.isoformat(timespec="seconds"),
        "streams": [p.as_dict(now) for p in plans],
    }


def _status(settings, config, as_json: bool) -> None:
    """One database's schedule: a table, or JSON."""
    if as_json:
        typer.echo(json.dumps(_status_json(settings, config), indent=2))
        return
    now = dt.datetime.now(dt.UTC)
    plans = _plans(settings, config, now)
    # The stream is what a row is about: never cut (at 80 columns "segment_memb…"). A
    # terminal too narrow for the boxed table gets it without its lines, as the reports do.
    console = Console()
    columns = (
        Column("stream", no_wrap=True, min_width=max((len(p.stream) for p in plans), default=6)),
        "every",
        "last success",
        "last run",
        "next due",
        "due now",
    )
    table = Table(*columns)
    for p in plans:
        table.add_row(
            p.stream,
            str(p.interval),
            _ago(p.last_success_at, now),
            _last_run(p, now),
            _next(p, now),
            "yes" if p.is_due(now) else "",
            style="red" if p.failures else None,
        )
    unboxed_to_fit(table, console.width)
    console.print(table)
    for p in plans:
        if p.failures and p.last_error and p.stream not in ALIASES:
            console.print(Text(f"{p.stream} failed: {p.last_error}"))
        elif p.skipped_because and p.stream not in ALIASES:
            console.print(Text(f"{p.stream} skipped: {p.skipped_because}"))
    overdue = [p.stream for p in plans if p.is_overdue(now)]
    if overdue:
        console.print(
            Text(
                f"Overdue by a whole interval or more: {', '.join(overdue)}. Is the schedule running"
                " (the line of `klaviyo-etl schedule crontab` in your crontab, or `schedule run`)?"
            )
        )
    due = [p.stream for p in plans if p.is_due(now)]
    # A mistyped --db reads as an install that never synced: say there is no database there.
    where = f"db {settings.db_path}" + ("" if settings.db_path.expanduser().exists() else ": none yet")
    console.print(Text(f"Due now: {', '.join(due) if due else 'nothing'}  ({where})"))
