"""`--account NAME` / `--all-accounts` against two sandbox accounts served at once: one
process syncs both, each into its own database; reports merge them; one account's revoked key
fails only that account; `export parquet --all-accounts` writes one folder that DuckDB reads
per account; without the options the tool works as before."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import sqlite_utils
from typer.testing import CliRunner

from klaviyo_etl.cli import app
from klaviyo_etl.db import open_database
from klaviyo_etl.db.migrations import public_tables
from klaviyo_etl.export import export_parquet
from klaviyo_etl.sync.names import resolve
from tests.helpers.export import query, scan
from tests.helpers.sync import TABLE_OF, assert_matches_sandbox, live_ids, wait_for_rows


@pytest.fixture(scope="module")
def accounts(sandbox_factory):
    """Two accounts of different seeds, each on its own server: {name: Sandbox}."""
    with sandbox_factory("tiny", seed=3) as acme, sandbox_factory("tiny", seed=7) as globex:
        yield {"acme": acme, "globex": globex}


def _config(tmp_path, accounts) -> str:
    path = tmp_path / "config.toml"
    path.write_text(
        "".join(
            f'[accounts.{name}]\nkey_env = "KEY_{name.upper()}"\nbase_url = "{sb.server.url}"\n\n'
            for name, sb in accounts.items()
        ),
        encoding="utf-8",
    )
    return str(path)


def _env(tmp_path, accounts, **overrides: str) -> dict[str, str]:
    env = {f"KEY_{name.upper()}": sb.config.api_key for name, sb in accounts.items()}
    env["KLAVIYO_ETL_CONFIG"] = _config(tmp_path, accounts)
    env["KLAVIYO_API_KEY"] = ""
    return {**env, **overrides}


def _invoke(tmp_path, accounts, *args: str, **env: str):
    return CliRunner().invoke(
        app, ["--db", str(tmp_path / "klaviyo.db"), *args], env=_env(tmp_path, accounts, **env)
    )


def test_sync_all_accounts_fills_each_database_with_its_own_account(accounts, tmp_path):
    result = _invoke(tmp_path, accounts, "sync", "all", "--all-accounts", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [a["account"] for a in summary["accounts"]] == ["acme", "globex"]
    assert all(a["ok"] for a in summary["accounts"]) and summary["ok"]
    for name, sandbox in accounts.items():
        db = tmp_path / f"klaviyo-{name}.db"  # beside the default database
        assert_matches_sandbox(db, sandbox.data)
    # different seeds, so a database holding the other account's rows would show
    assert live_ids(tmp_path / "klaviyo-acme.db", "profiles") != live_ids(
        tmp_path / "klaviyo-globex.db", "profiles"
    )
    assert not (tmp_path / "klaviyo.db").exists()  # the single account's database is untouched


def test_sync_output_names_the_account_on_every_stream_line(accounts, tmp_path):
    result = _invoke(tmp_path, accounts, "sync", "tags", "--account", "globex")
    assert result.exit_code == 0, result.output
    assert "globex/tags: started" in result.output and "acme/" not in result.output
    assert not (tmp_path / "klaviyo-acme.db").exists()


def test_report_campaigns_all_accounts_json_carries_both_accounts(accounts, tmp_path):
    assert _invoke(tmp_path, accounts, "sync", "all", "--all-accounts", "--quiet").exit_code == 0
    result = _invoke(
        tmp_path, accounts, "report", "campaigns", "--all-accounts", "--last", "365d", "-f", "json"
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert {row["account"] for row in body["rows"]} == {"acme", "globex"}
    for name in accounts:
        alone = _invoke(
            tmp_path, accounts, "report", "campaigns", "--account", name, "--last", "365d", "-f", "json"
        )
        own = json.loads(alone.stdout)
        assert [r["campaign_id"] for r in body["rows"] if r["account"] == name] == [
            r["campaign_id"] for r in own["rows"]
        ]
        assert body["accounts"][name]["totals"] == own["totals"]
    recipients = sum(body["accounts"][n]["totals"]["recipients"] for n in accounts)
    assert body["totals"]["recipients"] == recipients
    table = _invoke(tmp_path, accounts, "report", "campaigns", "--all-accounts", "--last", "365d")
    assert table.exit_code == 0 and "2 accounts" in table.stdout and "Total" in table.stdout


def test_overview_and_metric_for_one_account_are_its_own_and_a_metric_table_for_several(accounts, tmp_path):
    assert _invoke(tmp_path, accounts, "sync", "all", "--all-accounts", "--quiet").exit_code == 0
    # `--account acme` was refused by overview ("give one --account") and crashed the metric's
    # table ("unexpected KeyError: 'total'")
    for args in (["overview"], ["metric", "Placed Order"]):
        alone = _invoke(tmp_path, accounts, "report", *args, "--account", "acme", "--last", "365d")
        assert alone.exit_code == 0, alone.output
        assert "total " in alone.stdout or "Revenue" in alone.stdout
    several = _invoke(
        tmp_path,
        accounts,
        "report",
        "metric",
        "Placed Order",
        "--all-accounts",
        "--last",
        "30d",
        COLUMNS="200",
    )
    assert several.exit_code == 0, several.output
    assert "Account" in several.stdout  # the table, with its account column, not one merged chart
    totals = [line for line in several.stdout.splitlines() if ": total " in line]
    assert [line.split(":")[0] for line in totals] == ["acme", "globex"]


def test_schedule_status_names_the_account_whose_database_is_another_programs_and_shows_the_others(
    accounts, tmp_path
):
    # acme's file is another program's; globex has none yet (shown as never synced)
    other = sqlite3.connect(tmp_path / "klaviyo-acme.db")
    other.execute("CREATE TABLE notes (body TEXT)")
    other.commit()
    other.close()
    result = _invoke(tmp_path, accounts, "schedule", "status", "--all-accounts", COLUMNS="200")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().startswith("Error: account acme: ")
    assert "is not a klaviyo-etl database" in result.stderr
    assert "account globex" in result.stdout and "Due now: metrics" in result.stdout
    shown = json.loads(_invoke(tmp_path, accounts, "schedule", "status", "--all-accounts", "--json").stdout)
    assert [a["account"] for a in shown] == ["acme", "globex"] and "error" in shown[0]


def test_a_revoked_key_fails_that_account_only_and_exits_1(accounts, tmp_path):
    result = _invoke(tmp_path, accounts, "sync", "all", "--all-accounts", KEY_GLOBEX="pk_revoked_0000")
    assert result.exit_code == 1, result.output
    assert "Error: account globex: 401" in result.stderr and "KEY_GLOBEX" in result.stderr
    assert "KLAVIYO_API_KEY" not in result.stderr  # the client's message names this account's variable
    assert "account acme" not in result.stderr and "Traceback" not in result.output
    assert_matches_sandbox(tmp_path / "klaviyo-acme.db", accounts["acme"].data)
    conn = sqlite3.connect(tmp_path / "klaviyo-acme.db")
    assert {s for (s,) in conn.execute("SELECT status FROM sync_runs")} == {"ok"}


def test_check_names_the_account_without_a_key_once_and_checks_the_others(accounts, tmp_path):
    result = _invoke(tmp_path, accounts, "check", "--all-accounts", KEY_GLOBEX="")
    assert "Error: account globex: no API key: set KEY_GLOBEX" in result.stderr, result.output
    assert "account globex: account globex" not in result.stderr
    assert "account   acme" in result.stdout and "Error: account acme" not in result.stderr
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_an_unknown_account_exits_2_listing_the_configured_ones(accounts, tmp_path):
    for command in (["sync", "all"], ["status"], ["report", "campaigns"], ["schedule", "status"], ["check"]):
        result = _invoke(tmp_path, accounts, *command, "--account", "initech")
        assert result.exit_code == 2, (command, result.output)
        assert "unknown account 'initech' (configured: acme, globex)" in result.stderr
        assert "Traceback" not in result.output
    assert not list(tmp_path.glob("*.db"))


def test_without_account_options_the_single_account_of_old_syncs(accounts, tmp_path):
    acme = accounts["acme"]
    result = CliRunner().invoke(
        app,
        ["--db", str(tmp_path / "klaviyo.db"), "--base-url", acme.server.url, "sync", "metrics", "tags"],
        env=_env(tmp_path, accounts, KLAVIYO_API_KEY=acme.config.api_key),
    )
    assert result.exit_code == 0, result.output
    assert live_ids(tmp_path / "klaviyo.db", TABLE_OF["tag"]) == acme.data.ids("tag")
    assert "acme/" not in result.output
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["klaviyo.db"]


def test_status_all_accounts_shows_each_account_and_reports_a_missing_database(accounts, tmp_path):
    assert _invoke(tmp_path, accounts, "sync", "tags", "--account", "acme", "--quiet").exit_code == 0
    result = _invoke(tmp_path, accounts, "status", "--all-accounts", "--json")
    assert result.exit_code == 1  # globex has no database yet
    rows = json.loads(result.stdout)
    assert {r["account"] for r in rows if "stream" in r} == {"acme"}
    assert "Error: account globex: " in result.stderr


def test_purge_all_accounts_purges_each_database_and_names_the_one_it_cannot_open(accounts, tmp_path):
    assert _invoke(tmp_path, accounts, "sync", "profiles", "--account", "acme", "--quiet").exit_code == 0
    acme_db = next(p for p in tmp_path.glob("*.db") if "acme" in p.name)
    with sqlite3.connect(acme_db) as conn:
        gone = conn.execute("SELECT id FROM profiles ORDER BY id LIMIT 1").fetchone()[0]
        conn.execute("UPDATE profiles SET deleted_at = '2026-05-01T00:00:00+00:00' WHERE id = ?", [gone])
        kept = conn.execute("SELECT count(*) FROM profiles").fetchone()[0] - 1
    result = _invoke(tmp_path, accounts, "purge", "--deleted", "--all-accounts")
    assert result.exit_code == 1  # globex has no database yet
    assert "acme: events: 0 deleted" in result.stdout and "profiles: 1 deleted" in result.stdout
    assert "Error: account globex: " in result.stderr
    with sqlite3.connect(acme_db) as conn:
        assert conn.execute("SELECT count(*) FROM profiles WHERE id = ?", [gone]).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM profiles").fetchone()[0] == kept
    again = _invoke(tmp_path, accounts, "purge", "--deleted", "--account", "acme")
    assert again.exit_code == 0 and "acme: " in again.stdout and "profiles: 0 deleted" in again.stdout


def test_schedule_run_keeps_the_other_accounts_going_after_one_key_is_rejected(accounts, tmp_path):
    env = {**os.environ, **_env(tmp_path, accounts, KEY_GLOBEX="pk_revoked_0000")}
    db = tmp_path / "klaviyo.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "klaviyo_etl",
            "--db",
            str(db),
            "schedule",
            "run",
            "--all-accounts",
            "--poll",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        acme_db = tmp_path / "klaviyo-acme.db"
        # every stream ran once (a stream's row reads `running` until it ends)
        wait_for_rows(
            proc, acme_db, "sync_runs", at_least=len(resolve(None)), timeout=60, where="status != 'running'"
        )
        time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()  # acme's loop is still running
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "Error: account globex: 401" in err and "KEY_GLOBEX" in err
    assert "Traceback" not in err
    assert_matches_sandbox(acme_db, accounts["acme"].data)


def test_a_report_names_the_account_whose_database_is_missing(accounts, tmp_path):
    assert _invoke(tmp_path, accounts, "sync", "tags", "--account", "acme", "--quiet").exit_code == 0
    result = _invoke(tmp_path, accounts, "report", "campaigns", "--all-accounts")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: account globex: ") and "Traceback" not in result.output


def test_export_parquet_all_accounts_gives_one_folder_read_per_account_as_each_database(accounts, tmp_path):
    assert _invoke(tmp_path, accounts, "sync", "all", "--all-accounts", "--quiet").exit_code == 0
    root = tmp_path / "warehouse"
    result = _invoke(tmp_path, accounts, "export", "parquet", str(root), "--all-accounts", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] and [a["account"] for a in summary["accounts"]] == ["acme", "globex"]
    assert sorted(p.name for p in (root / "events").iterdir()) == ["account=acme", "account=globex"]

    tables = public_tables(sqlite_utils.Database(tmp_path / "klaviyo-acme.db"))
    for name in accounts:
        conn = sqlite3.connect(tmp_path / f"klaviyo-{name}.db")
        stored = {t: conn.execute(f"SELECT count(*) FROM [{t}]").fetchone()[0] for t in tables}
        read = {
            t: query(f"SELECT count(*) FROM {scan(root, t)} WHERE account = '{name}'")[0][0] for t in tables
        }
        print(name, "rows per table:", read)
        assert read == stored and stored["events"] > 0
    # different seeds: the accounts' rows differ, and each is under its own name
    profiles = {
        name: {i for (i,) in query(f"SELECT id FROM {scan(root, 'profiles')} WHERE account = '{name}'")}
        for name in accounts
    }
    for name in accounts:
        conn = sqlite3.connect(tmp_path / f"klaviyo-{name}.db")
        assert profiles[name] == {i for (i,) in conn.execute("SELECT id FROM profiles")}
    assert profiles["acme"] != profiles["globex"]

    again = _invoke(tmp_path, accounts, "export", "parquet", str(root), "--all-accounts")
    assert again.exit_code == 0, again.output
    assert [line.split(":")[0] for line in again.stdout.splitlines()] == ["acme", "globex"]
    assert all("wrote 0 file(s)" in line for line in again.stdout.splitlines())
    # the single account's layout is refused in this folder (an engine would read both)
    single = _invoke(
        tmp_path, accounts, "--db", str(tmp_path / "klaviyo-acme.db"), "export", "parquet", str(root)
    )
    assert single.exit_code == 2 and "several accounts" in single.stderr


def test_export_parquet_names_the_account_whose_database_is_missing(accounts, tmp_path):
    assert _invoke(tmp_path, accounts, "sync", "tags", "--account", "acme", "--quiet").exit_code == 0
    root = tmp_path / "warehouse"
    result = _invoke(tmp_path, accounts, "export", "parquet", str(root), "--all-accounts")
    assert result.exit_code == 1
    assert "Error: account globex: no database at" in result.stderr and "Traceback" not in result.output
    assert (root / "tags/account=acme/tags.parquet").exists() and not list(root.glob("*/account=globex"))


def test_export_of_every_account_removes_the_files_of_an_account_taken_out_of_the_config(accounts, tmp_path):
    # initech left the config: its partitions stayed, and every engine still counted its rows.
    assert _invoke(tmp_path, accounts, "sync", "tags", "--all-accounts", "--quiet").exit_code == 0
    root = tmp_path / "warehouse"
    db = open_database(tmp_path / "klaviyo-acme.db")
    export_parquet(db, root, account="initech")
    db.close()
    # An export of some accounts names it and leaves it: it cannot tell "left" from "not asked".
    some = _invoke(tmp_path, accounts, "export", "parquet", str(root), "--account", "acme")
    assert some.exit_code == 0, some.output
    assert "also holds the files of initech, not in the config any more" in some.stderr
    assert list(root.glob("*/account=initech"))
    every = _invoke(tmp_path, accounts, "export", "parquet", str(root), "--all-accounts", "--json")
    assert every.exit_code == 0, every.output
    assert json.loads(every.stdout)["removed_accounts"] == ["initech"]
    assert not list(root.glob("*/account=initech"))
    assert query(f"SELECT DISTINCT account FROM {scan(root, 'tags')} ORDER BY 1") == [("acme",), ("globex",)]
    # When acme is the only account left, its own export is the export of every account.
    acme_only = {"acme": accounts["acme"]}
    alone = _invoke(tmp_path, acme_only, "export", "parquet", str(root), "--account", "acme")
    assert alone.exit_code == 0 and "globex: removed its files" in alone.stdout, alone.output
    assert query(f"SELECT DISTINCT account FROM {scan(root, 'tags')}") == [("acme",)]
