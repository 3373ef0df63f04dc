"""The `accounts` stream: the key's own account from the sandbox, and a key without
`accounts:read`, which skips it with a note instead of failing every run."""

from __future__ import annotations

import json

import pytest

from klaviyo_etl.db import open_database
from klaviyo_etl.db.account import synced_account
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import SyncOptions, run_sync
from klaviyo_etl.sync.names import resolve
from klaviyo_etl.sync.streams import build_streams
from tests.cli.test_sync import invoke
from tests.helpers.sandbox import scopes_missing


@pytest.fixture(scope="module")
def abroad(sandbox_factory):
    """A company in New York that counts in euros."""
    with sandbox_factory("tiny", timezone="America/New_York", preferred_currency="EUR") as sb:
        yield sb


def test_the_account_is_one_request_with_no_page_size_filter_or_sort():
    stream = build_streams()["accounts"]
    assert stream.params() == {} and stream.endpoint.scopes == ["accounts:read"]
    assert stream.optional and "accounts" in resolve(["all"])


def test_sync_stores_the_account_with_its_timezone_and_preferred_currency(abroad, tmp_path):
    settings = Settings(db_path=tmp_path / "k.db", api_key=abroad.config.api_key, base_url=abroad.server.url)
    result = run_sync(settings, SyncOptions(streams=["accounts"]))
    # Two requests: Klaviyo's clock counts with the first stream.
    assert [(s.stream, s.status, s.rows, s.requests) for s in result.streams] == [("accounts", "ok", 1, 2)]
    db = open_database(settings.db_path)
    try:
        (row,) = db["accounts"].rows
        assert (row["timezone"], row["preferred_currency"]) == ("America/New_York", "EUR")
        assert row["organization_name"] == "Sandbox Outfitters" and row["test_account"] == 0
        account = synced_account(db)
        assert account is not None and (account.timezone, account.preferred_currency) == (
            "America/New_York",
            "EUR",
        )
    finally:
        db.close()
    again = run_sync(settings, SyncOptions(streams=["accounts"]))  # read whole again: one row still
    assert again.ok
    db = open_database(settings.db_path)
    try:
        assert db["accounts"].count == 1
    finally:
        db.close()


def test_a_key_without_accounts_read_skips_the_stream_with_a_note_and_the_run_exits_0(abroad, tmp_path):
    # Before: a 403 failed the stream, so every cron run of `sync all` exited 1 for ever,
    # over a field shown for display only.
    with scopes_missing(abroad.config, "accounts:read"):
        result = invoke(abroad.server, abroad.config, tmp_path, "sync", "metrics", "accounts", "--quiet")
        status = invoke(abroad.server, abroad.config, tmp_path, "status", "--json")
    assert result.exit_code == 0, result.output
    assert "accounts: skipped because the API key lacks accounts:read" in result.output
    db = open_database(tmp_path / "k.db")
    try:
        runs = {r["stream"]: r for r in db["sync_runs"].rows}
        assert runs["metrics"]["status"] == "ok" and runs["accounts"]["status"] == "skipped"
        assert "accounts:read" in runs["accounts"]["error"]
        assert synced_account(db) is None
    finally:
        db.close()
    assert status.exit_code == 0, status.output
    shown = {s["stream"]: s for s in json.loads(status.stdout)}
    assert "lacks accounts:read" in shown["accounts"]["skipped_because"]


def test_a_key_of_another_account_is_refused_before_it_writes_into_this_accounts_database(
    sandbox_factory, tmp_path
):
    # Before: a cron line with the wrong key (another client's, or an agency's other
    # account) synced that account into this database and its reconciliation flagged every
    # profile of this one deleted and erased their personal data at once (150 of 150).
    path = tmp_path / "acme.db"
    with sandbox_factory("tiny", seed=3) as acme:
        ours = Settings(db_path=path, api_key=acme.config.api_key, base_url=acme.server.url)
        assert run_sync(ours, SyncOptions(streams=["all"])).ok
    db = open_database(path)
    try:
        before = _kept(db)
        assert before["profiles"][1] > 0 and before["events"] > 0
    finally:
        db.close()
    with sandbox_factory("tiny", seed=4, account_id="GlobexX") as globex:
        result = invoke(globex.server, globex.config, tmp_path, "sync", "all", "--reconcile", db=path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert "GlobexX" in line and "SbxAcct" in line
    db = open_database(path)
    try:
        assert _kept(db) == before
    finally:
        db.close()


def _kept(db) -> dict:
    """What a wrong key must not touch: the profiles and their emails, the live events, the
    account."""
    return {
        "profiles": db.execute("SELECT count(*), count(email), count(deleted_at) FROM profiles").fetchone(),
        "events": db.execute("SELECT count(*) FROM events WHERE deleted_at IS NULL").fetchone()[0],
        "accounts": [r["id"] for r in db["accounts"].rows],
    }
