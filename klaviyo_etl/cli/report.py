"""`klaviyo-etl report ...`: analytics from the local database (Rich, JSON, CSV or HTML)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from klaviyo_etl.cli.common import settings_of
from klaviyo_etl.cli.freshness import ensure_fresh
from klaviyo_etl.db import open_database
from klaviyo_etl.reports import audience, customers, messages, overview, timeseries
from klaviyo_etl.reports.compare import compare_report
from klaviyo_etl.reports.model import Report
from klaviyo_etl.reports.periods import LAST_CHOICES, compare_period, resolve_period
from klaviyo_etl.reports.render import render

app = typer.Typer(
    help="Reports from the local database: overview, campaigns, flows, forms, segments, lists,"
    " metric, rfm, cohorts, dashboard.",
    no_args_is_help=True,
)

From = Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD, UTC).")]
To = Annotated[str | None, typer.Option("--to", help="Last day, included (YYYY-MM-DD, UTC).")]
Last = Annotated[str | None, typer.Option("--last", help=f"Relative period: {LAST_CHOICES}.")]
Compare = Annotated[str | None, typer.Option("--compare", help="Add the change vs: previous | year.")]
Format = Annotated[str, typer.Option("--format", "-f", help="table | json | csv | html.")]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
MaxAge = Annotated[
    str | None,
    typer.Option(
        "--max-age",
        envvar="KLAVIYO_ETL_MAX_AGE",
        help="Sync the streams this report reads first if older than this (e.g. 6h).",
    ),
]
Sort = Annotated[str | None, typer.Option("--sort", help="Column to sort by; add :asc or :desc.")]
Limit = Annotated[int | None, typer.Option("--limit", min=1, help="Show at most this many rows.")]
Channel = Annotated[str | None, typer.Option("--channel", help="email | sms | mobile_push.")]
Source = Annotated[
    str,
    typer.Option(
        "--source",
        help="events (computed here) | klaviyo (stored Reporting API) | compare (both, over"
        " Klaviyo's timeframe, with the differences).",
    ),
]


def _run(
    ctx: typer.Context,
    name: str,
    build: Callable[..., Report],
    fmt: str,
    output: Path | None,
    max_age: str | None,
    source: str = "events",
) -> None:
    settings = settings_of(ctx)
    db = open_database(settings.db_path, create=max_age is not None)  # --max-age may sync first
    try:
        ensure_fresh(settings, db, name, max_age, source=source)
        _announce_rebuild(db, settings.quiet)
        report = build(db)
        if output is None:
            render(report, fmt)
        else:
            with open(output, "w", encoding="utf-8") as handle:
                render(report, fmt, handle, Console(file=handle, width=200))
            if not settings.quiet:
                typer.echo(f"wrote {output}", err=True)
    finally:
        db.close()


def _announce_rebuild(db, quiet: bool) -> None:
    """The first report on a big database builds the rollups; say why it takes a while."""
    from klaviyo_etl.db.rollups import needs_rebuild

    if quiet or not needs_rebuild(db):
        return
    events = db.execute("SELECT max(rowid) FROM events").fetchone()[0] or 0
    if events > 200_000:
        typer.echo(
            f"building report rollups over ~{events:,} events (once; later refreshes"
            " only touch what changed)…",
            err=True,
        )


def _periods(from_, to, last, compare, default="30d"):
    period = resolve_period(from_=from_, to=to, last=last, default=default)
    return period, compare_period(period, compare)


@app.command("overview")
def overview_cmd(
    ctx: typer.Context,
    from_: From = None,
    to: To = None,
    last: Last = None,
    compare: Compare = None,
    fmt: Format = "table",
    output: Output = None,
    max_age: MaxAge = None,
) -> None:
    """KPI cards: revenue, orders, active and new profiles, sends, open/click/conversion rate,
    form submissions."""
    period, against = _periods(from_, to, last, compare)
    _run(ctx, "overview", lambda db: overview.overview_report(db, period, against), fmt, output, max_age)


@app.command("campaigns")
def campaigns_cmd(
    ctx: typer.Context,
    from_: From = None,
    to: To = None,
    last: Last = None,
    compare: Compare = None,
    sort: Sort = None,
    limit: Limit = None,
    channel: Channel = None,
    source: Source = "events",
    fmt: Format = "table",
    output: Output = None,
    max_age: MaxAge = None,
) -> None:
    """Per campaign sent in the period: recipients, opens, clicks, conversions, revenue ..."""
    period, against = _periods(from_, to, last, compare)

    def build(db):
        if source == "compare":
            return compare_report(db, "campaign-values", period, channel=channel, sort=sort, limit=limit)
        return messages.campaign_report(
            db, period, against, channel=channel, sort=sort, limit=limit, source=source
        )

    _run(ctx, "campaigns", build, fmt, output, max_age, source)


@app.command("flows")
def flows_cmd(
    ctx: typer.Context,
    from_: From = None,
    to: To = None,
    last: Last = None,
    compare: Compare = None,
    by: Annotated[str, typer.Option("--by", help="flow (per flow and channel) | message.")] = "flow",
    sort: Sort = None,
    limit: Limit = None,
    channel: Channel = None,
    source: Source = "events",
    fmt: Format = "table",
    output: Output = None,
    max_age: MaxAge = None,
) -> None:
    """Per flow (and channel) or per flow message: the campaign figures over the period."""
    period, against = _periods(from_, to, last, compare)

    def build(db):
        if source == "compare":
            return compare_report(db, "flow-values", period, channel=channel, sort=sort, limit=limit)
        return messages.flow_report(
            db, period, by=by, channel=channel, sort=sort, limit=limit, source=source, compare=against
        )

    _run(ctx, "flows", build, fmt, output, max_age, source)


def _audience_command(name: str, build: Callable, doc: str) -> Callable:
    """forms, segments and lists take the same options; one definition serves all three."""

    def command(
        ctx: typer.Context,
        from_: From = None,
        to: To = None,
        last: Last = None,
        compare: Compare = None,
        sort: Sort = None,
        limit: Limit = None,
        fmt: Format = "table",
        output: Output = None,
        max_age: MaxAge = None,
    ) -> None:
        period, against = _periods(from_, to, last, compare)
        _run(ctx, name, lambda db: build(db, period, against, sort=sort, limit=limit), fmt, output, max_age)

    command.__doc__ = doc
    command.__name__ = f"{name}_cmd"
    return command


for _name, _build, _doc in (
    ("forms", audience.form_report, "Per form: views, viewers, submissions, submitters and submit rate."),
    (
        "segments",
        audience.segment_report,
        "Per segment: members and growth (joined, left, net) over the period.",
    ),
    ("lists", audience.list_report, "Per list: members and growth (joined, left, net) over the period."),
):
    app.command(_name)(_audience_command(_name, _build, _doc))


@app.command("metric")
def metric_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Metric name, e.g. 'Placed Order'.")],
    from_: From = None,
    to: To = None,
    last: Last = None,
    compare: Compare = None,
    interval: Annotated[str, typer.Option("--interval", help="hour | day | week | month.")] = "day",
    measure: Annotated[
        str, typer.Option("--measure", help="count | value ($value sum) | uniques (profiles).")
    ] = "count",
    window: Annotated[int, typer.Option("--window", help="Buckets in the moving average and z-score.")] = 7,
    z: Annotated[float, typer.Option("--z", help="|z-score| that flags an anomaly.")] = 3.0,
    forecast: Annotated[
        str | None, typer.Option("--forecast", help="Forecast horizon, e.g. 30d, 12w.")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="auto | seasonal | linear (auto: best back-test).")
    ] = "auto",
    fmt: Format = "table",
    output: Output = None,
    max_age: MaxAge = None,
) -> None:
    """One metric over time, with trend, anomalies and an optional back-tested forecast."""
    period, against = _periods(from_, to, last, compare, default="90d")
    _run(
        ctx,
        "metric",
        lambda db: timeseries.metric_report(
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
        ),
        fmt,
        output,
        max_age,
    )


@app.command("rfm")
def rfm_cmd(
    ctx: typer.Context,
    from_: From = None,
    to: To = None,
    last: Last = None,
    compare: Compare = None,
    by: Annotated[str, typer.Option("--by", help="segment | profile.")] = "segment",
    sort: Sort = None,
    limit: Limit = None,
    fmt: Format = "table",
    output: Output = None,
    max_age: MaxAge = None,
) -> None:
    """Recency-frequency-monetary scores and segments from the period's orders."""
    period, against = _periods(from_, to, last, compare, default="365d")
    _run(
        ctx,
        "rfm",
        lambda db: customers.rfm_report(db, period, against, by=by, sort=sort, limit=limit),
        fmt,
        output,
        max_age,
    )


@app.command("cohorts")
def cohorts_cmd(
    ctx: typer.Context,
    from_: From = None,
    to: To = None,
    last: Last = None,
    months: Annotated[int, typer.Option("--months", help="Months to follow.")] = 12,
    fmt: Format = "table",
    output: Output = None,
    max_age: MaxAge = None,
) -> None:
    """Monthly retention cohorts by first order month (cohorts starting in the period)."""
    period = resolve_period(from_=from_, to=to, last=last, default="365d")
    _run(ctx, "cohorts", lambda db: customers.cohort_report(db, period, months=months), fmt, output, max_age)


@app.command("dashboard")
def dashboard_cmd(
    ctx: typer.Context,
    html_file: Annotated[Path, typer.Option("--html", help="HTML file to write.")],
    from_: From = None,
    to: To = None,
    last: Last = None,
    compare: Annotated[str | None, typer.Option("--compare", help="previous | year | none.")] = "previous",
    max_age: MaxAge = None,
) -> None:
    """One self-contained HTML page: KPI cards, charts, campaign and flow tables."""
    from klaviyo_etl.reports.html import dashboard_html

    period, against = _periods(from_, to, last, None if compare == "none" else compare)
    settings = settings_of(ctx)
    db = open_database(settings.db_path, create=max_age is not None)
    try:
        ensure_fresh(settings, db, "dashboard", max_age)
        _announce_rebuild(db, settings.quiet)
        page = dashboard_html(db, period, against)
    finally:
        db.close()
    html_file.write_text(page, encoding="utf-8")
    if not settings.quiet:
        typer.echo(f"wrote {html_file}")
