"""The export benchmark at a size a test can afford: what each of its three exports writes."""

from __future__ import annotations

from klaviyo_etl.bench.export import bench_export_once


def test_the_bench_exports_everything_then_two_days_then_nothing():
    result = bench_export_once(3000)
    first, incremental, unchanged = result["first"], result["after_two_days_reread"], result["unchanged"]
    assert first["rows_written"] >= result["events"] and first["files_unchanged"] == 0
    assert first["rows_per_s"] > 0 and first["peak_rss_mb"] > 0
    assert incremental["files_written"] == 2
    assert all(path.startswith("events/date=") for path in incremental["written"])
    assert incremental["files_unchanged"] == first["files_written"] - 2
    assert unchanged["files_written"] == 0 and unchanged["rows_written"] == 0
