"""The sync benchmark's ideal time under the rate limits, its process-tree memory sampler, and
the bytecode its measured syncs run with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from klaviyo_etl.bench import sync as bench_sync
from klaviyo_etl.bench.sync import Sandbox, TreeMemory, ideal_for, ideal_seconds
from tests.helpers.sandbox import REVISION


def test_within_the_steady_budget_the_ideal_is_the_burst_rate():
    assert ideal_seconds(200, 35, 350) == pytest.approx(200 / 35)
    assert ideal_seconds(350, 35, 350) == pytest.approx(10.0)


def test_past_the_steady_budget_each_further_budget_waits_its_minute():
    # 350 at 35/s in the first minute, 350 more from the second, the last 300 from the third
    assert ideal_seconds(1000, 35, 350) == pytest.approx(2 * 60 + 300 / 35)


def test_a_burst_too_slow_to_spend_a_budget_in_a_minute_sets_the_pace():
    # 1/s cannot spend 100 a minute: each budget takes 100 s
    assert ideal_seconds(150, 1, 100) == pytest.approx(100 + 50)


def test_no_requests_take_no_time():
    assert ideal_seconds(0, 35, 350) == 0.0


def test_the_issues_events_load_is_200_pages_at_a_tenth_of_the_xl_tier():
    ideal = ideal_for("events", 200_000, scale=0.1)
    assert (ideal["pages"], ideal["page_size"], ideal["burst_per_s"], ideal["steady_per_min"]) == (
        200,
        1000,
        35.0,
        350.0,
    )
    assert ideal["ideal_s"] == pytest.approx(200 / 35, abs=1e-3)


def test_profiles_are_read_100_a_page_at_the_l_tier():
    ideal = ideal_for("profiles", 20_000)
    assert (ideal["pages"], ideal["burst_per_s"]) == (200, 75.0)


def test_tree_memory_counts_the_children_of_the_process():
    # a shell whose child holds 60 MB: the tree's peak includes the child's
    code = "import time; b = bytearray(60 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"
    proc = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "{code}"; true'])
    with TreeMemory(proc.pid) as memory:
        proc.wait()
    assert memory.most_processes >= 2
    assert memory.peak_tree >= 60 * 2**20 > memory.peak_largest - 60 * 2**20 >= 0


def test_the_bench_sandbox_hands_back_its_early_requests_when_it_stops():
    # at a thousandth of the limits each window allows one request: the second is a 429,
    # and the third, sent at once, arrives before that 429's Retry-After ran out
    with Sandbox(events=50, profiles=20, latency_ms=0, rate_limit_scale=0.001) as sandbox:
        headers = {"Authorization": f"Klaviyo-API-Key {sandbox.api_key}", "revision": REVISION}
        with httpx.Client(base_url=sandbox.url, headers=headers) as client:
            statuses = [client.get("/api/events").status_code for _ in range(3)]
    assert statuses == [200, 429, 429]
    assert sandbox.stats["requests"] == 3 and sandbox.stats["throttled"] == 2
    assert sandbox.early == 1


def test_a_polite_client_leaves_the_bench_sandbox_no_early_requests():
    with Sandbox(events=50, profiles=20, latency_ms=0) as sandbox:
        headers = {"Authorization": f"Klaviyo-API-Key {sandbox.api_key}", "revision": REVISION}
        assert httpx.get(f"{sandbox.url}/api/events", headers=headers).status_code == 200
    assert (sandbox.stats["requests"], sandbox.early) == (1, 0)


def test_without_bytecode_the_measured_syncs_share_one_compiled_cache(monkeypatch):
    # Where our modules have no __pycache__ (PYTHONDONTWRITEBYTECODE=1), each sync would
    # compile every module it imports, which an installed copy never does.
    monkeypatch.setattr(bench_sync, "has_bytecode", lambda: False)
    monkeypatch.setattr(bench_sync, "_PYCACHE", None)
    env = bench_sync.installed_env({"PYTHONDONTWRITEBYTECODE": "1", "PATH": os.environ.get("PATH", "")})
    assert "PYTHONDONTWRITEBYTECODE" not in env
    prefix = Path(env["PYTHONPYCACHEPREFIX"])
    assert list(prefix.rglob("engine.cpython-*.pyc"))  # compiled before the first sync
    assert bench_sync.installed_env({})["PYTHONPYCACHEPREFIX"] == str(prefix)  # and only once


def test_after_the_warm_up_a_measured_sync_compiles_nothing(monkeypatch, tmp_path):
    # The cache holds what a sync imports, lazy imports included (sqlite-utils' plugin loader
    # imports importlib.metadata): a sync that compiled a module would time its compilation.
    monkeypatch.setattr(bench_sync, "has_bytecode", lambda: False)
    monkeypatch.setattr(bench_sync, "_PYCACHE", None)
    config = tmp_path / "config.toml"
    config.write_text("")
    base = {
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": os.environ.get("PATH", ""),
        "KLAVIYO_ETL_CONFIG": str(config),
    }
    env = bench_sync.installed_env(base)
    prefix = Path(env["PYTHONPYCACHEPREFIX"])
    before = set(prefix.rglob("*.pyc"))
    with Sandbox(events=30, profiles=10, latency_ms=0) as sandbox:
        args = bench_sync._sync_args(tmp_path / "measured.db", sandbox.url, ["events"])
        subprocess.run(
            [*bench_sync._cli(), *args],
            env={**env, "KLAVIYO_API_KEY": sandbox.api_key},
            check=True,
            capture_output=True,
        )
    compiled = sorted(str(p.relative_to(prefix)) for p in set(prefix.rglob("*.pyc")) - before)
    assert compiled == []
