"""Opening the database: the file and the directories we create are private to the user."""

import sqlite3
import stat
import subprocess
import sys

import pytest

from klaviyo_etl.db import open_database
from klaviyo_etl.db.database import _without_memory_statistics
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


def _sqlite_errors(tmp_path) -> list[sqlite3.Error]:
    """SQLite's own errors for a file it may not write and one it cannot open (as root too)."""
    path = tmp_path / "k.db"
    open_database(path).close()
    errors = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("CREATE TABLE t (x)")
    except sqlite3.Error as exc:
        errors.append(exc)
    conn.close()
    try:
        sqlite3.connect(tmp_path / "no-such-folder" / "k.db").execute("SELECT 1")
    except sqlite3.Error as exc:
        errors.append(exc)
    assert [str(e) for e in errors] == [
        "attempt to write a readonly database",
        "unable to open database file",
    ]
    return errors


def test_a_database_in_a_folder_it_may_not_write_says_what_to_do(tmp_path):
    # In WAL mode a reader makes k.db-wal and k.db-shm beside the file; SQLite's own words
    # ("unable to open database file", "attempt to write a readonly database") said neither.
    from klaviyo_etl.db.database import open_error

    path = tmp_path / "shared" / "k.db"
    for exc in _sqlite_errors(tmp_path):
        message = str(open_error(path, exc, folder_writable=False))
        assert message == (
            f"cannot open database {path}: its folder {path.parent} is not writable, and SQLite must"
            " create k.db-wal and k.db-shm there even to read it; make the folder writable, or copy"
            " the file to a folder you can write and point --db at the copy"
        )
        assert "\n" not in message
        # A writable folder: the trouble is elsewhere, and SQLite's words are all there is.
        assert str(open_error(path, exc, folder_writable=True)) == f"cannot open database {path}: {exc}"
    assert str(open_error(path, OSError("no"), folder_writable=False)) == f"cannot open database {path}: no"


def test_a_null_is_bound_through_an_adapter_of_ours_and_stored_as_null(tmp_path):
    # sqlite3 sends None through its adapter lookup, which without an adapter for None
    # builds and drops an AttributeError for every NULL bound (issue 12: ~1 us an event).
    db = open_database(tmp_path / "k.db")
    assert (type(None), sqlite3.PrepareProtocol) in sqlite3.adapters
    db.conn.execute("CREATE TABLE t (a, b)")
    db.conn.executemany("INSERT INTO t VALUES (?, ?)", [(None, 1), ("x", None)])
    assert db.conn.execute("SELECT a IS NULL, b IS NULL, typeof(a), typeof(b) FROM t").fetchall() == [
        (1, 0, "null", "integer"),
        (0, 1, "text", "null"),
    ]
    db.close()


@pytest.mark.skipif(sys.platform != "linux", reason="turned off on Linux only")
def test_sqlite_keeps_no_memory_statistics_in_a_process_of_ours(tmp_path):
    # With them on, each of SQLite's allocations takes a process-wide mutex to count its bytes
    # (issue 12: writing events 4.9 -> 4.4 us an event). A process of its own: this one may
    # have had a connection open when the module was first imported.
    script = (
        "import ctypes, _sqlite3, sys\n"
        "from klaviyo_etl.db.database import MEMORY_STATISTICS_OFF, open_database\n"
        "lib = ctypes.CDLL(_sqlite3.__file__)\n"
        "lib.sqlite3_memory_used.restype = ctypes.c_int64\n"
        "db = open_database(sys.argv[1])\n"
        "db['t'].insert({'a': 'x' * 1000})\n"
        "print(MEMORY_STATISTICS_OFF, lib.sqlite3_memory_used(), db.execute('SELECT length(a) FROM t').fetchone()[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "k.db")], capture_output=True, text=True
    )
    assert out.stdout.split() == ["True", "0", "1000"], out.stderr


def test_sqlite_is_never_shut_down_under_an_open_connection(tmp_path):
    conn = sqlite3.connect(tmp_path / "k.db")
    conn.execute("CREATE TABLE t (a)")
    assert _without_memory_statistics() is False
    conn.execute("INSERT INTO t VALUES (1)")
    assert conn.execute("SELECT a FROM t").fetchall() == [(1,)]
    conn.close()


def test_sqlite_utils_plugins_have_no_say_in_our_connection(tmp_path, monkeypatch):
    import sqlite_utils.db

    called = []
    monkeypatch.setattr(sqlite_utils.db, "ensure_plugins_loaded", lambda: called.append("loaded"))
    open_database(tmp_path / "k.db").close()
    assert called == []
