"""Opening the database: the file and the directories we create are private to the user."""

import stat

from klaviyo_etl.db import open_database
from klaviyo_etl.db.lock import database_lock


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "new" / "deeper" / "k.db"
    db = open_database(path)
    db["metrics"].insert({"id": "m1", "name": "Placed Order"})
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    wal = path.with_name("k.db-wal")
    assert not wal.exists() or mode(wal) == 0o600
    db.close()


def test_the_sync_lock_creates_a_private_directory_too(tmp_path):
    path = tmp_path / "locked" / "k.db"
    with database_lock(path):
        assert mode(path.parent) == 0o700


def test_an_existing_database_keeps_its_mode(tmp_path):
    path = tmp_path / "k.db"
    open_database(path).close()
    path.chmod(0o640)
    open_database(path).close()
    assert mode(path) == 0o640
