"""Sync against the sandbox: share of the rate ceiling, CPU per row, and the process tree's memory.

The sandbox runs in its own process, so its CPU and memory are not counted as ours. Every
figure is a ratio within one run, because this machine is shared and noisy:
- the share of the rate ceiling: the time the endpoint's limits need for the pages read (the
  1 s burst and 60 s steady windows, `ideal_seconds`) over the wall time of the whole sync
  process (start-up and index builds included) and over the stream's own span;
- CPU per row of the sync process and every process it started (parse workers), from
  `RUSAGE_CHILDREN`, beside the floor (`bench_floor`: orjson parse plus one prepared
  `executemany` of the same rows into the same schema) measured in the same run;
- peak RSS of the whole sync process tree (sampled from /proc), and of its largest process.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from klaviyo_etl import conventions as kc
from klaviyo_etl.db import open_database
from klaviyo_etl.endpoints import contract
from klaviyo_etl.processes import stat_fields
from klaviyo_etl.sandbox.api import Api
from klaviyo_etl.sandbox.config import SandboxConfig
from klaviyo_etl.sandbox.data import SandboxData
from klaviyo_etl.sandbox.wire import Request

STREAM_PATHS = {"events": "/api/events", "profiles": "/api/profiles"}


def _cli() -> list[str]:
    return [sys.executable, "-m", "klaviyo_etl"]


def ideal_seconds(requests: int, burst_per_s: float, steady_per_min: float) -> float:
    """The least time `requests` take as the 1 s and 60 s windows permit: at the burst rate
    while the minute's steady budget lasts, then one minute per further steady budget (or
    longer, if the burst rate cannot spend a budget within its minute)."""
    if requests <= 0:
        return 0.0
    budgets = math.ceil(requests / steady_per_min)
    last = requests - (budgets - 1) * steady_per_min
    per_budget = max(60.0, steady_per_min / burst_per_s)
    return (budgets - 1) * per_budget + last / burst_per_s


def ideal_for(stream: str, rows: int, scale: float = 1.0) -> dict:
    """Pages `rows` need at the largest page size and the time the limits (times `scale`) allow."""
    endpoint = contract().by_path(STREAM_PATHS[stream])
    page = endpoint.page_size_max or 1
    burst = endpoint.rate_limit.burst_per_s * scale
    steady = endpoint.rate_limit.steady_per_min * scale
    pages = max(1, math.ceil(rows / page))
    return {
        "pages": pages,
        "page_size": page,
        "burst_per_s": burst,
        "steady_per_min": steady,
        "ideal_s": round(ideal_seconds(pages, burst, steady), 3),
    }


class Sandbox:
    """The sandbox in its own process, so its CPU and memory are not counted as ours.

    On leaving, it is stopped with SIGTERM and `stats` holds the request counters it wrote at
    shutdown (`sandbox serve --stats-json`), among them `early`: requests that reached an
    endpoint before its last 429's Retry-After (issue 12 asks for none; {} if it wrote none).
    """

    def __init__(self, events: int, profiles: int, latency_ms: float, rate_limit_scale: float = 1.0):
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-sandbox-")
        self.stats_path = Path(self._tmp.name) / "stats.json"
        self.stats: dict = {}
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
                "--rate-limit-scale",
                str(rate_limit_scale),
                "--stats-json",
                str(self.stats_path),
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
            self.proc.kill()
            self.proc.wait()
            self._tmp.cleanup()
            raise RuntimeError("the sandbox did not start")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        # SIGTERM, not Ctrl-C: a bench started in the background (`make bench &`, nohup) runs
        # with SIGINT ignored, and the sandbox would never stop to write its counters.
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            self.stats = json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            self.stats = {}
        self._tmp.cleanup()

    @property
    def early(self) -> int | None:
        """Requests sent before a 429's Retry-After ran out (None: the sandbox reported nothing)."""
        return self.stats.get("early")


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_and_parent() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident bytes) for every process we can read."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = stat_fields(name)
        if fields is None:
            continue
        ppid = int(fields[1])
        try:
            with open(f"/proc/{name}/statm") as f:
                rss = int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
        out[int(name)] = (ppid, rss)
    return out


class TreeMemory:
    """Samples the resident memory of a process and all its descendants (every 20 ms)."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.pid = pid
        self.interval = interval
        self.peak_tree = 0
        self.peak_largest = 0
        self.most_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        procs = _rss_and_parent()
        tree = {self.pid}
        grew = True
        while grew:
            grew = False
            for pid, (ppid, _) in procs.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        sizes = [procs[p][1] for p in tree if p in procs]
        if sizes:
            self.peak_tree = max(self.peak_tree, sum(sizes))
            self.peak_largest = max(self.peak_largest, max(sizes))
            self.most_processes = max(self.most_processes, len(sizes))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    fields = stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(f"process {pid} is gone")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    wall_s: float
    cpu_s: float  # the sync process and every process it started
    peak_tree_mb: float
    peak_largest_mb: float
    processes: int
    summary: dict


def run_measured(args: list[str], env: dict[str, str]) -> Measured:
    """Run the CLI with `args`; its wall time, the CPU of its tree, and the tree's peak RSS."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*_cli(), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with TreeMemory(proc.pid) as memory:
        out, err = proc.communicate()
    wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    if proc.returncode not in (0, 130):
        raise RuntimeError(f"sync failed ({proc.returncode}): {err.strip()[-500:]}")
    return Measured(
        round(wall, 3),
        round(cpu, 3),
        round(memory.peak_tree / 2**20, 1),
        round(memory.peak_largest / 2**20, 1),
        memory.most_processes,
        json.loads(out) if out.strip().startswith("{") else {},
    )


def _sync_args(db: Path, url: str, streams: list[str], extra: list[str] = ()) -> list[str]:
    return ["--db", str(db), "--base-url", url, "--quiet", "sync", *streams, "--json", *extra]


def _stream_figures(summary: dict, stream: str, wall: float, ideal: dict) -> dict:
    s = next(x for x in summary["streams"] if x["stream"] == stream)
    span = (
        dt.datetime.fromisoformat(s["ended_at"]) - dt.datetime.fromisoformat(s["started_at"])
    ).total_seconds()
    return {
        "status": s["status"],
        "rows": s["rows"],
        "requests": s["requests"],
        "throttled_429": s["throttled"],
        "retries": s["retries"],
        "stream_s": round(span, 2),
        **ideal,
        "fraction_of_ceiling": round(ideal["ideal_s"] / wall, 3),
        "fraction_of_ceiling_stream_span": round(ideal["ideal_s"] / max(span, 1e-9), 3),
    }


def has_bytecode() -> bool:
    """Whether our modules have a bytecode cache next to them (an installed package does)."""
    source = Path(__file__).parents[1] / "cli" / "__init__.py"
    return Path(importlib.util.cache_from_source(str(source))).exists()


_PYCACHE: tempfile.TemporaryDirectory | None = None


def installed_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a measured sync, with bytecode as an installed package has it.

    Where our modules have no `__pycache__` (PYTHONDONTWRITEBYTECODE=1, as on the development
    machine, or a fresh editable checkout) every sync would compile each module it imports,
    ~0.5 s that no installed copy spends; so the syncs share one bytecode cache
    (PYTHONPYCACHEPREFIX, for this bench only), filled once by a small sync of its own (a
    list of imports missed what is imported lazily: sqlite-utils' plugin loader's
    importlib.metadata, rich, tomllib; the first measured sync compiled them)."""
    global _PYCACHE
    if has_bytecode():
        return env
    if _PYCACHE is None:
        _PYCACHE = tempfile.TemporaryDirectory(prefix="bench-pycache-")
        warm = with_pycache(env, _PYCACHE.name)
        with Sandbox(50, 20, latency_ms=0) as sandbox, tempfile.TemporaryDirectory() as tmp:
            warm["KLAVIYO_API_KEY"] = sandbox.api_key
            args = _sync_args(Path(tmp) / "warm.db", sandbox.url, ["events", "profiles"])
            subprocess.run([*_cli(), *args], env=warm, check=True, capture_output=True)
    return with_pycache(env, _PYCACHE.name)


def with_pycache(env: dict[str, str], prefix: str) -> dict[str, str]:
    """`env` with bytecode written to and read from `prefix`."""
    out = {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}
    out["PYTHONPYCACHEPREFIX"] = prefix
    return out


def _env(tmp: str, api_key: str, parse_workers: int | None) -> dict[str, str]:
    config = Path(tmp) / "config.toml"
    config.write_text("" if parse_workers is None else f"[sync]\nparse_workers = {parse_workers}\n")
    return installed_env({**os.environ, "KLAVIYO_API_KEY": api_key, "KLAVIYO_ETL_CONFIG": str(config)})


def bench_first_load(
    stream: str, rows: int, *, scale: float, latency_ms: float, parse_workers: int | None = None
) -> dict:
    """A first load of one stream (`rows` generated) against limits times `scale`;
    `parse_workers` None: the default setting."""
    events, profiles = (rows, 100) if stream == "events" else (1000, rows)
    with Sandbox(events, profiles, latency_ms, scale) as sandbox, tempfile.TemporaryDirectory() as tmp:
        env = _env(tmp, sandbox.api_key, parse_workers)
        server_before = _process_cpu(sandbox.proc.pid)
        m = run_measured(_sync_args(Path(tmp) / "bench.db", sandbox.url, [stream]), env)
        server_cpu = _process_cpu(sandbox.proc.pid) - server_before
    figures = _stream_figures(m.summary, stream, m.wall_s, ideal_for(stream, rows, scale))
    figures["early_requests"] = sandbox.early
    return {
        "stream": stream,
        "generated": rows,
        "parse_workers": "default" if parse_workers is None else parse_workers,
        "rate_limit_scale": scale,
        "latency_ms": latency_ms,
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "sandbox_cpu_s": round(server_cpu, 2),
        "cpu_us_per_row": round(1e6 * m.cpu_s / max(1, figures["rows"]), 1),
        "peak_rss_mb_tree": m.peak_tree_mb,
        "peak_rss_mb_largest": m.peak_largest_mb,
        "processes": m.processes,
        **figures,
    }


def bench_incremental(events: int, new: int, *, latency_ms: float, scale: float = 0.1) -> dict:
    """A first load of `events`, then the newest `new` events deleted from our copy (so they
    are new to the next run) and a re-run that reads them and the lookback window again."""
    with Sandbox(events, 100, latency_ms, scale) as sandbox, tempfile.TemporaryDirectory() as tmp:
        env = _env(tmp, sandbox.api_key, None)
        db = Path(tmp) / "bench.db"
        run_measured(_sync_args(db, sandbox.url, ["events"]), env)
        with sqlite3.connect(db) as conn:
            conn.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY datetime DESC LIMIT ?)", [new]
            )
        m = run_measured(_sync_args(db, sandbox.url, ["events"]), env)
    s = next(x for x in m.summary["streams"] if x["stream"] == "events")
    return {
        "events_in_db": events,
        "new_events": new,
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "requests": s["requests"],
        "rows_read": s["rows"],
        "peak_rss_mb_tree": m.peak_tree_mb,
        "processes": m.processes,
        "early_requests": sandbox.early,  # over both runs
    }


def bench_floor(events: int = 20_000) -> dict:
    """The floor per event: orjson parse of sandbox pages plus one prepared `executemany` of
    the same rows into the same schema (a fresh events table), timed as CPU of this process."""

    data = SandboxData.generate(SandboxConfig(events=events, profiles=1000))
    api = Api(data)
    bodies = []
    path, query = "/api/events", {"page[size]": ["1000"], "sort": ["datetime"]}
    while True:
        _, payload = api.handle(Request("GET", path, query, b"", "http://sandbox"))
        bodies.append(orjson.dumps(payload))
        nxt = (payload.get("links") or {}).get("next")
        if not nxt:
            break
        split = urlsplit(nxt)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)
    with tempfile.TemporaryDirectory() as tmp:
        open_database(Path(tmp) / "floor.db").close()
        conn = sqlite3.connect(Path(tmp) / "floor.db", isolation_level=None)
        # Like a first load: the secondary indexes are built once at the end.
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
            " AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX [{name}]")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        sql = (
            "INSERT INTO events (id, metric_id, profile_id, datetime, timestamp, uuid, value, "
            "message_id, flow_id, attributed_message_id, attributed_flow_id, form_id, attributes, "
            "synced_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
            "attributes = excluded.attributes"
        )
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        rows_total = 0
        started = time.process_time()
        for body in bodies:
            rows = []
            for r in orjson.loads(body)["data"]:
                a, rel = r["attributes"], r["relationships"]
                p = a.get("event_properties") or {}
                rows.append(
                    (
                        r["id"],
                        rel["metric"]["data"]["id"],
                        (rel.get("profile") or {}).get("data", {}).get("id"),
                        a["datetime"],
                        a["timestamp"],
                        a.get("uuid"),
                        p.get(kc.PROP_VALUE),
                        p.get(kc.PROP_MESSAGE),
                        p.get(kc.PROP_FLOW),
                        p.get(kc.PROP_ATTRIBUTED_MESSAGE),
                        p.get(kc.PROP_ATTRIBUTED_FLOW),
                        p.get(kc.PROP_FORM_ID),
                        orjson.dumps(a).decode(),
                        now,
                    )
                )
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
            rows_total += len(rows)
        for _, index_sql in indexes:
            conn.execute(index_sql)
        cpu = time.process_time() - started
        conn.close()
    return {"events": rows_total, "cpu_us_per_event": round(1e6 * cpu / max(1, rows_total), 2)}


def start_up(report_db: Path | None) -> dict:
    """Wall and CPU time of `klaviyo-etl --help`, and of `report campaigns` on `report_db`
    (medians of 3), beside a bare `python -c pass`: on a shared machine the CPU time is the
    steadier figure.

    Without a bytecode cache (PYTHONDONTWRITEBYTECODE=1 and no __pycache__), every start
    compiles each of our modules it imports, which an installed package never does; then the
    same commands are also timed as installed (`cached`: a throwaway PYTHONPYCACHEPREFIX,
    warmed once), and the summary prints both."""

    def timed(args: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
        if env is not None:
            subprocess.run(args, capture_output=True, check=True, env=env)  # writes the cache
        walls, cpus = [], []
        for _ in range(3):
            cpu_before = _children_cpu()
            started = time.perf_counter()
            subprocess.run(args, capture_output=True, check=True, env=env)
            walls.append(time.perf_counter() - started)
            cpus.append(_children_cpu() - cpu_before)
        return {"wall_s": round(sorted(walls)[1], 3), "cpu_s": round(sorted(cpus)[1], 3)}

    commands = {"help": [*_cli(), "--help"]}
    if report_db is not None and report_db.exists():
        commands["report_campaigns"] = [*_cli(), "--db", str(report_db), "report", "campaigns"]
    out: dict = {"python_bare": timed([sys.executable, "-c", "pass"])}
    out.update({name: timed(args) for name, args in commands.items()})
    out["bytecode_cached"] = has_bytecode()
    if not out["bytecode_cached"]:
        with tempfile.TemporaryDirectory(prefix="bench-pycache-") as prefix:
            env = with_pycache(dict(os.environ), prefix)
            out["cached"] = {name: timed(args, env) for name, args in commands.items()}
    if "report_campaigns" in commands:
        with sqlite3.connect(report_db) as conn:
            out["report_db_events"] = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return out
