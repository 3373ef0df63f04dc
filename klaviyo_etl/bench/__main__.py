"""`make bench`: sync against the sandbox (share of the rate ceiling, CPU per event, memory),
small incremental runs, ingest, start-up and reports.

Figures are ratios measured within one run (this machine is shared and noisy):
- events: a first load of 200,000 events with the limits cut tenfold (35/s burst, 350/min
  steady), as a fraction of the ideal time those limits allow; its CPU per event (the sync
  and every process it starts) beside the floor measured in the same run; peak RSS of the
  whole sync process tree;
- profiles: a first load of 20,000 at Klaviyo's real L tier, likewise;
- memory: peak RSS of the tree at 100,000 and at BENCH_MEMORY_EVENTS (default 200,000; set
  1000000 for the issue's million) events, at the real limits;
- incremental: a re-run after new events that re-reads the 3-day lookback;
- start-up: `klaviyo-etl --help` and `report campaigns` on the report database;
- ingest: the repositories against a plain `sqlite3.executemany` into the same schema;
- reports: `report campaigns` / `report overview` on a large database;
- export: `export parquet` rows/s and peak RSS for 1 M events (`BENCH_EXPORT_EVENTS`), first
  and incremental, and at a quarter of the size (flat memory means the ratio stays ~1).
Medians of BENCH_RUNS runs (default 1; the issue's figures are medians of 3).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from klaviyo_etl.bench.export import bench_export
from klaviyo_etl.bench.ingest import bench_ingest
from klaviyo_etl.bench.report_timing import bench_reports_on
from klaviyo_etl.bench.sync import bench_first_load, bench_floor, bench_incremental, has_bytecode, start_up


def _median_run(runs: int, fn) -> dict:
    """Run `fn` `runs` times; the run whose wall time is the median, with every run's figures."""
    results = [fn() for _ in range(runs)]
    results.sort(key=lambda r: r["wall_s"])
    median = dict(results[len(results) // 2])
    if runs > 1:
        for key in ("fraction_of_ceiling", "cpu_us_per_row", "peak_rss_mb_tree", "wall_s"):
            if key in median:
                median[f"{key}_runs"] = [r[key] for r in results]
                median[key] = statistics.median(r[key] for r in results)
        if "early_requests" in median:  # one early request in any run is one too many
            median["early_requests_runs"] = [r["early_requests"] for r in results]
            median["early_requests"] = _total(median["early_requests_runs"])
    return median


def _total(counts: list[int | None]) -> int | None:
    """The sum, or None when a sandbox reported nothing."""
    return None if any(c is None for c in counts) else sum(counts)  # type: ignore[arg-type]


def summary(results: dict) -> str:
    """The issue-12 figures in a few lines (ratios within this run)."""
    lines = ["", "== summary (ratios within this run) =="]
    if ev := results.get("events"):
        lines.append(
            f"events  {ev['rows']:,} at {ev['burst_per_s']:g}/s, {ev['steady_per_min']:g}/min: "
            f"{ev['fraction_of_ceiling']:.0%} of the ceiling (ideal {ev['ideal_s']:.1f} s, wall "
            f"{ev['wall_s']:.1f} s; {ev['fraction_of_ceiling_stream_span']:.0%} over the stream's span), "
            f"{ev['requests']} requests for {ev['pages']} pages, {ev['throttled_429']} throttled"
        )
        lines.append(
            f"        CPU {ev['cpu_us_per_row']:.1f} us/event, floor {ev['floor_cpu_us_per_event']:.1f} "
            f"({ev['cpu_vs_floor']:.2f}x); sandbox CPU {ev['sandbox_cpu_s']:.1f} s; "
            f"peak RSS {ev['peak_rss_mb_tree']:.0f} MB in {ev['processes']} process(es)"
        )
    if pr := results.get("profiles"):
        lines.append(
            f"profiles {pr['rows']:,} at {pr['burst_per_s']:g}/s: {pr['fraction_of_ceiling']:.0%} of the "
            f"ceiling (ideal {pr['ideal_s']:.1f} s, wall {pr['wall_s']:.1f} s), peak RSS "
            f"{pr['peak_rss_mb_tree']:.0f} MB"
        )
    if mem := results.get("memory"):
        lines.append(
            f"memory  peak RSS of the tree {mem['peak_rss_mb_tree_small']:.0f} MB at {mem['events_small']:,} "
            f"events, {mem['peak_rss_mb_tree_big']:.0f} MB at {mem['events_big']:,} ({mem['growth']:+.0%})"
        )
    if inc := results.get("incremental"):
        lines.append(
            f"incremental  {inc['wall_s']:.2f} s, {inc['requests']} requests, {inc['rows_read']:,} rows "
            f"re-read, peak RSS {inc['peak_rss_mb_tree']:.0f} MB"
        )
    if st := results.get("startup"):
        line = f"start-up  --help {st['help']['wall_s']:.2f} s ({st['help']['cpu_s']:.2f} s CPU)"
        if "report_campaigns" in st:
            rc = st["report_campaigns"]
            line += (
                f", report campaigns on {st['report_db_events']:,} events {rc['wall_s']:.2f} s "
                f"({rc['cpu_s']:.2f} s CPU)"
            )
        if cached := st.get("cached"):
            line += "; compiling our modules at each start (no __pycache__); with bytecode, as installed:"
            line += f" --help {cached['help']['wall_s']:.2f} s ({cached['help']['cpu_s']:.2f} s CPU)"
            if "report_campaigns" in cached:
                rc = cached["report_campaigns"]
                line += f", report campaigns {rc['wall_s']:.2f} s ({rc['cpu_s']:.2f} s CPU)"
        lines.append(line + f"; bare python {st['python_bare']['wall_s']:.2f} s")
    if ex := results.get("export"):
        first = ex["first"]
        lines.append(
            f"export  {ex['events']:,} events: {first['rows_per_s']:,} rows/s, "
            f"peak RSS {first['peak_rss_mb']:.0f} MB ({ex['rss_ratio_full_vs_quarter']:.2f}x a quarter's)"
        )
    if "sync_bytecode" in results:
        lines.append(f"syncs ran with bytecode {results['sync_bytecode']}")
    early = {
        key: part["early_requests"]
        for key, part in results.items()
        if isinstance(part, dict) and "early_requests" in part
    }
    if early:
        total = _total(list(early.values()))
        parts = ", ".join(f"{key} {'?' if n is None else n}" for key, n in early.items())
        lines.append(
            "early requests (sent before a 429's Retry-After ran out, target 0): "
            f"{'unknown' if total is None else total} ({parts})"
        )
    return "\n".join(lines)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m klaviyo_etl.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=_env_int("BENCH_EVENTS", 200_000))
    parser.add_argument("--profiles", type=int, default=_env_int("BENCH_PROFILES", 20_000))
    parser.add_argument("--memory-events", type=int, default=_env_int("BENCH_MEMORY_EVENTS", 200_000))
    parser.add_argument("--runs", type=int, default=_env_int("BENCH_RUNS", 1))
    parser.add_argument("--latency-ms", type=float, default=float(os.environ.get("BENCH_LATENCY_MS", 60)))
    parser.add_argument("--ingest-events", type=int, default=200_000)
    parser.add_argument("--report-events", type=int, default=_env_int("BENCH_REPORT_EVENTS", 1_000_000))
    parser.add_argument("--report-db", type=Path, help="reuse (or keep) this report database")
    parser.add_argument("--export-events", type=int, default=_env_int("BENCH_EXPORT_EVENTS", 1_000_000))
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["events", "profiles", "memory", "incremental", "startup", "ingest", "reports", "export"],
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/latest.json"))
    args = parser.parse_args(argv)

    results: dict = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # Our modules without a bytecode cache: the syncs share one compiled for the bench
    # (bench/sync.py: installed_env), as an installed package would have.
    cached = has_bytecode()
    results["sync_bytecode"] = "from the checkout" if cached else "as installed (a cache for this bench)"

    def show(key: str, value: dict) -> None:
        results[key] = value
        print(json.dumps({key: value}, indent=2), flush=True)

    if "events" not in args.skip:
        floor = bench_floor()
        events = _median_run(
            args.runs,
            lambda: bench_first_load("events", args.events, scale=0.1, latency_ms=args.latency_ms),
        )
        events["floor_cpu_us_per_event"] = floor["cpu_us_per_event"]
        events["cpu_vs_floor"] = round(events["cpu_us_per_row"] / floor["cpu_us_per_event"], 2)
        show("events", events)
    if "profiles" not in args.skip:
        show(
            "profiles",
            _median_run(
                args.runs,
                lambda: bench_first_load("profiles", args.profiles, scale=1.0, latency_ms=args.latency_ms),
            ),
        )
    if "memory" not in args.skip:
        small_n = 100_000 if args.memory_events > 100_000 else args.memory_events // 2
        small = bench_first_load("events", small_n, scale=1.0, latency_ms=args.latency_ms)
        big = bench_first_load("events", args.memory_events, scale=1.0, latency_ms=args.latency_ms)
        show(
            "memory",
            {
                "events_small": small_n,
                "peak_rss_mb_tree_small": small["peak_rss_mb_tree"],
                "events_big": args.memory_events,
                "peak_rss_mb_tree_big": big["peak_rss_mb_tree"],
                "peak_rss_mb_largest_big": big["peak_rss_mb_largest"],
                "growth": round(big["peak_rss_mb_tree"] / small["peak_rss_mb_tree"] - 1, 3),
                "cpu_us_per_event_big": big["cpu_us_per_row"],
                "early_requests": _total([small["early_requests"], big["early_requests"]]),
            },
        )
    if "incremental" not in args.skip:
        show(
            "incremental",
            _median_run(args.runs, lambda: bench_incremental(args.events, 2_000, latency_ms=args.latency_ms)),
        )
    with tempfile.TemporaryDirectory() as tmp:
        report_db = args.report_db or Path(tmp) / "reports.db"
        if "reports" not in args.skip or "startup" not in args.skip:
            show("reports", bench_reports_on(args.report_events, report_db))
        if "startup" not in args.skip:
            show("startup", start_up(report_db))
    if "ingest" not in args.skip:
        show("ingest", bench_ingest(args.ingest_events))
    if "export" not in args.skip:
        show("export", bench_export(args.export_events))
    print(summary(results), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
