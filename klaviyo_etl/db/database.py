"""Opening the database file with the pragmas every caller needs."""

from __future__ import annotations

import ctypes
import os
import sqlite3
import sys
from pathlib import Path

import sqlite_utils

from klaviyo_etl.db.lock import refuse_other_than_a_file
from klaviyo_etl.db.migrations import foreign_tables
from klaviyo_etl.db.migrations import migrate as apply_migrations
from klaviyo_etl.db.private import create_private
from klaviyo_etl.errors import DatabaseError, NoDatabase

# sqlite3 binds str, int, float and bytearray as they are, and sends every other value through
# its adapters, None included: with none registered for None, each NULL it binds builds and
# drops an AttributeError (the protocol has no `__adapt__`): an `executemany` of rows with 6
# NULLs took 3.0 us a row, 2.0 with this adapter. An event row binds ~6.5 NULLs (issue 12: a
# first load's CPU -1.0 us an event, 6 alternated runs). The adapter returns None itself, so
# a NULL is bound as before. sqlite3's adapters are the process's, not a connection's: every
# connection of the process (sqlite-utils', the rollups' readers) gains.
sqlite3.register_adapter(type(None), lambda value: value)

# SQLite's configuration options (sqlite3.h).
SQLITE_CONFIG_MEMSTATUS = 9


def _without_memory_statistics() -> bool:
    """Turn off SQLite's memory statistics, for the whole process, if SQLite holds no memory
    yet (no connection open); whether it did.

    With them on (SQLite's default), every allocation SQLite makes takes a process-wide mutex
    to count its bytes, and writing a row makes several: writing 200,000 events 4.9 -> 4.4 us
    an event (4 alternated runs; issue 12). Nothing of ours reads them (`sqlite3_memory_used`,
    a soft heap limit). They can only change while SQLite is shut down, which is safe only
    with no connection open: a connection opened and closed here shows that they count (else
    they are off already) and that, once it is closed, nothing else holds SQLite's memory.
    This runs at import: a sync imports this module on the thread that opens the database
    while the main thread only sends requests, and the scheduler imports it before its
    threads start, so nothing of ours opens a connection in between.
    Linux only: the call is variadic, which ctypes passes right on its ABIs there; elsewhere,
    or with an SQLite whose functions the `_sqlite3` module does not expose, nothing changes."""
    if sys.platform != "linux":
        return False
    try:
        import _sqlite3

        lib = ctypes.CDLL(_sqlite3.__file__)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        probe = sqlite3.connect(":memory:")
        counted = lib.sqlite3_memory_used() > 0
        probe.close()
        if not counted or lib.sqlite3_memory_used() != 0 or lib.sqlite3_shutdown() != 0:
            return False
        done = lib.sqlite3_config(SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == 0
        return lib.sqlite3_initialize() == 0 and done
    except (OSError, AttributeError, ImportError):
        return False


MEMORY_STATISTICS_OFF = _without_memory_statistics()

# How long a connection waits for another writer (a sync's transaction, a schema upgrade).
BUSY_TIMEOUT_MS = 30_000


def require_database(path: str | Path) -> Path:
    """`path` expanded, if a database file is there; a command that only uses an existing one
    asks first, so a mistyped --db leaves nothing behind (an empty database, a lock file)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise NoDatabase(
            f"no database at {path}: run `klaviyo-etl sync` first, or point --db / KLAVIYO_ETL_DB at one"
        )
    return path


# SQLite's primary result codes for a file it may not write or cannot open.
SQLITE_READONLY, SQLITE_CANTOPEN = 8, 14


def open_error(path: Path, exc: BaseException, *, folder_writable: bool | None = None) -> DatabaseError:
    """The one line for a database that would not open. In WAL mode even a reader makes
    `NAME-wal` and `NAME-shm` beside the file; in a folder it may not write, SQLite says only
    "attempt to write a readonly database" or "unable to open database file" (as a `-wal`
    is there or not). `folder_writable` None: ask the system (root may write anywhere)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if folder_writable is None:
        folder_writable = os.access(path.parent, os.W_OK)
    if code is not None and code & 0xFF in (SQLITE_READONLY, SQLITE_CANTOPEN) and not folder_writable:
        return DatabaseError(
            f"cannot open database {path}: its folder {path.parent} is not writable, and SQLite must"
            f" create {path.name}-wal and {path.name}-shm there even to read it; make the folder"
            " writable, or copy the file to a folder you can write and point --db at the copy"
        )
    return DatabaseError(f"cannot open database {path}: {exc}")


def open_database(path: str | Path, *, migrate: bool = True, create: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the database in WAL mode and bring its schema up to date.

    WAL lets `report` read while `sync` writes; busy_timeout absorbs the short waits
    between the single writer's transactions.
    """
    path = require_database(path) if not create else Path(path).expanduser()
    refuse_other_than_a_file(path)
    try:
        create_private(path)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Not sqlite-utils' plugins: a `prepare_connection` hook installed beside us gets no say
        # in our connection. Loading them scans every installed package's entry points (9.5 ms
        # in a bare process; within the noise of a sync's start).
        db = sqlite_utils.Database(conn, execute_plugins=False)
        foreign = foreign_tables(db)
        if foreign:  # before any write: not even WAL mode is set on another program's file
            conn.close()
            shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
            raise DatabaseError(
                f"{path} is not a klaviyo-etl database (it holds tables {shown}): point --db /"
                " KLAVIYO_ETL_DB at a klaviyo-etl database or a new file"
            )
        if db.journal_mode != "wal":
            db.enable_wal()
        conn.execute("PRAGMA synchronous = NORMAL")
    except (sqlite3.DatabaseError, OSError) as exc:
        raise open_error(path, exc) from exc
    if migrate:
        try:
            apply_migrations(db)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            raise DatabaseError(
                f"database {path} stayed busy: another klaviyo-etl is writing to it (upgrading its"
                " schema, or syncing); run this again when it has finished"
            ) from exc
    return db
