"""Sync throughput against the sandbox under Klaviyo's real limits, and peak memory.

The sandbox runs in its own process, so its CPU and memory are not counted as ours. The
figures are events/s and profiles/s as a fraction of what the rate limits allow over the
same wall time, 429s, and the sync's peak RSS.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
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
