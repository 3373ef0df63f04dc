"""Refuse a key of another Klaviyo account before a sync writes into this one's database.

A database holds one account (its id in `accounts`, stored by the `accounts` stream). A cron
line with the wrong key variable, or `--db` pointing at another client's file, would otherwise
add that account's rows beside these, and its reconciliation would flag every profile of this
one deleted and erase their personal data at once (150 of 150 in the test). One small
request (`GET /api/accounts`, the key's own account) before any stream starts tells the two
apart.

When it cannot tell, the run goes on as before: a database that never stored its account
(first run, or a key without `accounts:read`), a key without that scope now (403), or an
answer that did not come (the streams then meet the same error and say it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from klaviyo_etl.db.account import synced_account
from klaviyo_etl.errors import DatabaseError, FatalError, KlaviyoEtlError

if TYPE_CHECKING:
    from pathlib import Path

    import sqlite_utils

    from klaviyo_etl.client import KlaviyoClient, RequestStats

log = logging.getLogger(__name__)

ACCOUNT_PATH = "/api/accounts"


class WrongAccount(DatabaseError):
    """The key belongs to another account than the one the database holds: fatal, exit 2."""


async def ensure_same_account(
    client: KlaviyoClient, db: sqlite_utils.Database, path: str | Path, stats: RequestStats
) -> None:
    """Raise `WrongAccount` if the key's account is not the one stored in `db` (at `path`)."""
    stored = await asyncio.to_thread(synced_account, db)
    if stored is None:
        return
    try:
        body = await client.get(ACCOUNT_PATH, None, stats=stats)
    except FatalError:
        return  # a rejected key or a retired revision: every stream meets it and says it once
    except KlaviyoEtlError as exc:  # 403 (no accounts:read), or no answer after the retries
        if not (client.stop is not None and client.stop.is_set()):
            log.warning("could not check which account the key belongs to (%s)", exc)
        return
    data = body.get("data") if isinstance(body, dict) else None
    ids = [item.get("id") for item in data if isinstance(item, dict)] if isinstance(data, list) else []
    if not ids or stored.id in ids:
        return
    name = f" ({stored.name})" if stored.name else ""
    raise WrongAccount(
        f"the API key belongs to Klaviyo account {ids[0]}, but {path} holds account {stored.id}{name}:"
        " nothing was synced; give this database its own account's key, or another --db for that one"
    )
