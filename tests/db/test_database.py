"""Opening the database: the file and the directories we create are private to the user."""

import sqlite3
import stat

import pytest

from klaviyo_etl.db import open_database
from klaviyo_etl.db.lock import database_lock
from klaviyo_etl.errors import DatabaseError


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


def test_another_programs_database_is_refused_before_any_write(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    for kwargs in ({}, {"migrate": False}, {"create": False}):
        with pytest.raises(
            DatabaseError, match=r"other\.db is not a klaviyo-etl database \(it holds tables notes\)"
        ):
            open_database(path, **kwargs)
    assert path.read_bytes() == before
    assert not path.with_name("other.db-wal").exists()


def test_an_empty_file_and_our_own_database_open(tmp_path):
    (tmp_path / "empty.db").touch()
    open_database(tmp_path / "empty.db").close()  # an empty file is a new database
    open_database(tmp_path / "empty.db").close()  # and, migrated, one of ours
