"""`make bench`: throughput against the sandbox under Klaviyo's real limits, ingest, and reports.

Figures are ratios measured within one run (this machine is shared and noisy):
- sync: events/s and profiles/s as a fraction of what the rate limits allow over the same
  wall time, 429s, and peak RSS at two event counts (flat memory means the ratio stays ~1);
- ingest: the repositories against a plain `sqlite3.executemany` into the same schema;
- reports: `report campaigns` / `report overview` on a large database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from klaviyo_etl.endpoints import contract


def _cli() -> list[str]:
    return [sys.executable, "-m", "klaviyo_etl"]


class Sandbox:
    """The sandbox in its own process, so its CPU and memory are not counted as ours."""

    def __init__(self, events: int, profiles: int, latency_ms: float):
        self.proc = subprocess.Popen(
            [
                *_cli(),
                "sandbox",
                "serve",
                "--port",
                "0",
                "--events",
                str(events),
                "--profiles",
                str(profiles),
                "--latency-ms",
                str(latency_ms),
                "--rate-limits",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.url = ""
        self.api_key = ""
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if "KLAVIYO_BASE_URL=" in line:
                self.url = line.split("=", 1)[1].strip()
            if "KLAVIYO_API_KEY=" in line:
                self.api_key = line.split("=", 1)[1].strip()
                break
        if not self.url:
            raise RuntimeError("the sandbox did not start")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _allowed_requests(path: str, seconds: float) -> dict[str, float]:
    """What the endpoint's limits allow over `seconds`: at the steady rate, and at most
    (the first minute's steady budget may be spent at burst speed)."""
    limit = contract().by_path(path).rate_limit
    steady = limit.steady_per_min / 60 * seconds
    most = min(limit.burst_per_s * seconds, limit.steady_per_min * max(1.0, seconds / 60))
    return {"steady": steady, "most": most}


# Runs the CLI and reports the process's own peak RSS, which RUSAGE_CHILDREN cannot give per run.
_MEASURED = (
    "import resource, runpy, sys\n"
    "sys.argv = ['klaviyo-etl', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('klaviyo_etl', run_name='__main__')\n"
    "finally:\n    print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
    "file=sys.stderr)\n"
)


def bench_sync(events: int, profiles: int, latency_ms: float) -> dict:
    with Sandbox(events, profiles, latency_ms) as sandbox, tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        env = {**os.environ, "KLAVIYO_API_KEY": sandbox.api_key}
        started = time.perf_counter()
        ours_before = _children_cpu()
        server_before = _process_cpu(sandbox.proc.pid)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _MEASURED,
                "--db",
                str(db),
                "--base-url",
                sandbox.url,
                "--quiet",
                "sync",
                "events",
                "profiles",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        # CPU of the sync with its parse workers, and of the sandbox: who the machine worked for.
        ours_cpu = _children_cpu() - ours_before
        server_cpu = _process_cpu(sandbox.proc.pid) - server_before
        rss_kb = int(out.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0])
        summary = json.loads(out.stdout)
    result: dict = {
        "events_generated": events,
        "profiles_generated": profiles,
        "latency_ms": latency_ms,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "cpu_s": {"sync_with_parse_workers": round(ours_cpu, 1), "sandbox": round(server_cpu, 1)},
        # What the sync alone costs per 1,000 rows, and the rows/s that would make it use
        # the machine's cores fully: its own ceiling, apart from the sandbox and the limits.
        "sync_cpu_ms_per_1000_rows": round(1_000_000 * ours_cpu / max(1, events + profiles), 1),
        "sync_capacity_rows_per_s_on_all_cores": round(
            (os.cpu_count() or 1) * max(1, events + profiles) / max(ours_cpu, 1e-9)
        ),
        "streams": {},
    }
    for s in summary["streams"]:
        secs = (
            dt.datetime.fromisoformat(s["ended_at"]) - dt.datetime.fromisoformat(s["started_at"])
        ).total_seconds()
        path = {"events": "/api/events", "profiles": "/api/profiles"}[s["stream"]]
        endpoint = contract().by_path(path)
        allowed = _allowed_requests(path, secs)
        result["streams"][s["stream"]] = {
            "status": s["status"],
            "rows": s["rows"],
            "requests": s["requests"],
            "seconds": round(secs, 1),
            "rows_per_s": round(s["rows"] / secs),
            "requests_per_s": round(s["requests"] / secs, 1),
            "fraction_of_steady_limit": round(s["requests"] / allowed["steady"], 3),
            "fraction_of_most_allowed": round(s["requests"] / allowed["most"], 3),
            "steady_ceiling_rows_per_s": round(
                endpoint.rate_limit.steady_per_min / 60 * (endpoint.page_size_max or 1)
            ),
            "throttled_429": s["throttled"],
            "retries": s["retries"],
        }
    return result


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
    from klaviyo_etl.db import open_database
    from klaviyo_etl.db.repositories import Repository
    from klaviyo_etl.models import Page

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


def bench_reports_on(n_events: int, path: Path | None) -> dict:
    from klaviyo_etl.reports.bench import bench_reports, build_bench_db

    with tempfile.TemporaryDirectory() as tmp:
        db = path or Path(tmp) / "reports.db"
        built = {}
        if not db.exists():
            started = time.perf_counter()
            built = build_bench_db(db, n_events)
            built["build_s"] = round(time.perf_counter() - started, 1)
        return {"built": built, **bench_reports(db)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 400_000)))
    parser.add_argument("--profiles", type=int, default=int(os.environ.get("BENCH_PROFILES", 20_000)))
    parser.add_argument("--latency-ms", type=float, default=60.0)
    parser.add_argument("--ingest-events", type=int, default=200_000)
    parser.add_argument(
        "--report-events", type=int, default=int(os.environ.get("BENCH_REPORT_EVENTS", 10_000_000))
    )
    parser.add_argument("--report-db", type=Path, help="reuse (or keep) this report database")
    parser.add_argument("--skip", action="append", default=[], choices=["sync", "ingest", "reports"])
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
