"""Start-up (issue 12: `--help` and `report campaigns` start in < 0.3 s): what a command imports.

Each command runs in a fresh interpreter, as a user starts it, and reports the modules it
loaded; a module-level import that drags the sync, httpx or every report back in fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import klaviyo_etl
from klaviyo_etl.cli import SUMMARIES, app
from tests.helpers.sync import live_ids

_RUN = """
import json, sys
from klaviyo_etl.cli import main
sys.argv = ["klaviyo-etl", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\\n@modules " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

# Never needed to print the help: the sync and its HTTP client, the database layer, pydantic
# (the config file), and the modules of the commands themselves.
HEAVY = [
    "httpx",
    "pydantic",
    "sqlite_utils",
    "klaviyo_etl.sync.engine",
    "klaviyo_etl.client",
    "klaviyo_etl.config_file",
    "klaviyo_etl.db",
    "klaviyo_etl.reports.messages",
    "klaviyo_etl.reports.render",
    "klaviyo_etl.cli.report",
    "klaviyo_etl.cli.sync",
    "klaviyo_etl.cli.check",
    "klaviyo_etl.cli.schedule",
]


def loaded_modules(args: list[str], tmp_path) -> set[str]:
    """The modules `klaviyo-etl ARGS` imported, run in a fresh interpreter."""
    env = {
        **os.environ,
        "KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml"),
        "COLUMNS": "120",
        "PYTHONPATH": str(Path(klaviyo_etl.__file__).parents[1]),  # this checkout's package
    }
    done = subprocess.run(
        [sys.executable, "-c", _RUN, json.dumps(args)], capture_output=True, text=True, env=env, timeout=60
    )
    _, _, tail = done.stderr.rpartition("\n@modules ")
    assert tail, done.stderr
    result = json.loads(tail)
    assert result["code"] in (0, None), done.stdout + done.stderr
    return set(result["modules"])


def test_help_imports_no_command_module_nor_the_sync_httpx_pydantic_or_the_reports(tmp_path):
    modules = loaded_modules(["--help"], tmp_path)
    assert "typer" in modules  # the probe works
    assert [name for name in HEAVY if name in modules] == []
    assert not [name for name in modules if name.startswith("klaviyo_etl.reports")]


def test_report_campaigns_imports_neither_the_sync_nor_httpx_nor_the_other_reports(tiny_db_path, tmp_path):
    modules = loaded_modules(["--db", str(tiny_db_path), "report", "campaigns", "--last", "all"], tmp_path)
    assert "klaviyo_etl.reports.messages" in modules  # the probe works: it built the report
    unused = [
        "httpx",
        "klaviyo_etl.sync.engine",
        "klaviyo_etl.client",
        "klaviyo_etl.reports.audience",
        "klaviyo_etl.reports.customers",
        "klaviyo_etl.reports.compare",
        "klaviyo_etl.cli.sync",
        "klaviyo_etl.cli.check",
        "klaviyo_etl.cli.schedule",
        "klaviyo_etl.config_file",  # no config file: its defaults need no pydantic model
        "pydantic",  # nor do values that need no conversion (cli/common.py: PlainValues)
    ]
    assert [name for name in unused if name in modules] == []


# The modules loaded when a sync opens its first connections (its first requests: Klaviyo's
# clock, then on a new database the oldest row's), then each connection is refused: no
# server is needed to see them. The thread that loads the rest while they are out
# (`load_parts`) is held until the connection asked about (or for 5 s, which a sync that
# sends it only later fails by), so what it loads never races into the list.
_FIRST_REQUEST = """
import json, socket, sys, threading
seen = []
wanted = int(sys.argv[2])
connected = threading.Event()

def connect(self, address):
    seen.append(sorted(sys.modules))
    if len(seen) >= wanted:
        connected.set()
    raise ConnectionRefusedError(111, "refused by the probe")

socket.socket.connect = connect
from klaviyo_etl.cli import main
from klaviyo_etl.sync import engine
load_parts = engine.load_parts


def after_the_request():
    connected.wait(5)
    return load_parts()


engine.load_parts = after_the_request
sys.argv = ["klaviyo-etl", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\n@modules " + json.dumps(seen[wanted - 1] if len(seen) >= wanted else None))
"""


def modules_at_first_request(
    args: list[str], tmp_path, config: str | None = None, connection: int = 1
) -> set[str]:
    """The modules `klaviyo-etl ARGS` had imported when its first request (or its
    `connection`-th) went out."""
    config_file = tmp_path / "config.toml"
    if config is not None:
        config_file.write_text(config)
    env = {
        **os.environ,
        "KLAVIYO_ETL_CONFIG": str(config_file),
        "KLAVIYO_API_KEY": "pk_probe",
        "PYTHONPATH": str(Path(klaviyo_etl.__file__).parents[1]),
    }
    argv = ["--db", str(tmp_path / "probe.db"), "--base-url", "http://127.0.0.1:9", "--quiet", *args]
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_REQUEST, json.dumps(argv), str(connection)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    _, _, tail = done.stderr.rpartition("\n@modules ")
    modules = json.loads(tail) if tail else None
    assert modules, done.stdout + done.stderr  # it got as far as a request
    return set(modules)


# What a sync's first request (Klaviyo's clock) needs none of: the thread that opens the
# database loads the streams and the database layer while it is out (issue 12: start-up).
NOT_BEFORE_THE_FIRST_REQUEST = [
    "pydantic",  # Typer's coercion of `events`, the contract, the models, an empty config
    "typer._adapters",
    "rich",  # the help's markup is escaped without it (cli/common.py: escape)
    "sqlite_utils",
    "msgspec",
    "multiprocessing",
    "klaviyo_etl.models",
    "klaviyo_etl.config_file",
    "klaviyo_etl.db.database",
    "klaviyo_etl.db.migrations",
    "klaviyo_etl.db.repositories",
    "klaviyo_etl.db.rollups",
    "klaviyo_etl.sync.run",
    "klaviyo_etl.sync.parsing",
    "klaviyo_etl.sync.streams",
    "klaviyo_etl.sync.parts",
]


@pytest.mark.parametrize("config", [None, "", "# nothing set\n"])
def test_a_sync_sends_its_first_request_before_loading_the_streams_the_database_or_pydantic(tmp_path, config):
    modules = modules_at_first_request(["sync", "events", "--json"], tmp_path, config=config)
    assert "klaviyo_etl.client" in modules  # the probe works: the client sent it
    assert [name for name in NOT_BEFORE_THE_FIRST_REQUEST if name in modules] == []


def test_a_first_loads_oldest_row_request_goes_out_before_the_streams_the_database_or_pydantic_load(tmp_path):
    """On a new database its request for the oldest event goes out beside the clock's (the
    second connection), before `load_parts` has loaded the streams (issue 12)."""
    modules = modules_at_first_request(["sync", "events", "--json"], tmp_path, connection=2)
    assert "klaviyo_etl.client" in modules  # the probe works: a second request went out
    assert [name for name in NOT_BEFORE_THE_FIRST_REQUEST if name in modules] == []


@pytest.mark.parametrize("streams,models", [(["events", "profiles"], False), (["metrics"], True)])
def test_a_first_load_of_events_and_profiles_never_loads_the_models_nor_pydantic(
    sandbox_factory, tmp_path, monkeypatch, streams, models
):
    """Their pages are read by msgspec and their oldest rows without the models: pydantic and
    the models (~0.09 s) would only delay their first windows (issue 12). Other streams read
    their pages with them."""
    with sandbox_factory("tiny") as sb:
        monkeypatch.setenv("KLAVIYO_API_KEY", sb.config.api_key)
        db_path = tmp_path / "k.db"
        args = ["--db", str(db_path), "--base-url", sb.server.url, "--quiet", "sync", *streams, "--json"]
        modules = loaded_modules(args, tmp_path)
        assert ("pydantic" in modules, "klaviyo_etl.models" in modules) == (models, models)
        tables = {"events": "event", "profiles": "profile", "metrics": "metric"}
        for stream in streams:  # the probe works: the sync read them all
            assert live_ids(db_path, stream) == sb.data.ids(tables[stream])


def test_a_config_file_that_sets_something_is_still_read_and_validated(tmp_path):
    modules = modules_at_first_request(["sync", "events"], tmp_path, config="[sync]\nlookback_days = 1\n")
    assert "klaviyo_etl.config_file" in modules and "pydantic" in modules
    assert "sqlite_utils" not in modules


def test_the_root_lists_each_command_by_the_summary_its_own_help_starts_with():
    root = typer.main.get_command(app)
    assert list(root.commands) == list(SUMMARIES)
    for name, summary in SUMMARIES.items():
        command = root.commands[name]
        assert (command.short_help or command.help).split("\n\n")[0] == summary, name


def test_the_root_help_is_the_same_whether_or_not_the_commands_are_loaded(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")

    def root_help(root) -> str:
        root.main(["--help"], prog_name="klaviyo-etl", standalone_mode=False)
        return capsys.readouterr().out

    lazy = root_help(typer.main.get_command(app))
    root = typer.main.get_command(app)
    list(root.commands.values())  # load them all
    assert "report    Reports from the local database" in lazy
    assert lazy == root_help(root)


@pytest.mark.parametrize("args", [["report", "--help"], ["sync", "--help"], ["export", "--help"]])
def test_a_command_help_loads_that_command_only(args, tmp_path):
    modules = loaded_modules(args, tmp_path)
    assert f"klaviyo_etl.cli.{args[0]}" in modules
    others = {"report", "sync", "export", "check", "schedule", "config", "sandbox"} - {args[0]}
    assert [name for name in others if f"klaviyo_etl.cli.{name}" in modules] == []


@pytest.mark.parametrize(
    "args,message",
    [
        (["report", "campaigns", "--limit", "0"], "Invalid value for '--limit'"),
        (["--retries", "-1", "report", "campaigns"], "Invalid value for '--retries'"),
        (["report", "campaigns", "--limit", "x"], "Invalid value for '--limit'"),
    ],
)
def test_a_value_typer_must_convert_or_reject_still_gets_typers_own_message(tiny_db_path, args, message):
    result = CliRunner().invoke(app, ["--db", str(tiny_db_path), *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert message in result.output


def test_plain_values_pass_as_typer_would_pass_them(tiny_db_path):
    result = CliRunner().invoke(
        app,
        ["--db", str(tiny_db_path), "--retries", "3", "report", "campaigns", "--last", "all", "-f", "json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["report"] == "campaigns"


def test_the_command_line_freezes_its_heap_before_the_interpreter_exits(tmp_path):
    """The interpreter's last collections would walk every object the run left alive (every
    module's): 0.05-0.2 s of each run's exit (issue 12). `main` hands them to gc.freeze."""
    code = (
        "import gc, sys\n"
        "from klaviyo_etl.cli import main\n"
        "sys.argv = ['klaviyo-etl', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write(f'@frozen {gc.get_freeze_count()}')\n"
    )
    env = {**os.environ, "KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml"), "COLUMNS": "120"}
    env["PYTHONPATH"] = str(Path(klaviyo_etl.__file__).parents[1])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    frozen = int(done.stderr.rpartition("@frozen ")[2])
    assert frozen > 10_000, done.stderr  # every module's objects, not a handful


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "[default: 3]",
        "a [bold]b[/bold] [/] c",
        "[not markup",
        "[Upper] and [#fff] and [@click] and [/x]",
        "\\[escaped] \\\\[twice]",
        "ends with \\",
        "ends with \\\\",
        "[a][b]",
        "",
    ],
)
def test_help_text_is_escaped_as_rich_escapes_it(text):
    from rich.markup import escape as rich_escape

    from klaviyo_etl.cli.common import escape

    assert escape(text) == rich_escape(text)
