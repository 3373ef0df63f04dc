"""`klaviyo-etl sandbox serve`: run the built-in Klaviyo look-alike on a local port."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated

import typer

from klaviyo_etl.cli.common import check_output_file
from klaviyo_etl.errors import UsageError
from klaviyo_etl.sandbox.config import SandboxConfig

app = typer.Typer(help="A local server that speaks Klaviyo's API over generated data.", no_args_is_help=True)

_DEFAULTS = SandboxConfig()


@app.command("serve")
def serve_command(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0 = any free port).")
    ] = 8765,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed: the same seed serves the same account.")] = (
        _DEFAULTS.seed
    ),
    profiles: Annotated[int, typer.Option(min=0, help="Profiles to generate.")] = _DEFAULTS.profiles,
    events: Annotated[int, typer.Option(min=0, help="Events to generate.")] = _DEFAULTS.events,
    campaigns: Annotated[int, typer.Option(min=0, help="Campaigns to generate.")] = _DEFAULTS.campaigns,
    flows: Annotated[int, typer.Option(min=0, help="Flows to generate.")] = _DEFAULTS.flows,
    lists: Annotated[int, typer.Option(min=0, help="Lists to generate.")] = _DEFAULTS.lists,
    segments: Annotated[int, typer.Option(min=0, help="Segments to generate.")] = _DEFAULTS.segments,
    forms: Annotated[int, typer.Option(min=0, help="Forms to generate.")] = _DEFAULTS.forms,
    templates: Annotated[int, typer.Option(min=0, help="Templates to generate.")] = _DEFAULTS.templates,
    tags: Annotated[int, typer.Option(min=0, help="Tags to generate.")] = _DEFAULTS.tags,
    days: Annotated[int, typer.Option(min=1, help="Days of event history before now.")] = _DEFAULTS.days,
    latency_ms: Annotated[float, typer.Option(min=0, help="Delay added to every answer (ms).")] = 0.0,
    fault_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of requests that fail (5xx, dropped, truncated).")
    ] = 0.0,
    rate_limits: Annotated[
        bool, typer.Option("--rate-limits/--no-rate-limits", help="Enforce Klaviyo's rate limits.")
    ] = False,
    rate_limit_scale: Annotated[
        float, typer.Option(help="Multiply allowed request rates (below 1: 429s sooner).")
    ] = 1.0,
    timezone: Annotated[
        str,
        typer.Option(
            help="The company's timezone (IANA name): the Reporting API and the reports count its days."
        ),
    ] = _DEFAULTS.timezone,
    currency: Annotated[
        str, typer.Option(help="The company's preferred currency (for orders that name none).")
    ] = _DEFAULTS.preferred_currency,
    stats_json: Annotated[
        Path | None,
        typer.Option(
            help="At shutdown (Ctrl-C or SIGTERM), write the request counters here as JSON, among"
            " them `early`: requests sent to an endpoint before its last 429's Retry-After ran out."
        ),
    ] = None,
) -> None:
    """Generate an account and serve it until Ctrl-C."""
    if stats_json is not None:  # said now, not at shutdown after the run
        check_output_file(stats_json, "--stats-json")
    _check_account(timezone, currency)
    if not rate_limit_scale > 0:  # 0 or less: one request a second everywhere; nan: every request dropped
        raise UsageError(
            f"--rate-limit-scale {rate_limit_scale} must be above 0 (e.g. 0.1: 429s ten times sooner)"
        )
    config = SandboxConfig(
        seed=seed,
        profiles=profiles,
        events=events,
        campaigns=campaigns,
        flows=flows,
        lists=lists,
        segments=segments,
        forms=forms,
        templates=templates,
        tags=tags,
        days=days,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        rate_limits=rate_limits,
        rate_limit_scale=rate_limit_scale,
        timezone=timezone,
        preferred_currency=currency,
    )
    from klaviyo_etl.sandbox.data import SandboxData
    from klaviyo_etl.sandbox.server import SandboxServer

    data = SandboxData.generate(config)
    try:
        server = SandboxServer(data, config, host, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    typer.echo(f"Klaviyo sandbox serving {profiles:,} profiles and {events:,} events at {server.url}")
    typer.echo(f"  export KLAVIYO_BASE_URL={server.url}")
    typer.echo(f"  export KLAVIYO_API_KEY={config.api_key}")
    typer.echo("Press Ctrl-C to stop.")
    if stats_json is not None:
        signal.signal(signal.SIGTERM, _interrupt)  # a terminated sandbox still writes its stats
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("\nstopped")
    finally:
        if stats_json is not None:
            _write_stats(stats_json, server.stats.snapshot())


def _check_account(timezone: str, currency: str) -> None:
    """An unknown zone would only surface as 400s from the Reporting API, mid-sync."""
    import zoneinfo

    from klaviyo_etl.errors import refuse_blank

    refuse_blank("--timezone", timezone, "an IANA timezone such as America/New_York")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--timezone {timezone!r} is not a timezone: give an IANA name such as America/New_York"
        ) from None
    if not (len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()):
        raise UsageError(
            f"--currency {currency!r} is not a currency code: give three capital letters such as EUR"
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _write_stats(path: Path, stats: dict) -> None:
    """Write `stats` whole or not at all: a reader never sees half a file."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(stats, indent=2))
    partial.replace(path)
