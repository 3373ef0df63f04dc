"""Scheduling: which streams are due, the `schedule run` loop, and the crontab line.

Public API:

    due_stream_names(settings) -> list[str]        # what `sync --due` syncs
    due_streams(db, config, now) -> list[str]
    plan(db, config, now) -> list[StreamPlan]      # per-stream status, for `schedule status`
    next_due(db, config, now) -> (when, streams) | None
    sync_options(config, streams) -> SyncOptions   # the config's lookback/reconcile windows
    Scheduler(db_path, config, runner, clock=..., stop=...).run()
    crontab_text(config, db_path=..., log_path=...) -> str
"""

from __future__ import annotations

import datetime as dt

from klaviyo_etl.config_file import Config, load_config
from klaviyo_etl.db import open_database
from klaviyo_etl.schedule.crontab import crontab_text, default_log_path
from klaviyo_etl.schedule.due import StreamPlan, backoff, due_streams, next_due, plan
from klaviyo_etl.schedule.loop import (
    Clock,
    Scheduler,
    SystemClock,
    Tick,
    engine_runner,
    sync_options,
)
from klaviyo_etl.settings import Settings


def due_stream_names(
    settings: Settings, config: Config | None = None, now: dt.datetime | None = None
) -> list[str]:
    """The streams `sync --due` should sync now, in the engine's order (may be empty).

    Opens the database (creating it if new, so a first run finds every stream due) and the
    config file (`load_config()` unless given).
    """
    config = config or load_config()
    db = open_database(settings.db_path)
    try:
        return due_streams(db, config, now)
    finally:
        db.close()


__all__ = [
    "Clock",
    "Scheduler",
    "StreamPlan",
    "SystemClock",
    "Tick",
    "backoff",
    "crontab_text",
    "default_log_path",
    "due_stream_names",
    "due_streams",
    "engine_runner",
    "next_due",
    "plan",
    "sync_options",
]
