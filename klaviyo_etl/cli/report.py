"""`klaviyo-etl report ...`: analytics from the local database (Rich, JSON, CSV or HTML)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from klaviyo_etl.cli.account_options import account_options
from klaviyo_etl.cli.common import check_output_file, replacing, word_choice
from klaviyo_etl.cli.report_options import MaxAge, OutputOptions, report_options
from klaviyo_etl.errors import KlaviyoEtlError, UsageError
from klaviyo_etl.reports.periods import COMPARE_CHOICES, Period, compare_mode, compare_period

if TYPE_CHECKING:
    from klaviyo_etl.accounts import AccountTarget
    from klaviyo_etl.config_values import Config
    from klaviyo_etl.reports.model import Report
    from klaviyo_etl.settings import Settings

# Start-up time (issue 12): each command imports the report it builds, and the database, the
# renderers and the config file load only when a command runs, so `report campaigns` does
# not import the other reports, and `--help` none of them.

app = typer.Typer(
    help="Reports from the local database: overview, campaigns, flows, forms, segments, lists,"
    " metric, rfm, cohorts, dashboard.",
    no_args_is_help=True,
)

Sort = Annotated[str | None, typer.Option("--sort", help="Column to sort by; add :asc or :desc.")]
Limit = Annotated[int | None, typer.Option("--limit", min=1, help="Show at most this many rows.")]
Channel = Annotated[
    str | None, typer.Option("--channel", help="email | sms | mobile_push.", callback=word_choice)
]
SOURCES = ("events", "klaviyo", "compare")
Source = Annotated[
    str,
    typer.Option(
        "--source",
        help="events (computed here) | klaviyo (stored Reporting API) | compare (both, over"
        " Klaviyo's timeframe, with the differences).",
        callback=word_choice,
    ),
]


def check_source(source: str) -> None:
    """--source of `report campaigns` / `report flows`, checked before any sync or query."""
    if source not in SOURCES:
        raise UsageError(f"--source {source!r} must be one of {', '.join(SOURCES)}")


def configured_report(ctx: typer.Context) -> tuple[Settings, Config]:
    """The settings with the config file's [defaults] (its `db`, `base_url`) applied, as sync
    applies them, and the config, whose `[reports]` the reports follow."""
    from klaviyo_etl.cli.config import configured

    return configured(ctx)


def _run(
    ctx: typer.Context,
    name: str,
    build: Callable[..., Report],
    out: OutputOptions,
    source: str = "events",
    table: bool = True,
    *,
    accounts: list[AccountTarget] | None = None,
    sort: str | None = None,
    limit: int | None = None,
) -> None:
    """Open the database, sync first if --max-age asks, build the report and render it.

    `build(db, config, limit)` gets the account's config (its `[reports]` conversion_metric
    and exclude_bot_clicks); every report names the conversion metric in its header and
    `meta.conversion_metric`. With
    several accounts each account's report is built (without the limit) from its own
    database, and `reports.accounts.combine` merges them, then sorts and limits.
    """
    from klaviyo_etl.reports.render import check_format, render

    check_format(out.fmt)  # before a --max-age sync and the report's build
    if accounts is None:
        settings, config = configured_report(ctx)
        report = _build_one(settings, config, name, build, out, source, limit)
    else:
        reports = {}
        for account in accounts:
            try:
                reports[account.name] = _build_one(
                    account.settings, account.config, name, build, out, source, None
                )
            except KlaviyoEtlError as exc:  # say which account's database or sync failed
                exc.args = (f"account {account.name}: {exc}",)
                raise
        from klaviyo_etl.reports.accounts import combine

        report = combine(reports, sort=sort, limit=limit)
    shape = {"columns": out.columns, "wide": out.wide}
    if out.output is None:
        render(report, out.fmt, **shape, table=table)
    else:
        from rich.console import Console

        with replacing(out.output, "--output") as handle:
            render(report, out.fmt, handle, Console(file=handle, width=200), **shape, table=table)
        if not settings.quiet:
            typer.echo(f"wrote {out.output}", err=True)


def _build_one(
    settings: Settings,
    config: Config,
    name: str,
    build: Callable[..., Report],
    out: OutputOptions,
    source: str,
    limit: int | None,
) -> Report:
    """One database's report (one account's)."""
    from klaviyo_etl.cli.freshness import ensure_fresh, streams_for
    from klaviyo_etl.db import open_database
    from klaviyo_etl.db.conversion import conversion_metric

    max_age = out.max_age
    conversion = config.conversion_metric
    db = open_database(settings.db_path, create=max_age is not None)  # --max-age may sync first
    try:
        ensure_fresh(settings, db, name, max_age, source=source, conversion=conversion)
        _announce_unfinished(db, streams_for(name, source), settings.quiet)
        _announce_rebuild(db, settings.quiet, conversion)
        report = build(db, config, limit)
        if "conversion_metric" not in report.meta:
            report.set_conversion(conversion_metric(db, conversion))
        return report
    finally:
        db.close()


def _announce_unfinished(db, streams: list[str], quiet: bool) -> None:
    """A first load stopped or killed part way: the figures lack what it has not read."""
    from klaviyo_etl.cli.freshness import unfinished_loads

    for stream, watermark in [] if quiet else unfinished_loads(db, streams):
        reached = f" (read up to {watermark[:10]})" if watermark else ""
        typer.echo(
            f"note: the first load of {stream} has not finished{reached};"
            " run `klaviyo-etl sync` to complete it",
            err=True,
        )


def _announce_rebuild(db, quiet: bool, conversion: str | None = None) -> None:
    """The first report on a big database builds the rollups; say why it takes a while."""
    from klaviyo_etl.db.rollups import needs_rebuild

    if quiet or not needs_rebuild(db, conversion):
        return
    events = db.execute("SELECT max(rowid) FROM events").fetchone()[0] or 0
    if events > 200_000:
        typer.echo(
            f"building report rollups over ~{events:,} events (once; later refreshes"
            " only touch what changed)…",
            err=True,
        )


@app.command("overview")
@report_options()
@account_options
def overview_cmd(
    ctx: typer.Context,
    period: Period,
    against: Period | None,
    out: OutputOptions,
    accounts: list[AccountTarget] | None,
) -> None:
    """KPI cards: revenue, orders, profiles, sends, open/click/conversion rates, form submissions."""
    from klaviyo_etl.reports import overview

    _run(
        ctx,
        "overview",
        lambda db, config, _limit: overview.overview_report(
            db, period, against, config.conversion_metric, config.exclude_bot_clicks
        ),
        out,
        accounts=accounts,
    )


@app.command("campaigns")
@report_options()
@account_options
def campaigns_cmd(
    ctx: typer.Context,
    period: Period,
    against: Period | None,
    out: OutputOptions,
    accounts: list[AccountTarget] | None,
    sort: Sort = None,
    limit: Limit = None,
    channel: Channel = None,
    source: Source = "events",
) -> None:
    """Per campaign sent in the period: recipients, opens, clicks, conversions, revenue ..."""
    check_source(source)

    def build(db, config, limit):
        settings = {"conversion": config.conversion_metric, "exclude_bot_clicks": config.exclude_bot_clicks}
        if source == "compare":
            from klaviyo_etl.reports.compare import compare_report

            return compare_report(
                db, "campaign-values", period, channel=channel, sort=sort, limit=limit, **settings
            )
        from klaviyo_etl.reports import messages

        return messages.campaign_report(
            db, period, against, channel=channel, sort=sort, limit=limit, source=source, **settings
        )

    _run(ctx, "campaigns", build, out, source, accounts=accounts, sort=sort, limit=limit)


@app.command("flows")
@report_options()
@account_options
def flows_cmd(
    ctx: typer.Context,
    period: Period,
    against: Period | None,
    out: OutputOptions,
    accounts: list[AccountTarget] | None,
    by: Annotated[
        str, typer.Option("--by", help="flow (per flow and channel) | message.", callback=word_choice)
    ] = "flow",
    sort: Sort = None,
    limit: Limit = None,
    channel: Channel = None,
    source: Source = "events",
) -> None:
    """Per flow (and channel) or per flow message: the campaign figures over the period."""
    check_source(source)

    def build(db, config, limit):
        settings = {"conversion": config.conversion_metric, "exclude_bot_clicks": config.exclude_bot_clicks}
        if source == "compare":
            from klaviyo_etl.reports.compare import compare_report

            return compare_report(
                db, "flow-values", period, channel=channel, sort=sort, limit=limit, **settings
            )
        from klaviyo_etl.reports import messages

        return messages.flow_report(
            db,
            period,
            by=by,
            channel=channel,
            sort=sort,
            limit=limit,
            source=source,
            compare=against,
            **settings,
        )

    _run(ctx, "flows", build, out, source, accounts=accounts, sort=sort, limit=limit)


def _audience_command(name: str, report: str, doc: str) -> Callable:
    """forms, segments and lists take the same options; one definition serves all three
    (`report`: the function of `reports.audience` that builds it)."""

    def command(
        ctx: typer.Context,
        period: Period,
        against: Period | None,
        out: OutputOptions,
        accounts: list[AccountTarget] | None,
        sort: Sort = None,
        limit: Limit = None,
    ) -> None:
        from klaviyo_etl.reports import audience

        build = getattr(audience, report)

        def build_one(db, config, limit):
            # forms read the rollups
            extra = {"conversion": config.conversion_metric} if name == "forms" else {}
            return build(db, period, against, sort=sort, limit=limit, **extra)

        _run(ctx, name, build_one, out, accounts=accounts, sort=sort, limit=limit)

    command.__doc__ = doc
    command.__name__ = f"{name}_cmd"
    return report_options()(account_options(command))


for _name, _report, _doc in (
    ("forms", "form_report", "Per form: views, viewers, submissions, submitters and submit rate."),
    ("segments", "segment_report", "Per segment: members and growth (joined, left, net) over the period."),
    ("lists", "list_report", "Per list: members and growth (joined, left, net) over the period."),
):
    app.command(_name)(_audience_command(_name, _report, _doc))


@app.command("metric")
@report_options(default="90d")
@account_options
def metric_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Metric name, e.g. 'Placed Order'.")],
    period: Period,
    against: Period | None,
    out: OutputOptions,
    accounts: list[AccountTarget] | None,
    interval: Annotated[
        str, typer.Option("--interval", help="hour | day | week | month.", callback=word_choice)
    ] = "day",
    measure: Annotated[
        str,
        typer.Option(
            "--measure", help="count | value ($value sum) | uniques (profiles).", callback=word_choice
        ),
    ] = "count",
    window: Annotated[int, typer.Option("--window", help="Buckets in the moving average and z-score.")] = 7,
    z: Annotated[float, typer.Option("--z", help="|z-score| that flags an anomaly.")] = 3.0,
    forecast: Annotated[
        str | None, typer.Option("--forecast", help="Forecast horizon, e.g. 30d, 12w.")
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method", help="auto | seasonal | linear (auto: best back-test).", callback=word_choice
        ),
    ] = "auto",
    table: Annotated[
        bool, typer.Option("--table", help="Print the table of buckets under the chart.")
    ] = False,
) -> None:
    """One metric over time, with trend, anomalies and an optional back-tested forecast.

    The terminal shows a chart fitted to its width; --table adds the numbers, and
    --format json or csv gives every bucket.
    """
    from klaviyo_etl.reports import timeseries

    _run(
        ctx,
        "metric",
        lambda db, config, _limit: timeseries.metric_report(
            db,
            name,
            period,
            interval=interval,
            measure=measure,
            window=window,
            threshold=z,
            forecast=forecast,
            method=method,
            compare=against,
            conversion=config.conversion_metric,
        ),
        out,
        table=table,
        accounts=accounts,
    )


@app.command("rfm")
@report_options(default="365d")
@account_options
def rfm_cmd(
    ctx: typer.Context,
    period: Period,
    against: Period | None,
    out: OutputOptions,
    accounts: list[AccountTarget] | None,
    by: Annotated[str, typer.Option("--by", help="segment | profile.", callback=word_choice)] = "segment",
    sort: Sort = None,
    limit: Limit = None,
) -> None:
    """Recency-frequency-monetary scores and segments from the period's orders."""
    from klaviyo_etl.reports import customers

    _run(
        ctx,
        "rfm",
        lambda db, config, limit: customers.rfm_report(
            db, period, against, by=by, sort=sort, limit=limit, conversion=config.conversion_metric
        ),
        out,
        accounts=accounts,
        sort=sort,
        limit=limit,
    )


@app.command("cohorts")
@report_options(default="365d", compare=False)
@account_options
def cohorts_cmd(
    ctx: typer.Context,
    period: Period,
    out: OutputOptions,
    accounts: list[AccountTarget] | None,
    months: Annotated[int, typer.Option("--months", help="Months to follow.")] = 12,
) -> None:
    """Monthly retention cohorts by first order month (cohorts starting in the period)."""
    from klaviyo_etl.reports import customers

    _run(
        ctx,
        "cohorts",
        lambda db, config, _limit: customers.cohort_report(
            db, period, months=months, conversion=config.conversion_metric
        ),
        out,
        accounts=accounts,
    )


@app.command("dashboard")
@report_options(compare=False, output=False)
@account_options
def dashboard_cmd(
    ctx: typer.Context,
    html_file: Annotated[Path, typer.Option("--html", help="HTML file to write.")],
    period: Period,
    accounts: list[AccountTarget] | None,
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            help="previous | year | none. [default: previous; none for a period open at one end]",
            show_default=False,
        ),
    ] = None,
    max_age: MaxAge = None,
) -> None:
    """One self-contained HTML page: KPI cards, charts, campaign and flow tables (one account)."""
    from klaviyo_etl.cli.freshness import ensure_fresh, streams_for
    from klaviyo_etl.db import open_database
    from klaviyo_etl.reports.html import dashboard_html

    if compare is None:  # not asked for: `--from DAY` alone was refused for the default's sake
        compare = "previous" if period.start is not None and period.end is not None else "none"
    word = compare_mode(compare, (*COMPARE_CHOICES, "none"))
    against = compare_period(period, None if word == "none" else word)
    check_output_file(html_file, "--html")
    settings, config = configured_report(ctx)
    if accounts is not None:
        if len(accounts) != 1:
            raise UsageError("report dashboard is one account's page: give one --account")
        settings, config = accounts[0].settings, accounts[0].config
    conversion = config.conversion_metric
    db = open_database(settings.db_path, create=max_age is not None)
    try:
        ensure_fresh(settings, db, "dashboard", max_age, conversion=conversion)
        _announce_unfinished(db, streams_for("dashboard"), settings.quiet)
        _announce_rebuild(db, settings.quiet, conversion)
        page = dashboard_html(db, period, against, conversion, exclude_bot_clicks=config.exclude_bot_clicks)
    finally:
        db.close()
    with replacing(html_file, "--html") as handle:
        handle.write(page)
    if not settings.quiet:
        typer.echo(f"wrote {html_file}")
