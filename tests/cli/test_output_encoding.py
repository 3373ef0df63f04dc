"""A stream that cannot encode every character (PYTHONIOENCODING=ascii, LANG=C on an old
system) gets those characters replaced, never an error: a report's "—", a key's "…", the
help's box lines."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from klaviyo_etl.cli import app

ascii_runner = CliRunner(charset="ascii")


@pytest.mark.parametrize(
    "args",
    [
        ["report", "campaigns", "--last", "all"],
        ["report", "flows", "--last", "all"],
        ["report", "overview", "--last", "all"],
        ["report", "rfm", "--last", "all"],
        ["status"],
        ["--help"],
        ["report", "campaigns", "--help"],
        ["check", "--help"],
    ],
)
def test_an_ascii_stream_gets_what_it_cannot_encode_replaced(tiny_db_path, args):
    env = {"KLAVIYO_ETL_CONFIG": str(tiny_db_path.parent / "none.toml"), "COLUMNS": "100"}
    result = ascii_runner.invoke(app, ["--db", str(tiny_db_path), *args], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.isascii() and result.stdout_bytes.strip()
    assert b"unexpected" not in result.stdout_bytes


def test_check_on_an_ascii_stream_says_the_key_with_its_ellipsis_in_dots(check_account):
    sb, path = check_account
    result = ascii_runner.invoke(
        app,
        ["--db", str(path), "--base-url", sb.server.url, "check", "--last", "all"],
        env={"KLAVIYO_API_KEY": sb.config.api_key, "KLAVIYO_ETL_CONFIG": str(path.parent / "none.toml")},
    )
    assert result.exit_code in (0, 1), result.output  # 1: the figures may differ; no error
    assert f"key       accepted (pk_...{sb.config.api_key[-4:]})" in result.output
    assert "unexpected" not in result.output


def test_the_installed_command_on_an_ascii_terminal_replaces_too(tiny_db_path):
    # The real sys.stdout (not the test runner's): PYTHONIOENCODING=ascii makes it strict.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "klaviyo_etl",
            "--db",
            str(tiny_db_path),
            "report",
            "campaigns",
            "--last",
            "all",
        ],
        env={
            **os.environ,
            "PYTHONIOENCODING": "ascii",
            "KLAVIYO_ETL_CONFIG": str(tiny_db_path.parent / "x.toml"),
        },
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.isascii() and not result.stderr
    assert b"Campaigns - " in result.stdout  # the title's dash
