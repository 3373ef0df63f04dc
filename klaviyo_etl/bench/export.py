"""`export parquet` throughput and peak memory on a big database, first and incremental.

The database comes from `build_bench_db` (a realistic year of events, written straight into
the public tables). The export runs as the CLI in a process of its own, so its peak RSS is its
own: the first export of everything, then one after a re-read of the two latest days (only
those partitions, plus nothing else, should be written), then one with nothing changed.
Peak RSS at the full size and at a quarter of it shows whether memory stays flat: events are
streamed day by day in batches, never loaded whole.

    python -m klaviyo_etl.bench.export 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from klaviyo_etl.bench.report_timing import build_bench_db
from klaviyo_etl.db import open_database

# The CLI in a child process that prints its own peak RSS last. Not `ru_maxrss`: Linux carries
# the high-water mark of the process that spawned it across fork and exec, so a child of the
# process that built a big database would report that one's peak. VmHWM is the child's own.
_MEASURED = (
    "import resource, runpy, sys\n"
    "sys.argv = ['klaviyo-etl', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('klaviyo_etl', run_name='__main__')\n"
    "finally:\n"
    "    try:\n"
    "        hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "    except OSError:\n"
    "        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "    print('MAXRSS_KB', hwm, file=sys.stderr)\n"
)


def _export(db: Path, target: Path) -> dict:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _MEASURED, "--db", str(db), "export", "parquet", str(target), "--json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KLAVIYO_ETL_CONFIG": str(db.parent / "none.toml")},
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"export failed: {out.stderr.strip()[-500:]}")
    summary = json.loads(out.stdout)
    rss_kb = int(out.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0])
    return {
        "wall_s": round(wall, 2),
        "files_written": len(summary["written"]),
        "files_unchanged": summary["unchanged"],
        "rows_written": summary["rows"],
        "rows_per_s": round(summary["rows"] / wall) if summary["rows"] else 0,
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "written": summary["written"] if len(summary["written"]) <= 10 else None,
    }


def bench_export_once(n_events: int) -> dict:
    """Build a database of about `n_events` events and time three exports of it."""
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "export.db"
        built = build_bench_db(db_path, n_events)
        target = Path(tmp) / "warehouse"
        first = _export(db_path, target)
        first["megabytes_on_disk"] = round(
            sum(p.stat().st_size for p in target.rglob("*.parquet")) / 2**20, 1
        )
        db = open_database(db_path)
        days = [
            d
            for (d,) in db.execute(
                "SELECT DISTINCT substr(datetime, 1, 10) AS d FROM events ORDER BY d DESC LIMIT 2"
            )
        ]
        # What a sync's lookback re-read does to those days: every event stamped again.
        db.execute(
            "UPDATE events SET synced_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"
            " WHERE datetime >= ? AND datetime < ?",
            [min(days), "9999"],
        )
        db.close()
        incremental = _export(db_path, target)
        unchanged = _export(db_path, target)
    return {
        "events": built["events"],
        "first": first,
        "after_two_days_reread": incremental,
        "unchanged": unchanged,
    }


def bench_export(n_events: int) -> dict:
    """The export at `n_events` and at a quarter of it: throughput, and whether memory is flat."""
    small = bench_export_once(n_events // 4)
    big = bench_export_once(n_events)
    big["peak_rss_mb_quarter"] = small["first"]["peak_rss_mb"]
    big["rss_ratio_full_vs_quarter"] = round(big["first"]["peak_rss_mb"] / small["first"]["peak_rss_mb"], 2)
    return big


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=int, nargs="?", default=1_000_000)
    args = parser.parse_args(argv)
    print(json.dumps(bench_export(args.events), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
