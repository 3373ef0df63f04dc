"""Ingest: the repositories against a plain `sqlite3.executemany` into the same schema."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

from klaviyo_etl.db import open_database
from klaviyo_etl.db.repositories import Repository
from klaviyo_etl.models import Page


def _event_pages(n: int, page: int = 1000) -> list[bytes]:
    pages = []
    for start in range(0, n, page):
        data = [
            {
                "type": "event",
                "id": f"ev{i:09d}",
                "attributes": {
                    "timestamp": 1767225600 + i,
                    "datetime": "2026-01-01T00:00:00+00:00",
                    "uuid": f"u{i}",
                    "event_properties": {
                        "$value": 12.5,
                        "$message": f"msg{i % 50}",
                        "Items": ["a", "b"],
                        "$event_id": str(i),
                    },
                },
                "relationships": {
                    "profile": {"data": {"type": "profile", "id": f"p{i % 5000}"}},
                    "metric": {"data": {"type": "metric", "id": f"m{i % 12}"}},
                },
            }
            for i in range(start, min(n, start + page))
        ]
        pages.append(json.dumps({"data": data, "links": {"next": None}}).encode())
    return pages


def bench_ingest(n: int) -> dict:
    """Pages (as bytes off the wire) into the events table: our path vs the bare minimum."""
    pages = _event_pages(n)
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(Path(tmp) / "repo.db")
        repo = Repository(db)
        started = time.perf_counter()
        for body in pages:
            page = Page.parse_json(body)
            with db.atomic():
                repo.write_resources(page.data)
        ours = time.perf_counter() - started
        db.close()

        # Baseline: same schema, no validation, the columns pulled out by hand, executemany.
        open_database(Path(tmp) / "base.db").close()
        conn = sqlite3.connect(Path(tmp) / "base.db")
        sql = (
            "INSERT OR REPLACE INTO events (id, metric_id, profile_id, datetime, timestamp, uuid, "
            "value, message_id, attributes) VALUES (?,?,?,?,?,?,?,?,?)"
        )
        started = time.perf_counter()
        for body in pages:
            rows = []
            for r in json.loads(body)["data"]:
                a, rel = r["attributes"], r["relationships"]
                p = a["event_properties"]
                rows.append(
                    (
                        r["id"],
                        rel["metric"]["data"]["id"],
                        rel["profile"]["data"]["id"],
                        a["datetime"],
                        a["timestamp"],
                        a["uuid"],
                        p.get("$value"),
                        p.get("$message"),
                        json.dumps(a),
                    )
                )
            with conn:
                conn.executemany(sql, rows)
        base = time.perf_counter() - started
        conn.close()
    return {
        "events": n,
        "repository_rows_per_s": round(n / ours),
        "executemany_rows_per_s": round(n / base),
        "ratio_vs_executemany": round(base / ours, 2),
    }
