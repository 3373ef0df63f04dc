"""`klaviyo-etl export parquet` after a sync against the sandbox: DuckDB reading the folder sees
what the database holds (row counts, campaign figures), and a second export after an
incremental sync rewrites only the days that changed."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from klaviyo_etl import conventions as kc
from klaviyo_etl.cli import app
from klaviyo_etl.db import open_database
from klaviyo_etl.db.migrations import public_tables
from tests.helpers.export import files, query, scan, touched
from tests.helpers.sync import read_only_database


def run(db: Path, server, config, *args: str) -> str:
    result = CliRunner().invoke(
        app,
        ["--db", str(db), "--base-url", server.url, *args],
        env={"KLAVIYO_API_KEY": config.api_key, "KLAVIYO_ETL_CONFIG": str(db.parent / "none.toml")},
    )
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def synced(sandbox_factory, tmp_path_factory):
    """A small account synced once; the tests export it (the second one also changes it)."""
    with sandbox_factory("small") as sb:
        db = tmp_path_factory.mktemp("export") / "k.db"
        run(db, sb.server, sb.config, "--quiet", "sync")
        yield sb, db


def test_duckdb_reads_the_same_rows_and_campaign_figures_as_the_database(synced, tmp_path):
    sandbox, db = synced
    root = tmp_path / "warehouse"
    summary = json.loads(run(db, sandbox.server, sandbox.config, "export", "parquet", str(root), "--json"))
    assert summary["removed"] == [] and summary["unchanged"] == 0

    conn = sqlite3.connect(db)
    tables = public_tables(open_database(db))
    stored = {t: conn.execute(f"SELECT count(*) FROM [{t}]").fetchone()[0] for t in tables}
    read = {t: query(f"SELECT count(*) FROM {scan(root, t)}")[0][0] for t in tables}
    print("rows per table:", read)
    assert read == stored and stored["events"] > 1000
    days = conn.execute(
        "SELECT substr(datetime, 1, 10), count(*) FROM events GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert (
        query(
            f"SELECT strftime(date, '%Y-%m-%d'), count(*) FROM {scan(root, 'events')} GROUP BY 1 ORDER BY 1"
        )
        == days
    )

    report = json.loads(
        run(db, sandbox.server, sandbox.config, "report", "campaigns", "--last", "all", "--format", "json")
    )
    # The conversion metric by the documented rule: the "Placed Order" metric with most events.
    conversion = query(
        f"""SELECT m.id FROM {scan(root, "metrics")} m LEFT JOIN {scan(root, "events")} e ON e.metric_id = m.id
            WHERE m.name = '{kc.PLACED_ORDER}' GROUP BY m.id, m.created
            ORDER BY count(e.id) DESC, m.created, m.id LIMIT 1"""
    )[0][0]
    assert conversion == report["conversion_metric"]["id"]
    recipient_metrics = sorted(
        name
        for roles in kc.CHANNEL_METRICS.values()
        for role, name in roles.items()
        if name and role in ("received", "bounced", "failed")
    )
    names = ", ".join(f"'{n}'" for n in recipient_metrics)
    # A campaign's entities: its own id (live events carry it in message_id) and its messages' ids.
    figures = query(
        f"""WITH ev AS (SELECT * FROM {scan(root, "events")} WHERE deleted_at IS NULL AND datetime IS NOT NULL),
            entities AS (SELECT id AS campaign_id, id AS entity FROM {scan(root, "campaigns")}
                         UNION SELECT campaign_id, id FROM {scan(root, "campaign_messages")}),
            recipients AS (
                SELECT x.campaign_id, x.entity, count(DISTINCT ev.profile_id) AS n
                FROM entities x JOIN ev ON ev.message_id = x.entity
                JOIN {scan(root, "metrics")} m ON m.id = ev.metric_id AND m.name IN ({names})
                GROUP BY x.campaign_id, x.entity),
            revenue AS (
                SELECT x.campaign_id, sum(ev.value) AS value
                FROM entities x JOIN ev ON ev.attributed_message_id = x.entity AND ev.metric_id = '{conversion}'
                GROUP BY x.campaign_id)
            SELECT c.id, coalesce((SELECT sum(n) FROM recipients r WHERE r.campaign_id = c.id), 0),
                   round(coalesce((SELECT value FROM revenue v WHERE v.campaign_id = c.id), 0), 2)
            FROM {scan(root, "campaigns")} c"""
    )
    by_campaign = {cid: (int(recipients), value) for cid, recipients, value in figures}
    expected = {r["campaign_id"]: (r["recipients"], r["conversion_value"]) for r in report["rows"]}
    print("campaign figures (recipients, conversion_value):", expected)
    assert {cid: by_campaign[cid] for cid in expected} == expected
    assert any(v > 0 for _, v in expected.values()) and any(n > 0 for n, _ in expected.values())


def test_a_second_export_after_an_incremental_sync_rewrites_only_the_changed_days(synced, tmp_path):
    sandbox, db = synced
    root = tmp_path / "warehouse"
    run(db, sandbox.server, sandbox.config, "--quiet", "export", "parquet", str(root))
    before = files(root)
    exported_at = dt.datetime.now(dt.UTC).isoformat()

    # Late events on two days inside the sync's lookback window (default three days).
    now = sandbox.config.now
    late = [now - dt.timedelta(hours=26), now - dt.timedelta(hours=50)]
    for when in late:
        sandbox.data.add_events(3, start=when, end=when + dt.timedelta(minutes=30))
    run(db, sandbox.server, sandbox.config, "--quiet", "sync", "events")
    summary = json.loads(run(db, sandbox.server, sandbox.config, "export", "parquet", str(root), "--json"))
    after = files(root)

    changed = touched(before, after)
    print("files touched by the second export:", *sorted(changed), sep="\n  ")
    assert changed == set(summary["written"]) and summary["removed"] == []
    conn = sqlite3.connect(db)
    # Every day the sync wrote to (new events, or re-read ones), and nothing else.
    synced_days = {
        d
        for (d,) in conn.execute(
            "SELECT DISTINCT substr(datetime, 1, 10) FROM events WHERE synced_at > ?", [exported_at]
        )
    }
    assert {w.date().isoformat() for w in late} <= synced_days
    assert {p for p in changed if p.startswith("events/")} == {
        f"events/date={d}/part-0.parquet" for d in synced_days
    }
    assert {p for p in changed if not p.startswith("events/")} == {
        "sync_state/sync_state.parquet",
        "sync_runs/sync_runs.parquet",
    }
    days = [p for p in after if p.startswith("events/")]
    assert len(days) > 3 * len(synced_days)  # most days were left alone
    assert (
        query(f"SELECT count(*) FROM {scan(root, 'events')}")[0][0]
        == conn.execute("SELECT count(*) FROM events").fetchone()[0]
    )


def test_bad_targets_are_one_line_usage_errors(tiny_db_path, tmp_path):
    (tmp_path / "a-file").write_text("")
    for db, target, message in (
        (tmp_path / "missing.db", tmp_path / "out", "no database at"),
        (tiny_db_path, tmp_path / "a-file", "is not a folder"),
    ):
        result = CliRunner().invoke(app, ["--db", str(db), "export", "parquet", str(target)])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Error: ") and message in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "missing.db").exists()


def test_verbose_lists_each_file_written(tiny_db_path, tmp_path):
    result = CliRunner().invoke(
        app, ["--db", str(tiny_db_path), "-v", "export", "parquet", str(tmp_path / "w")]
    )
    assert result.exit_code == 0, result.output
    assert "wrote events/date=2026-05-01/part-0.parquet" in result.output
    assert result.output.rstrip().endswith("0 unchanged; removed 0")


def test_a_read_only_database_is_one_line_and_nothing_is_written(tmp_path):
    db = tmp_path / "k.db"
    before = read_only_database(db)
    result = CliRunner().invoke(
        app,
        ["--db", str(db), "export", "parquet", str(tmp_path / "warehouse")],
        env={"KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml")},
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"Error: database {db} is read-only: make it writable (chmod u+w); sync, purge and export write to it"
    ]
    assert db.read_bytes() == before and not (tmp_path / "warehouse").exists()
