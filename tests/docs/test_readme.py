"""README.md's generated parts match the code, and a drift is caught."""

from __future__ import annotations

import typer.main

from klaviyo_etl.cli import app
from klaviyo_etl.cli.common import walk_commands
from klaviyo_etl.docs.readme import README, commands_table, main, tables_list


def test_the_readme_matches_the_code():
    assert main(["--check"]) == 0, "README.md is out of date: run `make readme`"


def test_a_stale_part_fails_the_check_and_is_named(tmp_path, capsys):
    stale = tmp_path / "README.md"
    stale.write_text(README.read_text().replace("| `klaviyo-etl status` |", "| `klaviyo-etl stat` |"))
    assert main(["--check", "--readme", str(stale)]) == 1
    assert "out of date: commands" in capsys.readouterr().err
    assert main(["--readme", str(stale)]) == 0  # rewriting brings it back
    assert stale.read_text() == README.read_text()


def test_every_command_and_public_table_is_listed():
    table = commands_table()
    root = typer.main.get_command(app)
    for path, command in walk_commands(root):
        if path and not getattr(command, "commands", None):
            assert f"`klaviyo-etl {' '.join(path)}" in table
    tables = tables_list()
    for name in ("events", "profiles", "campaigns", "list_members", "sync_runs", "report_values"):
        assert f"| `{name}` |" in tables
    assert "rollup_" not in tables and "_migrations" not in tables
