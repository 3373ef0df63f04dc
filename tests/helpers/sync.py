"""Helpers comparing the sandbox account with the database."""

from __future__ import annotations

import datetime as dt

from klaviyo_etl.db import open_database
from klaviyo_etl.sandbox import SandboxConfig, SandboxData
from klaviyo_etl.settings import Settings

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


def small_config(**overrides) -> SandboxConfig:
    values = dict(
        seed=11,
        profiles=150,
        events=2500,
        campaigns=8,
        flows=3,
        lists=3,
        segments=2,
        forms=2,
        templates=5,
        tags=4,
        days=60,
        now=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )
    values.update(overrides)
    return SandboxConfig(**values)


def settings_for(server, config, db_path, retries: int = 7) -> Settings:
    return Settings(db_path=db_path, api_key=config.api_key, base_url=server.url, retries=retries)


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
