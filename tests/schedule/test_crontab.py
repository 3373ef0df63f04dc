"""The crontab line: one job waking often enough for every interval, calling `sync --due`."""

from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from klaviyo_etl.config_file import load_config
from klaviyo_etl.db import open_database
from klaviyo_etl.schedule import crontab_text, due_streams
from klaviyo_etl.schedule.crontab import cron_period, exact_expression, klaviyo_command
from klaviyo_etl.sync.engine import STREAM_NAMES
from tests.helpers.sandbox import scopes_missing
from tests.helpers.schedule import write_config, write_run

NOW = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def _jobs(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _only(**intervals: str) -> str:
    return "[schedule]\n" + "".join(f'{s} = "{intervals.get(s, "off")}"\n' for s in STREAM_NAMES)


@pytest.mark.parametrize(
    "minutes, expression",
    [
        (1, "* * * * *"),
        (5, "*/5 * * * *"),
        (30, "*/30 * * * *"),
        (60, "0 * * * *"),
        (180, "0 */3 * * *"),
        (720, "0 */12 * * *"),
        (1440, "0 0 * * *"),
        (10080, "0 0 * * 0"),
        (7, None),
        (45, None),
        (90, None),
        (300, None),
        (2880, None),
    ],
)
def test_exact_expressions(minutes, expression):
    assert exact_expression(minutes) == expression


def test_defaults_give_one_hourly_line(tmp_path):
    config = load_config(tmp_path / "config.toml")
    text = crontab_text(
        config,
        db_path=tmp_path / "k.db",
        log_path=tmp_path / "log" / "sync.log",
        command=["/opt/bin/klaviyo-etl"],
        now=NOW,
    )
    [job] = _jobs(text)
    fields = job.split(" ", 5)
    assert " ".join(fields[:5]) == "0 * * * *"
    argv = shlex.split(fields[5])
    assert argv[0] == f"KLAVIYO_ETL_CONFIG={tmp_path / 'config.toml'}"
    assert argv[1:] == [
        "/opt/bin/klaviyo-etl",
        "--db",
        str(tmp_path / "k.db"),
        "--quiet",
        "sync",
        "--due",
        ">>",
        str(tmp_path / "log" / "sync.log"),
        "2>&1",
    ]
    assert "crontab -e" in text and "KLAVIYO_API_KEY=pk_..." in text
    assert "#       1h: events\n" in text
    assert "#       3h: campaigns, campaign_messages\n" in text
    assert "cannot fire exactly" not in text


@pytest.mark.parametrize(
    "intervals, expression, why",
    [
        ({"events": "30m", "profiles": "1d"}, "*/30 * * * *", "exact"),
        ({"events": "1h", "profiles": "1d"}, "0 * * * *", "exact"),
        ({"events": "1h30m", "campaigns": "3h"}, "*/30 * * * *", "inexact"),
        ({"events": "5h"}, "0 * * * *", "inexact"),
        ({"events": "7m"}, "* * * * *", "inexact"),
        # Rarer than hourly: hourly (daylight saving, retries; see the two tests below).
        ({"events": "2h", "flows": "4h"}, "0 * * * *", "capped"),
        ({"metrics": "1d", "profiles": "2d"}, "0 * * * *", "capped"),
        ({"tags": "1w"}, "0 * * * *", "capped"),
        ({"metrics": "2d"}, "0 * * * *", "capped"),
    ],
)
def test_the_line_wakes_at_the_gcd_or_the_nearest_exact_divisor_at_least_hourly(
    tmp_path, intervals, expression, why
):
    config = write_config(tmp_path / "c.toml", _only(**intervals))
    period = cron_period(config)
    assert (period.expression, period.exact, period.capped) == (expression, why == "exact", why == "capped")
    text = crontab_text(config, db_path=Path("/d/k.db"), log_path=Path("/l/s.log"), command=["kl"], now=NOW)
    [job] = _jobs(text)
    assert job.startswith(expression + " ")
    assert ("cannot fire exactly every" in text) is (why == "inexact")
    assert ("but the line wakes\n# hourly: a failed stream is retried" in text) is (why == "capped")


def test_every_stream_off_prints_no_job(tmp_path):
    config = write_config(tmp_path / "c.toml", _only())
    text = crontab_text(config, db_path=Path("/d/k.db"), log_path=Path("/l/s.log"), command=["kl"], now=NOW)
    assert _jobs(text) == []
    assert "nothing to schedule" in text


def test_percent_signs_and_spaces_are_escaped_for_cron(tmp_path):
    config = load_config(tmp_path / "c.toml")
    text = crontab_text(
        config,
        db_path=Path("/my data/100%.db"),
        log_path=Path("/l/s.log"),
        command=["kl"],
        extra_options=["--base-url", "http://127.0.0.1:8080"],
        now=NOW,
    )
    [job] = _jobs(text)
    assert "'/my data/100\\%.db'" in job
    assert "--base-url http://127.0.0.1:8080 --quiet sync --due" in job


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("c.toml"))
    [job] = _jobs(crontab_text(config, db_path=Path("k.db"), log_path=Path("s.log"), command=["kl"], now=NOW))
    assert f"--db {tmp_path / 'k.db'}" in job
    assert f">> {tmp_path / 's.log'} 2>&1" in job
    assert f"KLAVIYO_ETL_CONFIG={tmp_path / 'c.toml'}" in job


def test_the_command_is_an_absolute_path_that_exists():
    command = klaviyo_command()
    assert Path(command[0]).is_absolute() and Path(command[0]).exists()


def _fires(expression: str, start: dt.datetime, end: dt.datetime, zone: str) -> list[dt.datetime]:
    """When cron, on a machine whose time zone is `zone`, runs a line with `expression` (the
    forms `crontab_text` writes: `*`, `*/N` or a number in each field)."""
    minute, hour, _, _, weekday = expression.split()

    def match(field: str, value: int) -> bool:
        if field.startswith("*/"):
            return value % int(field[2:]) == 0
        return field == "*" or value == int(field)

    fires, at = [], start
    while at < end:
        local = at.astimezone(ZoneInfo(zone))
        if match(minute, local.minute) and match(hour, local.hour) and match(weekday, local.isoweekday() % 7):
            fires.append(at)
        at += dt.timedelta(minutes=1)
    return fires


def _run_from_cron(db_path: Path, config, fires: list[dt.datetime], fail_first: bool = False) -> list:
    """`sync --due` at each of cron's `fires` (3 s late, as cron is): (start, status) of each run."""
    runs = []
    for fired in fires:
        now = fired + dt.timedelta(seconds=3)
        db = open_database(db_path)
        try:
            due = due_streams(db, config, now)
        finally:
            db.close()
        if "metrics" in due:
            status = "failed" if fail_first and not runs else "ok"
            write_run(db_path, "metrics", now, status, ended_at=now + dt.timedelta(minutes=1), error="boom")
            runs.append((now, status))
    return runs


def test_a_daily_stream_from_cron_skips_no_day_when_daylight_saving_shortens_one(tmp_path):
    # Berlin springs forward on 2026-03-29: from that midnight to the next is 23 hours. A line
    # firing at local midnight found the stream an hour short of due and skipped it: 47 hours
    # between two syncs.
    config = write_config(tmp_path / "c.toml", _only(metrics="1d"))
    db_path = tmp_path / "k.db"
    expression = cron_period(config).expression
    start, end = dt.datetime(2026, 3, 26, 23, tzinfo=dt.UTC), dt.datetime(2026, 4, 2, tzinfo=dt.UTC)
    runs = _run_from_cron(db_path, config, _fires(expression, start, end, "Europe/Berlin"))
    gaps = [later - earlier for (earlier, _), (later, _) in zip(runs, runs[1:], strict=False)]
    print(expression, "gaps between syncs:", [str(g) for g in gaps])
    assert len(runs) >= 6 and max(gaps) <= dt.timedelta(hours=25)


def test_a_failed_daily_stream_is_retried_from_cron_within_the_hour(tmp_path):
    # After a failure the stream is due again after a short backoff (5 minutes); a line firing
    # once a day retried it only the next day.
    config = write_config(tmp_path / "c.toml", _only(metrics="1d"))
    db_path = tmp_path / "k.db"
    expression = cron_period(config).expression
    start = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    fires = _fires(expression, start, start + dt.timedelta(days=2), "UTC")
    (failed, status), (retried, _) = _run_from_cron(db_path, config, fires, fail_first=True)[:2]
    assert status == "failed" and retried - failed <= dt.timedelta(hours=1)


def test_every_line_the_cron_job_writes_to_its_log_is_dated(sandbox_factory, tmp_path):
    # The crontab's own job line, run by a shell as cron runs it (output appended to the log):
    # a stream skipped, then a run refused by a wrong key. Each line says when it was written.
    config = write_config(tmp_path / "c.toml", _only(events="1h", accounts="1h"))
    log = tmp_path / "sync.log"
    text = crontab_text(
        config,
        db_path=tmp_path / "k.db",
        log_path=log,
        command=[sys.executable, "-m", "klaviyo_etl"],
        extra_options=["--base-url", "URL"],
    )
    job = text.strip().splitlines()[-1].split(" ", 5)[5]
    with sandbox_factory("tiny") as sb:
        job = job.replace("URL", sb.server.url)
        with scopes_missing(sb.config, "accounts:read"):
            run = subprocess.run(["sh", "-c", job], env={**os.environ, "KLAVIYO_API_KEY": sb.config.api_key})
        assert run.returncode == 0
        bad_key = {**os.environ, "KLAVIYO_API_KEY": "pk_not_the_right_key_9876"}
        write_config(tmp_path / "c.toml", _only(tags="1h"))  # never synced: due
        time.sleep(1)  # two runs, two seconds
        assert subprocess.run(["sh", "-c", job], env=bad_key).returncode == 2
    lines = log.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "accounts: skipped because the API key lacks accounts:read: add it to show the account's"
        " preferred currency and timezone, or turn the stream off in the config file's schedule"
        ' (accounts = "off")',
        "Error: 401: the API key pk_…9876 was rejected — check KLAVIYO_API_KEY",
    ]
    stamps = [dt.datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S") for line in lines]
    assert stamps[1] > stamps[0]
