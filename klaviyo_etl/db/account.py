"""The synced Klaviyo account (`accounts`, one row from `GET /api/accounts`), for what the
reports and `check` say about it: its preferred currency and its timezone.

One read of a one-row table by its primary key order, so a report pays nothing for it. A
database whose key lacks `accounts:read` (the stream is skipped) or that was never synced
has none: the callers then say what they said before the account was synced.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import sqlite_utils


@dataclass(frozen=True)
class Account:
    id: str
    name: str | None  # contact_information.organization_name
    timezone: str | None  # an IANA name ("US/Eastern")
    preferred_currency: str | None  # ISO 4217 ("USD")


def synced_account(db: sqlite_utils.Database) -> Account | None:
    """The account the key belongs to, as last synced (None: not synced, or deleted)."""
    try:
        row = db.execute(
            "SELECT id, organization_name, timezone, preferred_currency FROM accounts"
            " WHERE deleted_at IS NULL ORDER BY id LIMIT 1"
        ).fetchone()
    except sqlite3.OperationalError:  # a file not migrated yet (opened read-only)
        return None
    if row is None:
        return None
    id_, name, timezone, currency = row
    return Account(id_, name or None, timezone or None, (currency or "").strip().upper() or None)
