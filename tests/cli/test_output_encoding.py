"""A stream that cannot encode every character (PYTHONIOENCODING=ascii, LANG=C on an old
system) gets those characters replaced, never an error: a report's "—", a key's "…", the
help's box lines."""

from __future__ import annotations

import os
import sqlite3
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


def _ascii_run(db, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "klaviyo_etl", "--db", str(db), *args],
        env={**os.environ, "PYTHONIOENCODING": "ascii", "KLAVIYO_ETL_CONFIG": str(db.parent / "x.toml")},
        capture_output=True,
        timeout=60,
    )


def test_a_machine_format_the_stream_cannot_hold_is_refused_not_written_with_question_marks(tiny_db_path):
    # A table is for eyes and may degrade; a CSV feeds other programs, and "?t? - Soldes" in
    # place of "Été — Soldes" would be data changed without a word. JSON escapes instead.
    with sqlite3.connect(tiny_db_path) as conn:
        conn.execute("UPDATE campaigns SET name = 'Été — Soldes' WHERE id = (SELECT min(id) FROM campaigns)")
    csv_run = _ascii_run(tiny_db_path, "report", "campaigns", "--last", "all", "-f", "csv")
    assert csv_run.returncode == 2, csv_run.stdout
    assert not csv_run.stdout  # nothing half-written
    error = csv_run.stderr.decode().strip()
    assert len(error.splitlines()) == 1 and "-o FILE" in error and "PYTHONIOENCODING=utf-8" in error
    json_run = _ascii_run(tiny_db_path, "report", "campaigns", "--last", "all", "-f", "json")
    assert json_run.returncode == 0 and "\\u00c9t\\u00e9 \\u2014 Soldes" in json_run.stdout.decode()
    out = tiny_db_path.parent / "c.csv"
    file_run = _ascii_run(tiny_db_path, "report", "campaigns", "--last", "all", "-o", str(out))
    assert file_run.returncode == 0 and "Été — Soldes" in out.read_text(encoding="utf-8")
