"""What a sync runs on once its first request is out: the streams, the writer and the database.

The engine (`klaviyo_etl.sync.engine`) loads this module on the thread that opens the
database, while the request for Klaviyo's clock is out: its imports (sqlite-utils, the
migrations, the parsers, every stream) took ~0.1 s of each sync's start before that request
went out (issue 12). Not the models (pydantic, ~0.09 s more): `models` loads them for a run
whose streams read pages with them, and a first load of events or profiles never does.
"""

from __future__ import annotations

from klaviyo_etl.db.database import open_database
from klaviyo_etl.db.rollups import ensure_rollups
from klaviyo_etl.sync.parsing import models
from klaviyo_etl.sync.run import ParserPools, Stopped, StreamRun, WriteAbandoned, Writer
from klaviyo_etl.sync.same_account import ensure_same_account
from klaviyo_etl.sync.state import StreamState, record_run, start_run
from klaviyo_etl.sync.streams import build_streams

__all__ = [
    "ParserPools",
    "Stopped",
    "StreamRun",
    "StreamState",
    "WriteAbandoned",
    "Writer",
    "build_streams",
    "ensure_same_account",
    "ensure_rollups",
    "models",
    "open_database",
    "record_run",
    "start_run",
]
