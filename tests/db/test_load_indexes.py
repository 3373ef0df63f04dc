"""The events' indexes a first load drops and builds again at its end are each read by a query
the rollups or reports run: an index no query uses would only lengthen every first load's
tail (each build sorts the whole table: ~0.13-0.16 s at 200,000 events) and the file."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3

from klaviyo_etl.bench.report_timing import build_bench_db
from klaviyo_etl.db import open_database
from klaviyo_etl.db.repositories import Repository
from klaviyo_etl.db.rollups import refresh_rollups
from klaviyo_etl.reports.customers import cohort_report, rfm_report
from klaviyo_etl.reports.periods import Period


def _indexes_read(conn, statements: list[str]) -> set[str]:
    used: set[str] = set()
    for sql in statements:
        if not re.match(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", sql, re.I) or "events" not in sql:
            continue
        try:
            plan = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
        except sqlite3.OperationalError:  # reads a temporary table dropped since
            continue
        for row in plan:
            used.update(re.findall(r"INDEX (\w+)", row[3]))
    return used


def test_every_index_a_first_load_builds_at_its_end_is_read_by_a_query(tmp_path):
    path = tmp_path / "bench.db"
    build_bench_db(path, 3000, seed=5, days=60, now=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    db = open_database(path)
    repo = Repository(db)
    repo.defer_indexes("events")
    deferred = {row["name"] for row in db["_deferred_indexes"].rows_where("table_name = 'events'")}
    repo.restore_indexes("events")
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    refresh_rollups(db)
    everything = Period(None, None, "all")
    rfm_report(db, everything)
    cohort_report(db, everything, now=dt.date(2026, 6, 1))
    db.conn.set_trace_callback(None)
    assert deferred and deferred <= _indexes_read(db.conn, statements)
