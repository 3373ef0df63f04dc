"""One writer per database file: overlapping cron runs must not both sync."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from klaviyo_etl.db.private import create_private_dirs
from klaviyo_etl.errors import DatabaseLocked


def lock_path(db_path: str | Path) -> Path:
    return Path(str(Path(db_path).expanduser()) + ".lock")


@contextmanager
def database_lock(db_path: str | Path, *, timeout: float = 0) -> Iterator[None]:
    """Hold the database's writer lock, or raise DatabaseLocked at once (timeout=0).

    An OS-level lock (flock) is released by the kernel if the process dies, so a
    killed sync never leaves a stale lock behind.
    """
    path = lock_path(db_path)
    create_private_dirs(path.parent)
    lock = FileLock(str(path), timeout=timeout, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise DatabaseLocked(
            f"another klaviyo-etl sync is running on {db_path} (lock {path}); try again later"
        ) from None
    try:
        yield
    finally:
        lock.release()
