"""`klaviyo-etl check` against the sandbox: exit 0 when all is well, 1 for a missing scope or a
figure that differs, 2 (one line) for a rejected key, a retired revision or nothing to compare."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3

import pytest
import sqlite_utils
from typer.testing import CliRunner

from klaviyo_etl.check import CHECK_STREAMS
from klaviyo_etl.cli import app
from klaviyo_etl.db.migrations import SCHEMA_VERSION
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import SyncOptions, run_sync
from tests.helpers.sandbox import scopes_missing


@pytest.fixture
def sandbox(check_account):
    """A running sandbox and a database synced from it (copy it before changing it)."""
    return check_account


@pytest.fixture
def db_path(sandbox, tmp_path):
    path = tmp_path / "k.db"
    shutil.copy(sandbox[1], path)
    return path


def check(sandbox, db_path, *args, key=None, global_args=()):
    sb = sandbox[0]
    return CliRunner().invoke(
        app,
        ["--db", str(db_path), "--base-url", sb.server.url, *global_args, "check", *args],
        env={
            "KLAVIYO_API_KEY": key or sb.config.api_key,
            "KLAVIYO_ETL_CONFIG": str(db_path.parent / "none.toml"),
        },
    )


def test_all_good_exits_0(sandbox, db_path):
    result = check(sandbox, db_path, "--last", "all")
    assert result.exit_code == 0, result.output
    assert "key       accepted (pk_…abcd)" in result.output
    assert "revision  2026-07-15: served" in result.output
    assert "scopes    all 10 the sync needs" in result.output
    assert ": 0 differ" in result.output


def test_json_says_what_was_compared(sandbox, db_path):
    result = check(sandbox, db_path, "--last", "all", "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ok"] is True and out["scopes_missing"] == []
    assert out["figures"]["compared"]["campaigns"] > 0 and out["figures"]["compared"]["flows"] > 0
    assert out["figures"]["differ"] == [] and out["figures"]["tolerance"] == 0.02


def test_a_missing_scope_is_listed_and_exits_1(sandbox, db_path):
    sb = sandbox[0]
    with scopes_missing(sb.config, "campaigns:read"):
        result = check(sandbox, db_path, "--last", "all")
    assert result.exit_code == 1, result.output
    assert "scope     missing campaigns:read (needed by campaigns, reports)" in result.output
    assert ": 0 differ" in result.output


def test_a_rejected_key_is_one_line_and_exits_2(sandbox, db_path):
    result = check(sandbox, db_path, key="pk_wrong_0000000000000000000000000000wxyz")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "Error: 401: the API key pk_…wxyz was rejected — check KLAVIYO_API_KEY"
    ]


def test_a_retired_revision_exits_2(sandbox, db_path):
    result = check(sandbox, db_path, global_args=["--revision", "2022-10-17"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "Error: 410: API revision 2022-10-17 is retired — upgrade klaviyo-etl or pass a newer --revision"
    ]


def test_a_tampered_klaviyo_figure_is_printed_and_exits_1(sandbox, db_path):
    db = sqlite3.connect(db_path)
    row_id, entity, statistics = db.execute(
        "SELECT r.id, r.entity_id, r.statistics FROM report_values r WHERE report = 'flow-values'"
        " ORDER BY r.id LIMIT 1"
    ).fetchone()
    name = db.execute("SELECT name FROM flows WHERE id = ?", [entity]).fetchone()[0]
    tampered = json.loads(statistics)
    tampered["clicks_unique"] += 25
    db.execute("UPDATE report_values SET statistics = ? WHERE id = ?", [json.dumps(tampered), row_id])
    db.commit()
    db.close()

    result = check(sandbox, db_path, "--last", "all")
    assert result.exit_code == 1, result.output
    assert ": 1 differ" in result.output
    [line] = [line for line in result.output.splitlines() if name in line]
    assert "flow" in line and "clicks_unique" in line

    out = json.loads(check(sandbox, db_path, "--last", "all", "-f", "json").stdout)
    assert out["ok"] is False
    [row] = out["figures"]["differ"]
    assert (row["kind"], row["id"], list(row["differences"])) == ("flow", entity, ["clicks_unique"])


def test_nothing_stored_says_which_sync_to_run_and_exits_2(sandbox, tmp_path):
    result = check(sandbox, tmp_path / "missing.db")
    assert result.exit_code == 2, result.output
    assert "no database at" in result.output and "(or pass --sync)" in result.output


@pytest.mark.parametrize("sync", [False, True], ids=["without --sync", "with --sync"])
def test_a_database_of_a_newer_schema_is_not_told_to_pass_sync(sandbox, db_path, sync):
    # "(or pass --sync)" followed the refusal, yet a sync refuses that file the same way.
    db = sqlite_utils.Database(db_path)
    db["_migrations"].insert({"version": SCHEMA_VERSION + 1, "name": "m999_future", "applied_at": "x"})
    db.close()
    result = check(sandbox, db_path, *(["--sync"] if sync else []))
    assert result.exit_code == 2, result.output
    assert "newer than this klaviyo-etl" in result.output
    assert "upgrade klaviyo-etl" in result.output and "--sync" not in result.output, result.output


def test_sync_first_then_compare(sandbox, tmp_path):
    result = check(sandbox, tmp_path / "fresh.db", "--sync", "--last", "all")
    assert result.exit_code == 0, result.output
    assert ": 0 differ" in result.output


def test_on_a_narrow_terminal_each_finding_wraps_at_its_spaces_under_its_value():
    # At 80 columns the scopes line ran past the edge and the terminal cut it mid-word
    # ("lists" / ":read", "ta" / "gs:read"), flush left under the labels.
    import io

    from rich.console import Console

    from klaviyo_etl.check import Access, Figures, scope_probes
    from klaviyo_etl.cli.check import _print
    from klaviyo_etl.reports.periods import resolve_period

    probes = scope_probes()
    for probe in probes:
        probe.status = 200
    access = Access("http://127.0.0.1:8799", "pk_…abcd", "2026-07-15", probes)
    figures = Figures(resolve_period(last="30d"), 0.02, 1.0, {"campaigns": 3, "flows": 2}, [], [])
    console = Console(
        width=80,
        force_terminal=True,
        record=True,
        file=io.StringIO(),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    _print(console, access, figures)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80, lines
    scopes = lines[next(i for i, line in enumerate(lines) if line.startswith("scopes")) :]
    scopes = scopes[: next(i for i, line in enumerate(scopes) if line.startswith("figures"))]
    assert len(scopes) > 1  # wrapped, each further line under the value, not the label
    assert all(line.startswith(" " * 10) and not line[10].isspace() for line in scopes[1:])
    words = " ".join(line.strip() for line in scopes).split()
    assert {p.scope for p in probes} <= {w.rstrip(",") for w in words}


def test_on_a_narrow_terminal_advice_wraps_flush_left_whatever_its_first_words():
    # Advice has no label: "1 flow(s) sent ..." has a space where a label ends, and its
    # further lines were indented as if under a value.
    import io

    from rich.console import Console

    from klaviyo_etl.cli.check import _say

    console = Console(width=80, force_terminal=True, record=True, file=io.StringIO(), soft_wrap=True)
    for text in (
        "1 flow(s) sent in Klaviyo's timeframe (2025-12-02 to 2026-12-01) have no stored Klaviyo"
        " figures (e.g. 'Post-Purchase Thank You'): run `klaviyo-etl sync reports` (or pass --sync)",
        "12 campaign(s) sent in all time have no stored Klaviyo figures (e.g. 'Spring Collection"
        " Email #1'): run `klaviyo-etl sync reports` (or pass --sync)",
    ):
        _say(console, text)
    lines = console.export_text().splitlines()
    assert len(lines) > 2 and max(len(line) for line in lines) <= 80, lines
    assert not any(line.startswith(" ") for line in lines), lines


def _account_in(db_path, timezone: str) -> None:
    """The account as the `accounts` stream stores it, in `timezone`."""
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO accounts (id, organization_name, timezone, preferred_currency, attributes,"
            " synced_at) VALUES ('A1', 'Shop', ?, 'USD', '{}', '2026-12-01T00:00:00+00:00')",
            [timezone],
        )


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_an_account_outside_utc_is_compared_over_its_own_days(sandbox, db_path, zone):
    # Before: we counted UTC days and said Klaviyo's figures near the edges may differ.
    config = sandbox[0].data.config  # the company's, served by /api/accounts
    config.timezone = zone  # and its Reporting API counts that zone's days
    try:
        result = check(sandbox, db_path, "--last", "all", "--sync")
        out = json.loads(check(sandbox, db_path, "--last", "all", "--format", "json").stdout)
    finally:
        config.timezone = "UTC"
    assert result.exit_code == 0, result.output
    assert ": 0 differ" in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("timezone  ")]
    assert lines == [
        f"timezone  days in {zone}, the account's timezone, on both sides (as Klaviyo counts them)"
    ]
    assert out["figures"]["account_timezone"] == zone and out["figures"]["differ"] == []


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "Africa/Abidjan"])
def test_an_account_in_utc_all_year_gets_no_timezone_line(sandbox, db_path, zone):
    _account_in(db_path, zone)
    result = check(sandbox, db_path, "--last", "all")
    assert result.exit_code == 0, result.output
    assert "timezone" not in result.output


def test_without_the_account_synced_the_check_says_our_days_are_utcs(sandbox, db_path):
    result = check(sandbox, db_path, "--last", "all")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("timezone  ")]
    assert len(lines) == 1 and "our days are UTC's" in lines[0], result.output


def test_a_key_without_accounts_read_passes_and_says_the_optional_scope(sandbox, db_path):
    sb = sandbox[0]
    with scopes_missing(sb.config, "accounts:read"):
        result = check(sandbox, db_path, "--last", "all")
        data = json.loads(check(sandbox, db_path, "--last", "all", "--format", "json").stdout)
    assert result.exit_code == 0, result.output
    assert "scopes    all 10 the sync needs" in result.output
    assert "scope     missing accounts:read (optional: accounts is skipped without it)" in result.output
    assert data["ok"] is True and data["scopes_missing"] == []
    assert data["scopes_optional_missing"] == ["accounts:read"]


@pytest.fixture(scope="module")
def bots_account(sandbox_factory, tmp_path_factory):
    """An account with bots' clicks on campaigns and flows, email and SMS (the check account
    has a few, on email flows only), synced with what `check` reads."""
    path = tmp_path_factory.mktemp("bots") / "synced.db"
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    with sandbox_factory("small", seed=7, profiles=800, events=20000, campaigns=12, now=now) as sb:
        settings = Settings(db_path=path, api_key=sb.config.api_key, base_url=sb.server.url)
        result = run_sync(settings, SyncOptions(streams=CHECK_STREAMS))
        assert result.ok, [(s.stream, s.error) for s in result.streams]
        yield sb, path


@pytest.fixture
def bots_db(bots_account, tmp_path):
    path = tmp_path / "k.db"
    shutil.copy(bots_account[1], path)
    return path


def _bot_clicks_counted_by_klaviyo(sandbox, db_path, setting: str | None, *args: str):
    """`check --sync` against an account whose Klaviyo setting counts bots' clicks (made
    before 2024-08-27, or turned off: LIVE_BEHAVIOUR.md §12), with `[reports]
    exclude_bot_clicks = setting` in our config file (None: no file, the default)."""
    if setting is not None:
        (db_path.parent / "none.toml").write_text(f"[reports]\nexclude_bot_clicks = {setting}\n")
    config = sandbox[0].data.config
    config.exclude_bot_clicks = False
    try:
        return check(sandbox, db_path, "--last", "all", "--sync", *args)
    finally:
        config.exclude_bot_clicks = True


def _clicks_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("clicks    ")]


def test_clicks_that_differ_by_their_bot_clicks_name_the_setting_to_change(bots_account, bots_db):
    # Before: every campaign and flow with bots' clicks was listed as a difference in clicks,
    # with nothing to say why. They still differ (exit 1), and the figures line counts them:
    # it said "0 differ" beside exit 1.
    result = _bot_clicks_counted_by_klaviyo(bots_account, bots_db, None)
    assert result.exit_code == 1, result.output
    out = json.loads(check(bots_account, bots_db, "--last", "all", "-f", "json").stdout)
    n = len(out["figures"]["differ_by_bot_clicks"])
    assert f": {n} differ, all by exactly their bot clicks (see clicks)" in result.output
    assert n > 1 and "Differences" not in result.output
    [line] = _clicks_lines(result.output)
    assert "differ by exactly their bot clicks (Bot Click true) on email, sms:" in line
    assert "Klaviyo counts them and we leave them out" in line
    assert line.endswith("set [reports] exclude_bot_clicks = [] to agree")
    assert out["ok"] is False and out["figures"]["differ"] == []
    rows = out["figures"]["differ_by_bot_clicks"]
    assert {r["kind"] for r in rows} == {"campaign", "flow"}
    assert all(set(r["differences"]) <= {"clicks", "clicks_unique"} for r in rows)
    assert all(r["differences"]["clicks"]["ours"] < r["differences"]["clicks"]["klaviyo"] for r in rows)
    assert out["figures"]["bot_clicks_note"] == line.removeprefix("clicks    ")


@pytest.mark.parametrize("setting", ["[]", "false"])
def test_counting_bot_clicks_agrees_with_an_account_that_counts_them(bots_account, bots_db, setting):
    result = _bot_clicks_counted_by_klaviyo(
        bots_account, bots_db, setting, "--tolerance", "0", "--floor", "0"
    )
    assert result.exit_code == 0, result.output
    assert ": 0 differ" in result.output and not _clicks_lines(result.output)


def test_counting_bot_clicks_on_an_account_that_leaves_them_out_names_the_setting(bots_account, bots_db):
    (bots_db.parent / "none.toml").write_text('[reports]\nexclude_bot_clicks = ["sms"]\n')
    result = check(bots_account, bots_db, "--last", "all", "--sync")
    assert result.exit_code == 1, result.output
    [line] = _clicks_lines(result.output)
    assert "on email: Klaviyo leaves them out and we count them" in line
    assert line.endswith('set [reports] exclude_bot_clicks = ["email", "sms"] to agree')


def test_a_channel_without_bot_clicks_is_said_to_be_untold(sandbox, db_path):
    # The check account's few bots' clicks are all on email flows: nothing tells its SMS setting.
    result = _bot_clicks_counted_by_klaviyo(sandbox, db_path, None)
    [line] = _clicks_lines(result.output)
    assert line == (
        "clicks    3 flows differ by exactly their bot clicks (Bot Click true) on email: Klaviyo"
        ' counts them and we leave them out; set [reports] exclude_bot_clicks = ["sms"] to agree'
        " (too few bot clicks on sms to tell)"
    )


def test_other_differences_beside_the_bot_clicks_are_counted_with_them(bots_account, bots_db):
    # The figures line counts both: those listed and those that differ by the bots' clicks.
    assert _bot_clicks_counted_by_klaviyo(bots_account, bots_db, None).exit_code == 1
    db = sqlite3.connect(bots_db)
    row_id, statistics = db.execute(
        "SELECT id, statistics FROM report_values WHERE report = 'campaign-values' ORDER BY id LIMIT 1"
    ).fetchone()
    tampered = json.loads(statistics)
    tampered["opens_unique"] += 50
    db.execute("UPDATE report_values SET statistics = ? WHERE id = ?", [json.dumps(tampered), row_id])
    db.commit()
    db.close()
    out = json.loads(check(bots_account, bots_db, "--last", "all", "-f", "json").stdout)
    rows, bots = len(out["figures"]["differ"]), len(out["figures"]["differ_by_bot_clicks"])
    assert rows >= 1 and bots >= 1
    result = check(bots_account, bots_db, "--last", "all")
    assert result.exit_code == 1, result.output
    assert f": {rows + bots} differ, {bots} of them by exactly their bot clicks (see clicks)" in result.output
    assert "Differences" in result.output and len(_clicks_lines(result.output)) == 1
