"""`make demo`: start the built-in sandbox, sync everything from it, print a report, stop.

It drives the real CLI, exactly as a user would against Klaviyo, so the demo doubles as a
smoke test of the whole path: client → streams → SQLite → report.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

from klaviyo_etl.cli import app
from klaviyo_etl.sandbox import SandboxConfig, SandboxData, serve

# The table that marks a database the demo made (and may therefore replace).
DEMO_MARK = "_demo"


def clear_previous_demo(db: Path) -> str | None:
    """Remove the database of an earlier demo; a message if `db` is a file the demo did not make.

    Each demo is a new sandbox account (its campaign ids follow the clock), so syncing it into
    an earlier demo's file would show that account's campaigns beside this one's until the
    next reconciliation. A file without the demo's mark may be someone's data: left alone."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            marked = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [DEMO_MARK]
            ).fetchone()
        conn.close()
    except sqlite3.DatabaseError:
        marked = None
    if not marked:
        return f"{db} exists and was not made by the demo: remove it, or name another file (make DEMO_DB=...)"
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="demo.db", help="SQLite file to create")
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--events", type=int, default=60000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    problem = clear_previous_demo(Path(args.db))
    if problem:
        print(f"demo: {problem}", file=sys.stderr)
        return 2

    config = SandboxConfig(
        seed=args.seed,
        profiles=args.profiles,
        events=args.events,
        campaigns=24,
        flows=6,
        lists=5,
        segments=4,
        forms=4,
        templates=12,
        tags=6,
        rate_limits=True,
    )
    began = time.monotonic()
    data = SandboxData.generate(config)
    with serve(data, config) as server:
        print(f"sandbox listening on {server.url} (a local server speaking Klaviyo's API)")
        os.environ["KLAVIYO_API_KEY"] = config.api_key
        common = ["--db", args.db, "--base-url", server.url]
        steps = [
            [*common, "sync", "all"],
            [*common, "status"],
            [*common, "report", "campaigns", "--last", "90d", "--limit", "12"],
        ]
        for step in steps:
            print(f"\n$ klaviyo-etl {' '.join(step)}")
            code = app(step, prog_name="klaviyo-etl", standalone_mode=False)
            if code:  # with standalone_mode=False click returns the exit code
                print(f"demo stopped: step exited with {code}")
                return int(code)
    with sqlite3.connect(args.db) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS [{DEMO_MARK}] (made_at TEXT)")
        conn.execute(f"INSERT INTO [{DEMO_MARK}] VALUES (datetime('now'))")
    conn.close()
    print(f"\ndemo finished in {time.monotonic() - began:.1f}s; database: {args.db}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
