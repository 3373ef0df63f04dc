"""`make demo` (klaviyo_etl/demo.py): each run a fresh database, and never someone else's file."""

from __future__ import annotations

import sqlite3

from klaviyo_etl import demo

SMALL = ["--events", "2000", "--profiles", "100"]


def _campaign_ids(db) -> set[str]:
    with sqlite3.connect(db) as conn:
        ids = {row[0] for row in conn.execute("SELECT id FROM campaigns")}
    conn.close()
    return ids


def test_a_second_demo_starts_from_a_fresh_database(tmp_path, monkeypatch, capsys):
    # Each demo is a new sandbox account (its campaign ids follow the clock): an earlier
    # account's campaigns must not show up beside this one's, with no recipients.
    monkeypatch.setenv("KLAVIYO_API_KEY", "unused")
    db = tmp_path / "demo.db"
    assert demo.main(["--db", str(db), *SMALL]) == 0
    first = _campaign_ids(db)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO campaigns (id, name, status) VALUES ('01STALEDEMOCAMPAIGN', 'Earlier demo', 'Sent')"
        )
    conn.close()
    assert demo.main(["--db", str(db), *SMALL]) == 0
    assert _campaign_ids(db) == first
    assert "Earlier demo" not in capsys.readouterr().out.split("report campaigns")[-1]


def test_a_file_the_demo_did_not_make_is_left_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KLAVIYO_API_KEY", "unused")
    db = tmp_path / "mine.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.close()
    before = db.read_bytes()
    assert demo.main(["--db", str(db), *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was not made by the demo" in err
    assert db.read_bytes() == before
