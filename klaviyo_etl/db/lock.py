"""One writer per database file: overlapping cron runs must not both sync."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from klaviyo_etl.db.private import create_private_dirs
from klaviyo_etl.errors import DatabaseError, DatabaseLocked


def lock_path(db_path: str | Path) -> Path:
    return Path(str(Path(db_path).expanduser()) + ".lock")


def refuse_other_than_a_file(path: Path) -> None:
    """Refuse a --db that is there but is no file: SQLite opens a folder, a device or a pipe
    and fails later (`--db /dev/null`: "unexpected OperationalError: disk I/O error", after
    leaving /dev/null-journal and /dev/null.lock behind)."""
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device, a pipe or a socket)"
        raise DatabaseError(
            f"cannot open database {path}: it is {kind}; point --db / KLAVIYO_ETL_DB at a database file"
            " or a new file"
        )


def check_writable(db_path: str | Path) -> None:
    """Refuse a read-only database file to a command that writes to it (sync, purge, export),
    which SQLite would only refuse at its first write, deep in the work."""
    database = Path(db_path).expanduser()
    if database.exists() and not os.access(database, os.W_OK):
        raise DatabaseError(
            f"database {database} is read-only: make it writable (chmod u+w); sync, purge and export"
            " write to it"
        )


@contextmanager
def database_lock(db_path: str | Path, *, timeout: float = 0) -> Iterator[None]:
    """Hold the database's writer lock, or raise DatabaseLocked at once (timeout=0).

    An OS-level lock (flock) is released by the kernel if the process dies, so a
    killed sync never leaves a stale lock behind.
    """
    path = lock_path(db_path)
    refuse_other_than_a_file(Path(db_path).expanduser())
    check_writable(db_path)
    lock = FileLock(str(path), timeout=timeout, thread_local=False)
    try:
        create_private_dirs(path.parent)
        lock.acquire()
    except Timeout:
        raise DatabaseLocked(
            f"another klaviyo-etl sync is running on {db_path} (lock {path}); try again later"
        ) from None
    except OSError as exc:  # a folder that cannot be made or written, a file where a folder should be
        raise DatabaseError(
            f"cannot create the lock file {path}: {exc.strerror or exc}; the database's folder must be"
            " a folder you can write"
        ) from None
    try:
        yield
    finally:
        lock.release()
