"""Files that hold personal data (the database, its lock) are created private to their owner.

Its own module, so the writer lock (`klaviyo_etl.db.lock`, taken before a sync's first
request) needs neither sqlite-utils nor the migrations (issue 12: start-up).
"""

from __future__ import annotations

import os
from pathlib import Path


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
