"""Privacy deletions: a profile Klaviyo deleted keeps only its id and `deleted_at` here.

When Klaviyo deletes a profile (a data-privacy request), the profile and all its events leave
the API, and a reconcile scan flags the profile deleted. The trigger that migration m007
installs then, in the same transaction, erases the profile's personal data (every column but
`id`, `synced_at` and `deleted_at`, raw attributes included), flags its events deleted (so no
report counts them: the rollups see the change through their own trigger) and flags its list
and segment memberships deleted with their email erased. Whatever path flags a profile, the
erasure follows; `install_erasure` also erases the rows flagged before the trigger existed.
The trigger names the profile columns of its day: a migration that adds one must call
`install_erasure` again.

A merge looks the same from outside: the merged profile disappears and Klaviyo moves its
events to the surviving profile. Its events are then flagged deleted here until they are read
again (`klaviyo-etl sync events --since <date>`), which brings them back under the survivor.

`purge_deleted` goes further for users who must prove erasure: it deletes the rows of deleted
profiles, their events and their memberships outright.
"""

from __future__ import annotations

import sqlite_utils

from klaviyo_etl.timeutil import utcnow_iso

MEMBER_TABLES = ("list_members", "segment_members")
KEPT_COLUMNS = ("id", "synced_at", "deleted_at")


def personal_columns(db: sqlite_utils.Database) -> list[str]:
    """The profile columns an erasure empties: all but the id and the bookkeeping."""
    return [c.name for c in db["profiles"].columns if c.name not in KEPT_COLUMNS]


def erase_statements(db: sqlite_utils.Database, profile: str, when: str) -> list[str]:
    """SQL erasing the deleted profiles that `profile` selects (a WHERE clause on `profiles`
    rows, or `= NEW.id` in the trigger), flagging their events and memberships at `when`."""
    blank = ", ".join(f"[{c}] = NULL" for c in personal_columns(db))
    return [
        f"UPDATE profiles SET {blank} WHERE id {profile};",
        f"UPDATE events SET deleted_at = {when} WHERE deleted_at IS NULL AND profile_id {profile};",
        *(
            f"UPDATE {t} SET email = NULL, deleted_at = coalesce(deleted_at, {when})"
            f" WHERE profile_id {profile} AND (email IS NOT NULL OR deleted_at IS NULL);"
            for t in MEMBER_TABLES
        ),
    ]


DELETED_PROFILES = "IN (SELECT id FROM profiles WHERE deleted_at IS NOT NULL)"


def install_erasure(db: sqlite_utils.Database) -> None:
    """The trigger that erases a profile as it is flagged deleted, and the erasure of those
    flagged already."""
    for t in MEMBER_TABLES:
        db.execute(f"CREATE INDEX IF NOT EXISTS idx_{t}_profile ON {t} (profile_id)")
    body = "\n".join(erase_statements(db, "= NEW.id", "NEW.deleted_at"))
    db.execute("DROP TRIGGER IF EXISTS profiles_erase_deleted")
    db.execute(
        "CREATE TRIGGER profiles_erase_deleted AFTER UPDATE OF deleted_at ON profiles"
        f" WHEN OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL BEGIN\n{body}\nEND"
    )
    for sql in erase_statements(db, DELETED_PROFILES, "?"):
        db.execute(sql, [utcnow_iso()] if "?" in sql else [])


def purge_deleted(db: sqlite_utils.Database) -> dict[str, int]:
    """Delete what is left of deleted profiles: their events, memberships and rows.

    Idempotent: a second run finds nothing. Returns the rows deleted per table.
    """
    counts: dict[str, int] = {}
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in ("events", *MEMBER_TABLES):
            cursor = db.execute(f"DELETE FROM {table} WHERE profile_id {DELETED_PROFILES}")
            counts[table] = cursor.rowcount
        counts["profiles"] = db.execute("DELETE FROM profiles WHERE deleted_at IS NOT NULL").rowcount
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return counts
