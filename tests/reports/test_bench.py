"""The benchmark's builder and timer, at a size a test can afford."""

from __future__ import annotations

import datetime as dt

from klaviyo_etl.bench.report_timing import bench_reports, build_bench_db
from klaviyo_etl.db import open_database


def test_build_and_time(tmp_path):
    path = tmp_path / "bench.db"
    now = dt.datetime(2026, 5, 31, 12, tzinfo=dt.UTC)
    built = build_bench_db(path, 4000, seed=2, days=45, now=now)
    assert abs(built["events"] - 4000) < 400  # close to what was asked for
    db = open_database(path)
    counts = dict(
        db.execute("SELECT m.name, count(*) FROM events e JOIN metrics m ON m.id = e.metric_id GROUP BY 1")
    )
    assert counts["Received Email"] > counts["Opened Email"] > counts["Clicked Email"] > 0
    assert counts["Placed Order"] > 0 and counts["Form submitted by profile"] > 0
    attributed = db.execute("SELECT count(*) FROM events WHERE attributed_message_id IS NOT NULL").fetchone()[
        0
    ]
    assert attributed > 0
    assert db.execute("SELECT max(datetime) FROM events").fetchone()[0] < now.isoformat()
    db.close()
    result = bench_reports(path, repeat=2)
    assert result["events"] == built["events"]
    assert result["rollup_refresh"]["mode"] == "full"
    for key in ("campaigns_30d", "campaigns_all", "overview_30d", "overview_year"):
        assert 0 < result[key]["warm_median_s"] < 5
    assert bench_reports(path, repeat=1)["rollup_refresh"]["mode"] == "none"
