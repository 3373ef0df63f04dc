"""`make bench`: throughput against the sandbox under Klaviyo's real limits, ingest, and reports.

Figures are ratios measured within one run (this machine is shared and noisy):
- sync: events/s and profiles/s as a fraction of what the rate limits allow over the same
  wall time, 429s, and peak RSS at two event counts (flat memory means the ratio stays ~1);
- ingest: the repositories against a plain `sqlite3.executemany` into the same schema;
- reports: `report campaigns` / `report overview` on a large database;
- export: `export parquet` rows/s and peak RSS for 1 M events (`BENCH_EXPORT_EVENTS`), first
  and incremental, and at a quarter of the size (flat memory means the ratio stays ~1).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from klaviyo_etl.bench.export import bench_export
from klaviyo_etl.bench.ingest import bench_ingest
from klaviyo_etl.bench.report_timing import bench_reports_on
from klaviyo_etl.bench.sync import bench_sync


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m klaviyo_etl.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 400_000)))
    parser.add_argument("--profiles", type=int, default=int(os.environ.get("BENCH_PROFILES", 20_000)))
    parser.add_argument("--latency-ms", type=float, default=60.0)
    parser.add_argument("--ingest-events", type=int, default=200_000)
    parser.add_argument(
        "--report-events", type=int, default=int(os.environ.get("BENCH_REPORT_EVENTS", 10_000_000))
    )
    parser.add_argument("--report-db", type=Path, help="reuse (or keep) this report database")
    parser.add_argument(
        "--export-events", type=int, default=int(os.environ.get("BENCH_EXPORT_EVENTS", 1_000_000))
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=["sync", "ingest", "reports", "export"]
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/latest.json"))
    args = parser.parse_args(argv)

    results: dict = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "sync" not in args.skip:
        small = bench_sync(args.events // 4, args.profiles // 4, args.latency_ms)
        big = bench_sync(args.events, args.profiles, args.latency_ms)
        results["sync"] = big
        results["memory"] = {
            "peak_rss_mb_full": big["peak_rss_mb"],
            "peak_rss_mb_quarter": small["peak_rss_mb"],
            "ratio_full_vs_quarter": round(big["peak_rss_mb"] / small["peak_rss_mb"], 2),
        }
        print(json.dumps({"sync": big, "memory": results["memory"]}, indent=2), flush=True)
    if "ingest" not in args.skip:
        results["ingest"] = bench_ingest(args.ingest_events)
        print(json.dumps({"ingest": results["ingest"]}, indent=2), flush=True)
    if "reports" not in args.skip:
        results["reports"] = bench_reports_on(args.report_events, args.report_db)
        print(json.dumps({"reports": results["reports"]}, indent=2), flush=True)
    if "export" not in args.skip:
        results["export"] = bench_export(args.export_events)
        print(json.dumps({"export": results["export"]}, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
