"""Bad input: one clear line, a non-zero exit, no traceback, stored data untouched."""

import json
import os
import sqlite3
import time

import pytest
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.db import open_database


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "k.db"
    open_database(path)["metrics"].insert({"id": "m1", "name": "Placed Order"})
    return path


def run(args, env=None):
    return CliRunner().invoke(app, args, env=env or {"KLAVIYO_API_KEY": "pk_test_abcd1234"})


def assert_one_line_error(result, code, fragment):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert fragment in lines[0]


def test_unknown_stream_lists_valid_ones(db_path):
    result = run(["--db", str(db_path), "sync", "evnts"])
    assert_one_line_error(result, 2, "unknown stream evnts; valid streams: all, metrics, events")


def test_an_empty_stream_name_is_shown_as_empty(db_path):
    result = run(["--db", str(db_path), "sync", "metrics", ""])
    assert_one_line_error(result, 2, "unknown stream ''; valid streams: all, metrics")


@pytest.mark.parametrize("option", ["--lookback-days", "--reconcile-days"])
@pytest.mark.parametrize("days", ["99999999", "inf", "1e300"])
def test_days_beyond_a_century_are_refused_before_the_run(db_path, option, days):
    # they failed the events stream on an OverflowError, or the whole run as "unexpected"
    result = run(["--db", str(db_path), "sync", "events", option, days], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and "less than or equal to 36500" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("key", ["", " ", "\t\n"])
def test_missing_api_key(db_path, key):
    # Before, a blank key was sent: "Illegal header value", retried as transient for ~60 s
    # (8 attempts), then exit 1 "the next sync tries again", at every cron run.
    result = run(["--db", str(db_path), "sync", "metrics"], env={"KLAVIYO_API_KEY": key})
    assert_one_line_error(result, 2, "no API key: set KLAVIYO_API_KEY")


@pytest.mark.parametrize("key", ["pk_ünïcode_abcd", "pk_abc def", "pk_abc\tdef"])
def test_an_api_key_no_header_can_carry_is_refused_before_the_run(db_path, key):
    # "unexpected UnicodeEncodeError: 'ascii' codec can't encode character", exit 1.
    result = run(
        ["--db", str(db_path), "--base-url", "http://127.0.0.1:9", "sync", "metrics"],
        env={"KLAVIYO_API_KEY": key},
    )
    assert_one_line_error(result, 2, "holds a space or a character no key has")


def test_bad_since(db_path):
    result = run(["--db", str(db_path), "sync", "events", "--since", "yesterday-ish"])
    assert_one_line_error(result, 2, "--since 'yesterday-ish' is not a date")


def test_a_since_in_the_future_is_refused(db_path):
    # it re-read nothing of what it was asked for and said ok (a mistyped year)
    result = run(["--db", str(db_path), "sync", "events", "--since", "2062-01-01"])
    assert_one_line_error(
        result, 2, "--since 2062-01-01 is in the future: give the past date to re-read from"
    )


@pytest.mark.parametrize("since", ["0226-01-01", "0001-01-01", "1969-12-31T23:59:59Z"])
def test_a_since_before_1970_is_refused(db_path, since):
    # A mistyped year: profiles and lists failed on an OverflowError or a 400 ("invalid
    # value '1-01-01T00:00:00Z'"), and events with a year before 1000 hung, ignoring SIGTERM.
    result = run(
        ["--db", str(db_path), "--base-url", "http://127.0.0.1:9", "sync", "events", "--since", since]
    )
    assert_one_line_error(result, 2, f"--since {since} is before 1970: Klaviyo holds nothing older")


def test_unreachable_server_stops_the_run_at_once_naming_the_url_and_keeps_the_database(db_path):
    began = time.monotonic()
    result = run(["--db", str(db_path), "--quiet", "--base-url", "http://127.0.0.1:9", "sync", "metrics"])
    assert time.monotonic() - began < 10  # not retried as if a connection had dropped mid-run
    assert_one_line_error(result, 1, "Error: cannot connect to http://127.0.0.1:9")
    db = open_database(db_path)
    assert db["metrics"].count == 1
    run_row = next(db["sync_runs"].rows)
    assert run_row["status"] == "failed" and "cannot connect to http://127.0.0.1:9" in run_row["error"]


def test_version():
    result = run(["--version"])
    assert result.exit_code == 0 and "2026-07-15" in result.output


def test_reading_commands_refuse_a_missing_database_and_create_nothing(tmp_path):
    missing = tmp_path / "typo" / "klaviyo.db"
    for args in (["report", "campaigns"], ["status"], ["migrate", "status"], ["report", "overview"]):
        result = run(["--db", str(missing), *args])
        assert_one_line_error(result, 2, f"no database at {missing}")
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--db", "", "status"], "'--db'"),
        (["export", "parquet", ""], "'DIR'"),
        (["report", "campaigns", "-o", ""], "'--output' / '-o'"),
        (["report", "dashboard", "--html", ""], "'--html'"),
        (["schedule", "crontab", "--log", ""], "'--log'"),
    ],
)
def test_an_empty_path_is_a_usage_error_not_the_current_folder(db_path, tmp_path, monkeypatch, args, option):
    monkeypatch.chdir(tmp_path)  # where `export parquet ""` wrote its files
    result = run(["--db", str(db_path), *args], env={"KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml")})
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {option}" in result.output and "the path is empty" in result.output
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("k.db")) == []


def test_the_key_is_not_sent_over_plain_http_to_a_remote_host(db_path):
    result = run(["--db", str(db_path), "--base-url", "http://klaviyo.example.com", "sync", "metrics"])
    assert_one_line_error(result, 2, "refusing to send the API key over plain HTTP")
    assert "--allow-insecure" in result.output


def test_allow_insecure_after_the_subcommand_lets_the_key_go_over_plain_http(db_path):
    # 0.0.0.0 is not a loopback address, yet nothing listens there: the run gets as far as
    # connecting, which the refusal above never does.
    args = ["--db", str(db_path), "--quiet", "--base-url", "http://0.0.0.0:9", "sync", "metrics"]
    assert_one_line_error(run(args), 2, "refusing to send the API key over plain HTTP")
    result = run([*args, "--allow-insecure"])
    assert_one_line_error(result, 1, "Error: cannot connect to http://0.0.0.0:9")


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_a_reader_that_stops_early_is_no_error(tiny_db_path, fmt):
    # `report flows -f csv | head -1`: the closed pipe came out as "Error: unexpected
    # BrokenPipeError ... (rerun with --verbose)", a bug report for what is no bug.
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-m", "klaviyo_etl", "--db", str(tiny_db_path), "report", "flows", "-f", fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()  # the reader is gone before the first line is written
    error = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(timeout=60) != 0  # as Click leaves it: the output did not all arrive
    assert error == ""


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["report", "campaigns", "--limit", "x"],
            "Error: Invalid value for '--limit': 'x' should be a valid integer",
        ),
        (["report", "campaigns", "--limit", "0"], "'--limit': 0 should be greater than or equal to 1"),
        (["report", "metric", "Placed Order", "--window", "x"], "'--window': 'x' should be a valid integer"),
        (["report", "metric", "Placed Order", "--z", "abc"], "'--z': 'abc' should be a valid number"),
        (["--retries", "x", "status"], "'--retries' (env var: 'KLAVIYO_ETL_RETRIES'): 'x' should be"),
        (["sandbox", "serve", "--port", "x"], "Invalid value for '--port': 'x' should be a valid integer"),
        (["schedule", "run", "--poll", "x"], "Invalid value for '--poll': 'x' should be a valid number"),
        (["check", "--tolerance", "x"], "Invalid value for '--tolerance': 'x' should be a valid number"),
        (["report", "campaigns", "-o", ""], "Invalid value for '--output' / '-o': the path is empty"),
        (["report", "campaigns", "--bogus"], "No such option: --bogus"),
        (["report", "campaigns", "extra"], "Got unexpected extra argument(s) (extra)"),
        (["report", "metric"], "Missing argument 'name' (see `root report metric --help`)"),
        (
            ["report", "campaign"],
            "No such command 'campaign'. Did you mean 'campaigns'? (see `root report --help`)",
        ),
        (["report", "campaigns", "--limit"], "Option '--limit' requires an argument"),
        (["bogus"], "No such command 'bogus' (see `root --help`)"),  # CliRunner's program name
    ],
)
def test_a_value_or_usage_the_cli_framework_refuses_is_one_line_exit_2(db_path, args, line):
    # Typer printed the usage, a hint and the message in a box of five lines or more.
    result = run(["--db", str(db_path), *args], env={"COLUMNS": "80"})
    assert_one_line_error(result, 2, line)
    assert result.output.startswith("Error: ")


def test_a_group_without_its_command_still_prints_its_help(db_path):
    result = run(["--db", str(db_path), "report"])
    assert result.exit_code == 2 and "Usage: root report" in result.output
    assert "campaigns" in result.output and "Error" not in result.output


@pytest.mark.parametrize("mistake", [["-f", "xml"], ["--columns", "nope"]], ids=["format", "columns"])
def test_a_report_that_fails_leaves_the_output_file_it_would_replace_as_it_was(
    tiny_db_path, tmp_path, mistake
):
    # The file was opened (emptied) first: a typo in --format or --columns lost yesterday's report.
    kept = tmp_path / "campaigns.csv"
    kept.write_text("yesterday's report\n")
    result = run(["--db", str(tiny_db_path), "report", "campaigns", "-o", str(kept), *mistake])
    assert_one_line_error(result, 2, mistake[0])
    assert kept.read_text() == "yesterday's report\n"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("tiny.db")) == ["campaigns.csv"]


def test_an_output_file_s_extension_names_its_format_unless_format_is_given(tiny_db_path, tmp_path):
    # `-o campaigns.csv` wrote the terminal's box-drawn table into the .csv file.
    base = ["--db", str(tiny_db_path), "report", "campaigns", "--last", "all"]
    for name, starts in (
        ("c.csv", "campaign_id,"),
        ("c.JSON", "{"),
        ("c.html", "<!doctype html>"),
        ("c.txt", "C"),
    ):
        assert run([*base, "-o", str(tmp_path / name)]).exit_code == 0
        assert (tmp_path / name).read_text().lower().startswith(starts.lower()), name
    assert run([*base, "-o", str(tmp_path / "t.csv"), "-f", "table"]).exit_code == 0
    assert "Campaigns" in (tmp_path / "t.csv").read_text().splitlines()[0]
    # `-o -` is stdout, as other tools read it (it wrote a file named "-").
    result = run([*base, "-o", "-", "-f", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["report"] == "campaigns"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["report", "campaigns", "--max-age", "99999999999999999999d"],
            "--max-age '99999999999999999999d' is too long",
        ),
        (["report", "metric", "Placed Order", "--window", "100000000"], "--window 100000000 is too long"),
        (["report", "metric", "Placed Order", "--from", "0001-01-01"], "--from 0001-01-01 is before 1970"),
        (
            ["report", "campaigns", "--from", "0001-01-01", "--to", "0001-01-02", "--compare", "year"],
            "before 1970",
        ),
        (["report", "campaigns", "--to", "9999-12-31"], "--to 9999-12-31 is after 2999"),
        (
            ["report", "overview", "--from", "2026-01-01", "--to", "9999-12-30", "--compare", "previous"],
            "after 2999",
        ),
        (["report", "campaigns", "--from", "2026-01-01garbage"], "'2026-01-01garbage' is not a date"),
    ],
)
def test_a_value_past_the_calendar_s_ends_is_one_line_exit_2(db_path, args, line):
    # Each ended in "Error: unexpected OverflowError" (or ValueError: year 0), exit 1.
    assert_one_line_error(run(["--db", str(db_path), *args], env={"COLUMNS": "200"}), 2, line)


def test_a_schedule_interval_past_the_calendar_is_a_config_error(db_path, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[schedule]\nevents = "99999999999d"\n')
    result = run(["--db", str(db_path), "schedule", "status"], env={"KLAVIYO_ETL_CONFIG": str(config)})
    assert_one_line_error(result, 2, "'99999999999d' is too long; the longest interval is 9999d")


@pytest.mark.parametrize("args", [["status"], ["sync", "metrics"], ["report", "campaigns"], ["migrate"]])
def test_a_database_path_that_is_no_file_is_refused_and_nothing_is_made_beside_it(tmp_path, args):
    # A device or a pipe: `--db /dev/null status` ended in "unexpected OperationalError: disk I/O
    # error" and left /dev/null-journal and /dev/null.lock behind.
    fifo = tmp_path / "k.db"
    os.mkfifo(fifo)
    result = run(["--db", str(fifo), *args], env={"COLUMNS": "200", "KLAVIYO_API_KEY": "pk_test_abcd1234"})
    assert_one_line_error(result, 2, f"cannot open database {fifo}: it is not a regular file")
    assert [p.name for p in tmp_path.iterdir()] == ["k.db"]


def test_a_dashboard_over_a_period_open_at_one_end_is_drawn_without_a_comparison(tiny_db_path, tmp_path):
    # Refused for the default `--compare previous` the user never gave.
    page = tmp_path / "d.html"
    result = run(
        ["--db", str(tiny_db_path), "report", "dashboard", "--html", str(page), "--from", "2026-05-01"]
    )
    assert result.exit_code == 0, result.output
    assert page.exists()


def test_migrate_status_of_a_newer_database_lists_its_newer_migrations_and_says_so(db_path):
    db = open_database(db_path)
    db["_migrations"].insert({"version": 999, "name": "m999_from_the_future", "applied_at": "2030-01-01"})
    db.close()
    result = run(["--db", str(db_path), "migrate", "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "m999_from_the_future" in result.output
    assert "database schema version 999 is newer than this klaviyo-etl" in result.output


def test_schedule_status_says_there_is_no_database_yet(tmp_path):
    missing = tmp_path / "typo.db"
    result = run(["--db", str(missing), "schedule", "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"(db {missing}: none yet)" in " ".join(result.output.split())
    assert not missing.exists()


def test_an_output_name_longer_than_the_system_takes_is_one_line_and_the_longest_it_takes_is_written(
    tiny_db_path, tmp_path
):
    # 300 characters: "unexpected OSError: [Errno 36] File name too long", exit 1. 245: written (the
    # report goes aside under a short name of its own, not the file's name and more).
    base = ["--db", str(tiny_db_path), "report", "campaigns", "-f", "csv", "-o"]
    too_long = tmp_path / ("x" * 300 + ".csv")
    assert_one_line_error(run([*base, str(too_long)], env={"COLUMNS": "400"}), 2, "File name too long")
    longest = tmp_path / ("y" * 245 + ".csv")
    assert run([*base, str(longest)]).exit_code == 0
    assert longest.read_text().startswith("campaign_id,")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("tiny.db")) == [longest.name]


def test_a_read_only_output_file_is_one_line_and_stays_as_it_was(tiny_db_path, tmp_path):
    # Written aside and renamed, it would replace a file made read-only (the folder allows it).
    kept = tmp_path / "campaigns.csv"
    kept.write_text("yesterday's report\n")
    kept.chmod(0o444)
    if os.access(kept, os.W_OK):
        pytest.skip("file modes are not enforced for this user (root)")
    result = run(["--db", str(tiny_db_path), "report", "campaigns", "-o", str(kept)])
    assert_one_line_error(result, 2, f"cannot write --output {kept}: Permission denied")
    assert kept.read_text() == "yesterday's report\n"


def _disk_full_error() -> Exception:
    """SQLite's own error for a full disk (SQLITE_FULL), from a database that may not grow."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x)")
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")
    try:
        conn.execute("INSERT INTO t VALUES (randomblob(100000))")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("the database grew past its max_page_count")


def test_a_full_disk_is_said_in_one_line_not_as_a_bug(db_path, monkeypatch):
    # A sync that filled its disk: "Error: unexpected OperationalError: database or disk is
    # full (rerun with --verbose)", as if klaviyo-etl had a bug.
    import klaviyo_etl.sync.engine

    def fills_the_disk(*args, **kwargs):
        raise _disk_full_error()

    monkeypatch.setattr(klaviyo_etl.sync.engine, "run_sync", fills_the_disk)
    result = run(
        ["--db", str(db_path), "sync", "metrics"], env={"COLUMNS": "300", "KLAVIYO_API_KEY": "pk_x_abcd"}
    )
    assert_one_line_error(result, 1, "Error: the disk is full (database or disk is full): free space")
    assert "unexpected" not in result.output


@pytest.mark.parametrize("wal", [False, True])
def test_reading_a_database_in_a_read_only_folder_says_what_to_do(tiny_db_path, tmp_path, wal):
    # A -wal left behind (and no -shm) is "unable to open database file"; none, "attempt to
    # write a readonly database": either way the folder is what to fix.
    if wal:
        tiny_db_path.with_name("tiny.db-wal").touch()
    tmp_path.chmod(0o555)
    try:
        if os.access(tmp_path, os.W_OK):
            pytest.skip("file modes are not enforced for this user (root)")
        for args in (["report", "campaigns", "--last", "all"], ["status"]):
            result = run(["--db", str(tiny_db_path), *args])
            assert_one_line_error(
                result, 2, f"its folder {tmp_path} is not writable, and SQLite must create tiny.db-wal"
            )
            assert "copy the file to a folder you can write" in result.output
    finally:
        tmp_path.chmod(0o755)
