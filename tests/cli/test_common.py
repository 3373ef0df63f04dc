"""The command tree as a user meets it: every `--help`, and the global options' placement."""

from __future__ import annotations

import json
import re

import pytest
import typer.main
import typer.rich_utils
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.cli.common import hoist_global_options, walk_commands
from klaviyo_etl.cli.help_folding import SEPARATORS, separator_cuts

ROOT = typer.main.get_command(app)
COMMANDS = [path for path, _ in walk_commands(ROOT)]
BRACKETED = re.compile(r"\\?\[([^\]\n]*)\]")  # as declared: `[x]`, or `\[x]` once escaped


def _help(path: tuple[str, ...]) -> str:
    # Wide enough that no line wraps, so a declared phrase is found whole.
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400", "TERMINAL_WIDTH": "400"})
    assert result.exit_code == 0, result.output
    return result.output


def _declared(path: tuple[str, ...]) -> list[str]:
    command = dict(walk_commands(ROOT))[path]
    texts = [command.help or ""] + [param.help or "" for param in command.params]
    return [f"[{inner}]" for text in texts for inner in BRACKETED.findall(text)]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "root")
def test_every_help_keeps_its_bracketed_text_and_shows_no_bool_metavar(path):
    text = _help(path)
    assert "<bool>" not in text
    flat = " ".join(text.split())
    for phrase in _declared(path):
        assert phrase in flat, f"{phrase!r} lost from `{' '.join(path)} --help`"


def test_the_help_walk_sees_the_brackets_of_sync():
    assert "[default: config, else 3]" in _declared(("sync",))


def test_flags_show_no_value_and_options_say_what_they_take():
    text = _help(("sync",))
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("│ --")}
    assert rows["--full-refresh"].split()[2] == "Ignore"  # straight to the help: no metavar
    assert rows["--since"].split()[2] == "DATE"
    assert rows["--lookback-days"].split()[2] == "DAYS"
    root = _help(())
    assert re.search(r"--base-url +URL ", root) and re.search(r"--db +PATH ", root)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["sync", "all", "--quiet"], ["--quiet", "sync", "all"]),
        (["sync", "all", "--db", "x.db"], ["--db", "x.db", "sync", "all"]),
        (["sync", "--db=x.db", "events"], ["--db=x.db", "sync", "events"]),
        (
            ["-v", "report", "campaigns", "-q", "--last", "7d"],
            ["-v", "-q", "report", "campaigns", "--last", "7d"],
        ),
        (["--db", "a.db", "status", "--db", "b.db"], ["--db", "a.db", "--db", "b.db", "status"]),
        (["sync", "all", "--allow-insecure"], ["--allow-insecure", "sync", "all"]),
        (
            ["check", "--allow-insecure", "--base-url", "http://proxy.internal"],
            ["--allow-insecure", "--base-url", "http://proxy.internal", "check"],
        ),
        (["sync", "--help"], ["sync", "--help"]),  # eager: the help of `sync`, not of the root
        (["sync", "--", "--quiet"], ["sync", "--", "--quiet"]),
    ],
)
def test_global_options_after_the_subcommand_move_in_front_of_it(args, expected):
    assert hoist_global_options(ROOT, args) == expected


def test_sync_all_quiet_and_db_after_the_subcommand(sandbox_factory, tmp_path):
    with sandbox_factory("tiny") as sb:
        result = CliRunner().invoke(
            app,
            ["sync", "metrics", "--db", str(tmp_path / "k.db"), "--base-url", sb.server.url, "--quiet"],
            env={"KLAVIYO_API_KEY": sb.config.api_key, "KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml")},
        )
    assert result.exit_code == 0, result.output
    assert result.output == ""  # --quiet took effect
    assert (tmp_path / "k.db").exists()


def test_report_db_after_the_subcommand_and_the_later_one_wins(tiny_db_path, tmp_path):
    result = CliRunner().invoke(
        app,
        ["--db", str(tmp_path / "absent.db"), "report", "campaigns", "--last", "all", "-f", "json"]
        + ["--db", str(tiny_db_path)],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["report"] == "campaigns"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "root")
def test_a_help_paragraph_flows_to_the_terminal_s_width_and_keeps_no_source_line_breaks(path):
    # Typer keeps the single line breaks of a help's later paragraphs: at 80 columns
    # `status --help` read "... (JSON: `account` on every row);" / "an account" / "whose
    # database ...", each source line wrapped on its own. A paragraph flows as one (every
    # line but its last nearly full); an indented block (an example) keeps its lines.
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    description = result.output.split("╭")[0].split("Usage:", 1)[1].split("\n", 1)[1]
    for paragraph in re.split(r"\n\s*\n", description):
        lines = [line.rstrip() for line in paragraph.splitlines() if line.strip()]
        if any(line.startswith("     ") for line in lines):
            assert all(line.startswith("     ") for line in lines), (path, lines)
            continue  # an indented block (an example), still indented: its lines are its own
        for line in lines[:-1]:
            assert len(line) >= 60, (path, line, result.output)


def _help_at_80(path: tuple[str, ...], monkeypatch):
    # Typer reads the width once, as its Rich help loads (maybe in an earlier, wider test).
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 80)
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "root")
def test_every_help_at_80_columns_cuts_no_option_name_env_var_or_default(path, monkeypatch):
    """At 80 columns Rich cut what was wider than its column with "…": `--db`'s default path,
    `KLAVIYO_ETL_REQUEST_TIMEOUT`, `sandbox serve`'s `--rate-limit-scale`. Every option name,
    env var and default must be there whole (folded onto the next line is fine)."""
    result = _help_at_80(path, monkeypatch)
    assert max(len(line) for line in result.output.splitlines()) <= 80
    command = dict(walk_commands(ROOT))[path]
    declared = "".join([command.help or ""] + [param.help or "" for param in command.params])
    cut = [line for line in result.output.splitlines() if "…" in line]
    assert "…" in declared or not cut, cut
    # Whole once the panel's borders and the folds are taken out.
    joined = "".join(line.strip("│ ").replace(" ", "") for line in result.output.splitlines())
    for param in (p for p in command.params if p.param_type_name == "option"):
        for name in [*param.opts, *param.secondary_opts]:
            assert name in joined, name
        if isinstance(param.envvar, str) and param.show_envvar:
            assert param.envvar in joined, param.envvar


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "root")
def test_every_help_at_80_columns_folds_a_long_value_after_a_separator_not_mid_word(path, monkeypatch):
    """A value wider than its column is folded: Rich folded it at the column's last cell
    (`/root/.local/share/klaviyo` / `-etl/klaviyo.db]`, `KLAVIYO_ETL_REQUEST_TIMEOU` / `T]`).
    A folded piece fills its line alone; it must end at a separator."""
    lines = _help_at_80(path, monkeypatch).output.splitlines()
    for line, after in zip(lines, lines[1:], strict=False):
        piece = re.fullmatch(r"│ +(\S+) │", line)
        continued = re.match(r"│ {20,}\S", after)
        if piece and len(line) == 80 and continued:
            assert piece[1][-1] in SEPARATORS, f"folded mid-word: {line!r} / {after!r}"


def test_a_value_is_cut_after_its_last_separator_that_fits_or_at_the_width_if_none_does():
    assert separator_cuts("KLAVIYO_ETL_REQUEST_TIMEOUT]", 26) == [20]  # KLAVIYO_ETL_REQUEST_ / TIMEOUT]
    path = "/root/.local/share/klaviyo-etl/klaviyo.db]"
    assert separator_cuts(path, 26) == [19]  # /root/.local/share/ / klaviyo-etl/klaviyo.db]
    assert separator_cuts(path, 12) == [7, 19, 31]  # /root/. local/share/ klaviyo-etl/ klaviyo.db]
    assert separator_cuts("/abcdefghijkl", 5) == [5, 10]  # no separator but the first: at the width
    assert separator_cuts("short", 26) == []
