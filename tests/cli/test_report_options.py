"""The report commands' shared options come from one decorator; the root lists every command."""

from __future__ import annotations

import datetime as dt

import pytest
import typer
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.cli.report_options import OutputOptions, report_options
from klaviyo_etl.reports.periods import Period

PERIOD = ["--from", "--to", "--last"]
OUTPUT = ["--format", "--output", "--max-age", "--columns", "--wide"]
ACCOUNTS = ["--account", "--all-accounts"]  # after the command's own options
REPORTS = {
    "overview": PERIOD + ["--compare"] + ACCOUNTS + OUTPUT,
    "campaigns": PERIOD + ["--compare", "--sort", "--limit", "--channel", "--source"] + ACCOUNTS + OUTPUT,
    "flows": PERIOD + ["--compare", "--by", "--sort", "--limit", "--channel", "--source"] + ACCOUNTS + OUTPUT,
    "forms": PERIOD + ["--compare", "--sort", "--limit"] + ACCOUNTS + OUTPUT,
    "segments": PERIOD + ["--compare", "--sort", "--limit"] + ACCOUNTS + OUTPUT,
    "lists": PERIOD + ["--compare", "--sort", "--limit"] + ACCOUNTS + OUTPUT,
    "metric": PERIOD
    + ["--compare", "--interval", "--measure", "--window", "--z", "--forecast", "--method", "--table"]
    + ACCOUNTS
    + OUTPUT,
    "rfm": PERIOD + ["--compare", "--by", "--sort", "--limit"] + ACCOUNTS + OUTPUT,
    "cohorts": PERIOD + ["--months"] + ACCOUNTS + OUTPUT,
    "dashboard": ["--html"] + PERIOD + ["--compare", "--max-age"] + ACCOUNTS,
}


def _options(command) -> list[str]:
    return [p.opts[0] for p in command.params if p.param_type_name == "option"]


def test_the_root_registers_every_command_module():
    root = typer.main.get_command(app)
    assert list(root.commands) == [
        "sync",
        "status",
        "check",
        "purge",
        "migrate",
        "sandbox",
        "report",
        "schedule",
        "config",
        "export",
    ]


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_each_report_command_lists_the_shared_options_in_the_same_place(name):
    report = typer.main.get_command(app).commands["report"]
    assert _options(report.commands[name]) == REPORTS[name]


def test_the_decorator_hands_the_command_a_period_a_comparison_and_the_output():
    seen = {}
    sub = typer.Typer()

    @sub.command("one")
    @report_options(default="7d")
    def one(period: Period, against: Period | None, out: OutputOptions, extra: int = 1) -> None:
        seen.update(period=period, against=against, out=out, extra=extra)

    @sub.command("two")
    def two() -> None:  # a second command keeps "one" a subcommand
        pass

    result = CliRunner().invoke(
        sub, ["one", "--from", "2026-05-01", "--to", "2026-05-07", "--compare", "previous", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    assert (seen["period"].start, seen["period"].end) == (dt.date(2026, 5, 1), dt.date(2026, 5, 8))
    assert seen["against"].end == dt.date(2026, 5, 1)
    assert seen["out"] == OutputOptions(fmt="json", output=None, max_age=None, columns=None, wide=False)
    assert seen["extra"] == 1


def test_the_decorator_hands_over_columns_and_wide():
    seen = {}
    sub = typer.Typer()

    @sub.command("one")
    @report_options()
    def one(period: Period, against: Period | None, out: OutputOptions) -> None:
        seen.update(out=out)

    @sub.command("two")
    def two() -> None:
        pass

    result = CliRunner().invoke(sub, ["one", "--columns", "name,recipients", "--wide"])
    assert result.exit_code == 0, result.output
    assert seen["out"].columns == ("name", "recipients") and seen["out"].wide is True


@pytest.mark.parametrize(
    "command,default",
    [
        ("overview", "30d"),
        ("campaigns", "30d"),
        ("flows", "30d"),
        ("forms", "30d"),
        ("segments", "30d"),
        ("lists", "30d"),
        ("metric", "90d"),
        ("rfm", "365d"),
        ("cohorts", "365d"),
        ("dashboard", "30d"),
    ],
)
def test_each_report_help_states_its_default_period(command, default):
    result = CliRunner().invoke(app, ["report", command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"Default: --last {default}." in " ".join(result.output.split())
