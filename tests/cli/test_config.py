"""`klaviyo-etl config`: where the file is, what is set and where each value came from."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.db import open_database
from klaviyo_etl.sync.engine import StreamResult
from klaviyo_etl.sync.state import record_run

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"KLAVIYO_ETL_CONFIG": str(tmp_path / "config.toml"), "KLAVIYO_ETL_DB": ""}


def _json(args: list[str], env: dict[str, str]) -> dict:
    result = runner.invoke(app, [*args, "config", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_config_without_a_file_shows_the_defaults(tmp_path, env):
    result = runner.invoke(app, ["--db", str(tmp_path / "k.db"), "config"], env={**env, "COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert f"Config file: {tmp_path / 'config.toml'} (not found, so defaults apply" in result.output
    assert "location set by KLAVIYO_ETL_CONFIG" in result.output
    events = next(line for line in result.output.splitlines() if "schedule.events" in line)
    assert "1h" in events and "default" in events
    assert f"Effective db: {tmp_path / 'k.db'} (from command line)" in result.output


def test_config_shows_what_the_file_sets(tmp_path, env):
    Path(env["KLAVIYO_ETL_CONFIG"]).write_text(
        '[schedule]\nevents = "15m"\n[defaults]\ndb = "%s"\n' % (tmp_path / "file.db")
    )
    data = _json([], env)
    assert data["exists"] is True and data["path"] == env["KLAVIYO_ETL_CONFIG"]
    settings = {s["key"]: (s["value"], s["source"]) for s in data["settings"]}
    assert settings["schedule.events"] == ("15m", "file")
    assert settings["schedule.flows"] == ("6h", "default")
    effective = {e["key"]: (e["value"], e["source"]) for e in data["effective"]}
    assert effective["db"] == (str(tmp_path / "file.db"), "file")
    # An explicit --db or KLAVIYO_ETL_DB wins over the file.
    assert _json(["--db", "/x/cli.db"], env)["effective"][0] == {
        "key": "db",
        "value": "/x/cli.db",
        "source": "command line",
    }
    assert _json([], {**env, "KLAVIYO_ETL_DB": "/x/env.db"})["effective"][0]["source"] == "environment"


def test_config_show_says_where_the_request_timeout_came_from(tmp_path, env):
    def effective(args, env):
        return next(e for e in _json(args, env)["effective"] if e["key"] == "request_timeout")

    assert effective([], env) == {"key": "request_timeout", "value": "60 s", "source": "default"}
    Path(env["KLAVIYO_ETL_CONFIG"]).write_text("[sync]\nrequest_timeout = 20\n")
    assert effective([], env) == {"key": "request_timeout", "value": "20 s", "source": "file"}
    timed = {**env, "KLAVIYO_ETL_REQUEST_TIMEOUT": "30"}
    assert effective([], timed) == {"key": "request_timeout", "value": "30 s", "source": "environment"}
    assert effective(["--request-timeout", "45"], timed)["source"] == "command line"
    settings = {s["key"]: (s["value"], s["source"]) for s in _json([], env)["settings"]}
    assert settings["sync.request_timeout"] == ("20", "file")


@pytest.mark.parametrize(
    "args, variable",
    [(["--request-timeout", "0"], None), (["--request-timeout", "601"], None), ([], "-3"), ([], "nan")],
)
def test_a_request_timeout_out_of_range_is_one_line_and_exit_2(tmp_path, env, args, variable):
    if variable is not None:
        env = {**env, "KLAVIYO_ETL_REQUEST_TIMEOUT": variable}
    result = runner.invoke(app, [*args, "config", "show"], env=env)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: request timeout "), lines
    assert "give more than 0 and at most 600 seconds" in lines[0]


def test_the_files_default_db_is_used_by_schedule_commands(tmp_path, env):
    Path(env["KLAVIYO_ETL_CONFIG"]).write_text('[defaults]\ndb = "%s"\n' % (tmp_path / "file.db"))
    # `schedule status` creates no database (a mistyped path): one run recorded in that file
    # shows it is the one read
    db = open_database(tmp_path / "file.db")
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    record_run(db, "run1", StreamResult("events", "ok", started_at=stamp, ended_at=stamp))
    db.close()
    result = runner.invoke(app, ["schedule", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["db"] == str(tmp_path / "file.db")
    assert next(s for s in data["streams"] if s["stream"] == "events")["last_status"] == "ok"


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--json"],
        ["report", "campaigns", "-f", "json"],
        ["report", "dashboard", "--html", "{tmp}/dash.html"],
        ["migrate", "status"],
        ["export", "parquet", "{tmp}/parquet"],
        ["purge", "--deleted"],
        ["check", "--format", "json"],
    ],
    ids=lambda args: " ".join(a for a in args if not a.startswith(("-", "{"))),
)
def test_the_files_default_db_is_the_one_every_command_reads(tmp_path, env, args):
    # Before, only sync, schedule and config applied [defaults]: a report read (or created) the
    # default database beside it and showed nothing, while `config show` named the file's.
    Path(env["KLAVIYO_ETL_CONFIG"]).write_text(
        '[defaults]\ndb = "%s"\nbase_url = "http://127.0.0.1:9"\n' % (tmp_path / "missing.db")
    )
    elsewhere = {**env, "XDG_DATA_HOME": str(tmp_path / "data"), "KLAVIYO_API_KEY": "pk_test"}
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args], env=elsewhere)
    assert result.exit_code != 0
    said = " ".join(result.output.split())
    if args[0] == "check":  # the file's base_url: the network comes before the database
        assert "cannot connect to http://127.0.0.1:9" in said, said
    else:
        assert f"no database at {tmp_path / 'missing.db'}" in said, said
    assert not (tmp_path / "data").exists()  # nothing created at the default place


def test_config_path_and_show(tmp_path, env):
    result = runner.invoke(app, ["config", "path"], env=env)
    assert result.output.strip() == env["KLAVIYO_ETL_CONFIG"]
    shown = runner.invoke(app, ["config", "show", "--json"], env=env)
    assert json.loads(shown.output)["path"] == env["KLAVIYO_ETL_CONFIG"]


def test_config_init_writes_once_then_needs_force(tmp_path, env):
    path = Path(env["KLAVIYO_ETL_CONFIG"])
    first = runner.invoke(app, ["config", "init"], env=env)
    assert first.exit_code == 0 and f"wrote {path}" in first.output
    assert path.read_text().startswith("# klaviyo-etl configuration")
    path.write_text('[schedule]\nevents = "2h"\n')
    again = runner.invoke(app, ["config", "init"], env=env)
    assert again.exit_code == 2
    assert "already exists; pass --force" in again.output
    assert "2h" in path.read_text()
    forced = runner.invoke(app, ["config", "init", "--force"], env=env)
    assert forced.exit_code == 0 and "2h" not in path.read_text()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("{tmp}", "config {tmp} is a folder: set KLAVIYO_ETL_CONFIG to a file path"),
        ("{tmp}/notes/config.toml", "cannot write config {tmp}/notes/config.toml: a file is in the way"),
    ],
)
def test_config_init_where_no_file_can_be_is_one_line(tmp_path, where, message):
    (tmp_path / "notes").write_text("a file, not a folder")
    env = {"KLAVIYO_ETL_CONFIG": where.replace("{tmp}", str(tmp_path))}
    for args in (["config", "init"], ["config", "init", "--force"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: " + message.replace("{tmp}", str(tmp_path)))


def test_a_bad_file_is_reported_by_config_itself(tmp_path, env):
    Path(env["KLAVIYO_ETL_CONFIG"]).write_text('[schedule]\nfoo = "1h"\n')
    result = runner.invoke(app, ["config"], env=env)
    assert result.exit_code == 2
    assert "[schedule] foo: unknown stream" in result.output


def test_config_show_lists_the_conversion_metric(tmp_path, env):
    shown = runner.invoke(app, ["config", "show", "--json"], env=env)
    settings = {s["key"]: s for s in json.loads(shown.output)["settings"]}
    assert settings["reports.conversion_metric"]["source"] == "default"
    Path(env["KLAVIYO_ETL_CONFIG"]).write_text('[reports]\nconversion_metric = "mPO"\n')
    shown = runner.invoke(app, ["config", "show", "--json"], env=env)
    settings = {s["key"]: s for s in json.loads(shown.output)["settings"]}
    assert (
        settings["reports.conversion_metric"]["value"],
        settings["reports.conversion_metric"]["source"],
    ) == (
        "mPO",
        "file",
    )


def test_config_show_on_an_80_column_terminal_wraps_its_lines_at_their_spaces(tmp_path, env):
    # The first line ran past the edge and the terminal cut it mid-word ("confi" / "g init").
    result = runner.invoke(
        app,
        ["--db", str(tmp_path / "k.db"), "config"],
        env={**env, "COLUMNS": "80", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"},
    )
    assert result.exit_code == 0, result.output
    lines = re.sub(r"\x1b\[[0-9;]*m", "", result.output).splitlines()  # bold headers
    assert max(len(line) for line in lines) <= 80, result.output
    assert "`klaviyo-etl config init`" in " ".join(line.strip() for line in lines)
