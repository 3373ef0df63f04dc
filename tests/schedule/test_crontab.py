"""The crontab line: one job waking often enough for every interval, calling `sync --due`."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path

import pytest

from klaviyo_etl.config_file import load_config
from klaviyo_etl.schedule import crontab_text
from klaviyo_etl.schedule.crontab import cron_period, exact_expression, klaviyo_command
from klaviyo_etl.sync.engine import STREAM_NAMES
from tests.helpers.schedule import write_config

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
    "intervals, expression, exact",
    [
        ({"events": "30m", "profiles": "1d"}, "*/30 * * * *", True),
        ({"events": "2h", "flows": "4h"}, "0 */2 * * *", True),
        ({"metrics": "1d", "profiles": "2d"}, "0 0 * * *", True),
        ({"tags": "1w"}, "0 0 * * 0", True),
        ({"events": "1h30m", "campaigns": "3h"}, "*/30 * * * *", False),
        ({"events": "5h"}, "0 * * * *", False),
        ({"events": "7m"}, "* * * * *", False),
        ({"metrics": "2d"}, "0 0 * * *", False),
    ],
)
def test_the_line_wakes_at_the_gcd_or_the_nearest_exact_divisor(tmp_path, intervals, expression, exact):
    config = write_config(tmp_path / "c.toml", _only(**intervals))
    period = cron_period(config)
    assert (period.expression, period.exact) == (expression, exact)
    text = crontab_text(config, db_path=Path("/d/k.db"), log_path=Path("/l/s.log"), command=["kl"], now=NOW)
    [job] = _jobs(text)
    assert job.startswith(expression + " ")
    assert ("cannot fire exactly every" in text) is not exact


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
