"""Opening the database file with the pragmas every caller needs."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

from klaviyo_etl.db.migrations import migrate as apply_migrations
from klaviyo_etl.errors import DatabaseError


def open_database(path: str | Path, *, migrate: bool = True, create: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the database in WAL mode and bring its schema up to date.

    WAL lets `report` read while `sync` writes; busy_timeout absorbs the short waits
    between the single writer's transactions.
    """
    path = Path(path).expanduser()
    if not create and not path.exists():
        # A reading command on a mistyped --db must not leave an empty database behind.
        raise DatabaseError(
            f"no database at {path}: run `klaviyo-etl sync` first, or point --db / KLAVIYO_ETL_DB at one"
        )
    try:
        create_private(path)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        db = sqlite_utils.Database(conn)
        if db.journal_mode != "wal":
            db.enable_wal()
        conn.execute("PRAGMA synchronous = NORMAL")
    except (sqlite3.DatabaseError, OSError) as exc:
        raise DatabaseError(f"cannot open database {path}: {exc}") from exc
    if migrate:
        apply_migrations(db)
    return db


def create_private(path: Path) -> None:
    """Create `path`'s missing directories 0700 and the file itself 0600, as the database holds
    personal data; what exists already keeps its mode (SQLite gives its -wal and -shm files
    the database's mode)."""
    create_private_dirs(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def create_private_dirs(directory: Path) -> None:
    """`mkdir -p` with mode 0700 for every directory it creates."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
