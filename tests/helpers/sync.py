"""Helpers for the sync tests: comparing the sandbox account with the database, and running
`klaviyo-etl sync` in its own process the way cron does."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from klaviyo_etl.db import open_database
from klaviyo_etl.sandbox import SandboxData, SandboxServer
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import SyncOptions, SyncResult, make_client, run_sync

TABLE_OF = {
    "metric": "metrics",
    "event": "events",
    "profile": "profiles",
    "list": "lists",
    "segment": "segments",
    "campaign": "campaigns",
    "campaign-message": "campaign_messages",
    "flow": "flows",
    "flow-action": "flow_actions",
    "flow-message": "flow_messages",
    "form": "forms",
    "template": "templates",
    "tag": "tags",
}


def read_only_database(db_path: Path) -> bytes:
    """A migrated database at `db_path`, made read-only; its bytes, to check it stays as it
    was. Skips the test where file modes are not enforced (root)."""
    open_database(db_path).close()
    db_path.chmod(0o444)
    if os.access(db_path, os.W_OK):
        pytest.skip("file modes are not enforced for this user (root)")
    return db_path.read_bytes()


def settings_for(server, config, db_path, retries: int = 7) -> Settings:
    return Settings(db_path=db_path, api_key=config.api_key, base_url=server.url, retries=retries)


def sync_ok(server, config, db_path, **options) -> SyncResult:
    """Sync the sandbox into `db_path` and insist that every stream ended ok."""
    result = run_sync(settings_for(server, config, db_path), SyncOptions(**options))
    assert result.ok, [(s.stream, s.error) for s in result.streams]
    assert result.exit_code == 0
    return result


def live_ids(db_path, table: str) -> set[str]:
    db = open_database(db_path)
    return {r[0] for r in db.execute(f"SELECT id FROM [{table}] WHERE deleted_at IS NULL")}


def live_members(db_path, table: str, parent: str) -> set[tuple[str, str]]:
    db = open_database(db_path)
    return set(db.execute(f"SELECT {parent}, profile_id FROM [{table}] WHERE deleted_at IS NULL").fetchall())


def sandbox_members(data: SandboxData, kind: str) -> set[tuple[str, str]]:
    groups = data.ids(kind)
    return {(g, p) for g, members in data.members.items() if g in groups for p in members}


def assert_matches_sandbox(db_path, data: SandboxData) -> None:
    for kind, table in TABLE_OF.items():
        assert live_ids(db_path, table) == data.ids(kind), table
    assert live_members(db_path, "list_members", "list_id") == sandbox_members(data, "list")
    assert live_members(db_path, "segment_members", "segment_id") == sandbox_members(data, "segment")


def start_sync(
    db_path: Path, server: SandboxServer, *streams: str, capture: bool = False, config: str | None = None
) -> subprocess.Popen:
    """`klaviyo-etl --db DB --quiet --base-url URL sync STREAMS...` in a process of its own,
    with the sandbox's key and no config file (or one holding `config`). `capture` pipes
    stdout and stderr (as text) for `communicate()`; otherwise they are discarded."""
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    config_path = Path(db_path).parent / ("none.toml" if config is None else "config.toml")
    if config is not None:
        config_path.write_text(config)
    return subprocess.Popen(
        [sys.executable, "-m", "klaviyo_etl", "--db", str(db_path), "--quiet", "--base-url", server.url]
        + ["sync", *streams],
        env={
            **os.environ,
            "KLAVIYO_API_KEY": server.config.api_key,
            "KLAVIYO_ETL_CONFIG": str(config_path),
        },
        stdout=output,
        stderr=output,
        text=capture,
    )


def count_rows(db_path: Path, table: str, where: str = "1") -> int:
    """Rows in `table` (those matching `where`), read while a sync may be writing; 0 before the
    table exists."""
    try:
        conn = sqlite3.connect(db_path, timeout=5)
        try:
            return conn.execute(f"SELECT COUNT(*) FROM [{table}] WHERE {where}").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def wait_for_rows(
    proc: subprocess.Popen,
    db_path: Path,
    table: str,
    at_least: int = 1,
    timeout: float = 60,
    where: str = "1",
) -> int:
    """Poll until `table` holds `at_least` rows (matching `where`), the process ends or
    `timeout` seconds pass; the count last seen."""
    deadline = time.monotonic() + timeout
    while (
        (rows := count_rows(db_path, table, where)) < at_least
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    return rows


class Seam(httpx.AsyncBaseTransport):
    """The client's `transport=` seam between the sync and the sandbox: `before(request)` runs
    (and may wait) before a request goes out; `rewrite(request, body)` may change a JSON body
    on the way back, as a Klaviyo that sends other shapes would."""

    def __init__(
        self,
        before: Callable[[httpx.Request], Awaitable[None]] | None = None,
        rewrite: Callable[[httpx.Request, dict], dict] | None = None,
        after: Callable[[httpx.Request, dict], None] | None = None,
    ):
        self.inner = httpx.AsyncHTTPTransport()
        self.before, self.rewrite, self.after = before, rewrite, after

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.before:
            await self.before(request)
        response = await self.inner.handle_async_request(request)
        if not (self.rewrite or self.after) or response.status_code != 200:
            return response
        raw = await response.aread()
        await response.aclose()
        body = json.loads(raw)
        if self.rewrite:
            body = self.rewrite(request, body)
        if self.after:
            self.after(request, body)
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=json.dumps(body).encode())

    async def aclose(self) -> None:
        await self.inner.aclose()


def client_through(settings: Settings, seam: Seam):
    """A `run_sync` client factory whose requests pass through `seam`."""
    return make_client(settings, transport=seam)


# Each compared table's key; the rest is "id".
ROW_KEYS = {
    "list_members": ("list_id", "profile_id"),
    "segment_members": ("segment_id", "profile_id"),
    "tag_links": ("tag_id", "resource_type", "resource_id"),
}


def stored_row_hashes(db_path) -> dict[str, dict[str, str]]:
    """A hash of every live row's contents per table, by key (bookkeeping stamps left out), so
    two databases can be compared field by field and not only by their ids."""
    conn = sqlite3.connect(db_path)
    try:
        out: dict[str, dict[str, str]] = {}
        for table in [*TABLE_OF.values(), *ROW_KEYS]:
            cursor = conn.execute(f"SELECT * FROM [{table}]")
            names = [c[0] for c in cursor.description]
            rows = {}
            for values in cursor:
                row = dict(zip(names, values, strict=True))
                if row.get("deleted_at"):
                    continue
                content = {k: v for k, v in row.items() if k not in ("synced_at", "deleted_at")}
                text = json.dumps(content, sort_keys=True, default=str)
                key = "|".join(str(row[k]) for k in ROW_KEYS.get(table, ("id",)))
                rows[key] = hashlib.sha1(text.encode()).hexdigest()
            out[table] = rows
        return out
    finally:
        conn.close()
