"""The options every report command shares, defined once (like sqlite-utils' `output_options`).

`@report_options(...)` adds `--from/--to/--last` (and `--compare`) right after a command's
arguments, and `--format/--output/--max-age/--columns/--wide` at the end, to the command's signature, which
is what Typer reads. The command receives what they mean instead: `period` (and `against`,
the comparison period or None) and `out`, an `OutputOptions`. So each command declares only
its own options, and `--help` lists the shared ones in the same place on every command.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from klaviyo_etl.cli.common import check_output_file, word_choice
from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports.periods import LAST_CHOICES, compare_period, resolve_period, utc_today
from klaviyo_etl.timeutil import beyond_tomorrow

From = Annotated[
    str | None,
    typer.Option("--from", metavar="DATE", help="First day (YYYY-MM-DD, in the account's timezone)."),
]
To = Annotated[
    str | None,
    typer.Option("--to", metavar="DATE", help="Last day, included (YYYY-MM-DD, account's timezone)."),
]
Compare = Annotated[
    str | None, typer.Option("--compare", metavar="PERIOD", help="Add the change vs: previous | year.")
]
Format = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        metavar="FORMAT",
        help="table | json | csv | html. [default: --output's extension (.json, .csv, .html), else table]",
        show_default=False,
        callback=word_choice,
    ),
]
# The format an --output file's extension names, when --format is not given: `-o report.csv`
# wrote the terminal's box-drawn table into report.csv.
FORMAT_OF_SUFFIX = {".json": "json", ".csv": "csv", ".html": "html", ".htm": "html"}


def last_option(default: str) -> Any:
    """`--last`, whose help names the report's own default period."""
    return Annotated[
        str | None,
        typer.Option(
            "--last",
            metavar="PERIOD",
            help=f"Relative period: {LAST_CHOICES}. Default: --last {default}.",
        ),
    ]


Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout ('-': stdout).")
]
Columns = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Table columns to show, by key, comma-separated (e.g. name,recipients,conversion_value);"
        " a wrong key lists them.",
    ),
]
Wide = Annotated[bool, typer.Option("--wide", help="Show every table column, however wide the terminal.")]
MaxAge = Annotated[
    str | None,
    typer.Option(
        "--max-age",
        metavar="AGE",
        envvar="KLAVIYO_ETL_MAX_AGE",
        help="Sync the streams this report reads first if older than this (e.g. 6h).",
    ),
]


@dataclass(frozen=True)
class OutputOptions:
    """--format, --output, --max-age, --columns and --wide of one report command."""

    fmt: str = "table"
    output: Path | None = None
    max_age: str | None = None
    columns: tuple[str, ...] | None = None  # the table's columns, by key (None: all that fit)
    wide: bool = False  # every table column, however wide the terminal


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation, default=default
    )


def report_options(
    *, default: str = "30d", compare: bool = True, output: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a report command the shared period and output options.

    `default` is the period when none is given; `compare=False` leaves out `--compare`
    (the command then receives no `against`); `output=False` leaves out `--format`,
    `--output`, `--max-age`, `--columns` and `--wide` (the command then receives no `out`).
    """
    period_options = [
        _option("from_", From, None),
        _option("to", To, None),
        _option("last", last_option(default), None),
    ]
    if compare:
        period_options.append(_option("compare", Compare, None))
    output_options = (
        [
            _option("fmt", Format, None),
            _option("output", Output, None),
            _option("max_age", MaxAge, None),
            _option("columns", Columns, None),
            _option("wide", Wide, False),
        ]
        if output
        else []
    )

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name not in ("period", "against", "out")]
        # The shared period options follow the context and the command's required parameters.
        lead = 0
        while lead < len(own) and own[lead].default is inspect.Parameter.empty:
            lead += 1
        parameters = own[:lead] + period_options + own[lead:] + output_options

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from_ = kwargs.pop("from_")
            period = resolve_period(
                from_=from_, to=kwargs.pop("to"), last=kwargs.pop("last"), default=default
            )
            if period.start and beyond_tomorrow(period.start):
                raise UsageError(
                    f"--from {from_} is in the future (today is {utc_today()}, UTC): nothing happened yet"
                )
            kwargs["period"] = period
            if compare:
                kwargs["against"] = compare_period(period, kwargs.pop("compare"))
            if output:
                columns = kwargs.pop("columns")
                path = kwargs.pop("output")
                if path is not None and str(path) == "-":  # as other tools read it (it wrote a file "-")
                    path = None
                if path is not None:
                    check_output_file(path, "--output")
                fmt = kwargs.pop("fmt")
                if fmt is None:
                    fmt = FORMAT_OF_SUFFIX.get(path.suffix.lower(), "table") if path else "table"
                kwargs["out"] = OutputOptions(
                    fmt,
                    path,
                    kwargs.pop("max_age"),
                    tuple(columns.split(",")) if columns is not None else None,
                    kwargs.pop("wide"),
                )
            return command(*args, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate
