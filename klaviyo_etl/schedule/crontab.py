"""`klaviyo-etl schedule crontab`: the crontab line that runs the schedule from cron.

One line is enough. It wakes at the greatest common divisor of the stream intervals and calls
`sync --due`, which syncs exactly the streams whose interval has elapsed (per `sync_state`),
so a stream on "3h" runs on every third wake of an "1h" line. One line per interval would start
several processes at the same minute, and all but one would be refused by the database lock.

cron can only say "every N" exactly when N divides the next unit up (every 15 minutes, every 6
hours, daily, weekly). For any other period the line wakes at the largest exact period that
divides it, and says so in a comment; `sync --due` keeps each stream to its own interval.

The line wakes at least hourly, even when every stream is daily: cron fires in the machine's
local time, and a line at local midnight met a day that daylight saving shortens to 23 hours
with the stream an hour short of due, and skipped it (47 hours between two syncs). A failed
stream, due again after a backoff of minutes, also waited for the next day's firing. A wake
with nothing due opens the database, reads `sync_state` and exits, silently under `--quiet`.
"""

from __future__ import annotations

import datetime as dt
import math
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from klaviyo_etl.config_file import Config, Interval
from klaviyo_etl.settings import CONFIG_ENV

_DAY = 24 * 60
_WEEK = 7 * _DAY
MAX_WAKE = 60  # minutes: the longest the line sleeps (see the module)


def exact_expression(minutes: int) -> str | None:
    """The cron expression that fires exactly every `minutes`, or None if cron cannot."""
    if minutes <= 0:
        return None
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60 == 0 and _DAY % minutes == 0:
        hours = minutes // 60
        if hours == 1:
            return "0 * * * *"
        return "0 0 * * *" if hours == 24 else f"0 */{hours} * * *"
    if minutes == _WEEK:
        return "0 0 * * 0"
    return None


_EXACT = sorted(
    (m for m in list(range(1, 61)) + [h * 60 for h in range(1, 25)] + [_WEEK] if exact_expression(m)),
    reverse=True,
)


@dataclass(frozen=True)
class CronPeriod:
    wanted: Interval  # what the schedule needs: the gcd of the intervals
    used: Interval  # what the line does: the largest exact divisor of `wanted`, at most hourly
    expression: str
    capped: bool = False  # cron could fire every `wanted`, or rarer than hourly: hourly instead

    @property
    def exact(self) -> bool:
        return self.wanted == self.used


def cron_period(config: Config) -> CronPeriod | None:
    """How often the cron line must wake for this schedule; None when every stream is off."""
    minutes = [i.minutes for i in config.schedule.values() if i.minutes]
    if not minutes:
        return None
    wanted = math.gcd(*minutes)
    divisors = [m for m in _EXACT if wanted % m == 0]  # 1 divides everything
    used = next(m for m in divisors if m <= MAX_WAKE)
    capped = divisors[0] > MAX_WAKE
    return CronPeriod(Interval(wanted * 60), Interval(used * 60), exact_expression(used), capped)


def klaviyo_command() -> list[str]:
    """An absolute command for this klaviyo-etl: cron runs with a bare PATH and no venv."""
    beside_python = Path(sys.executable).parent / "klaviyo-etl"
    if beside_python.exists():
        return [str(beside_python.absolute())]
    found = shutil.which("klaviyo-etl")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "klaviyo_etl"]


def default_log_path() -> Path:
    return Path(platformdirs.user_log_dir("klaviyo-etl")) / "sync.log"


def _cron_quote(arg: str) -> str:
    # cron turns an unescaped % into a newline, even inside quotes.
    return shlex.quote(arg).replace("%", "\\%")


def crontab_text(
    config: Config,
    *,
    db_path: Path,
    log_path: Path,
    command: list[str] | None = None,
    extra_options: Sequence[str] = (),
    now: dt.datetime | None = None,
    sync_options: Sequence[str] = (),
    key_variables: Sequence[str] = ("KLAVIYO_API_KEY",),
) -> str:
    """Paste-able crontab lines (header comments and one job line) for `config`'s schedule.

    `sync_options` follow `sync --due` (`--all-accounts`); `key_variables` are the variables
    the header asks to set (each account's `key_env`).
    """
    command = command or klaviyo_command()
    now = now or dt.datetime.now(dt.UTC)
    groups: dict[Interval, list[str]] = {}
    for stream, interval in config.schedule.items():
        groups.setdefault(interval, []).append(stream)
    by_length = sorted(groups.items(), key=lambda item: item[0].seconds or math.inf)
    lines = [
        f"# klaviyo-etl scheduled sync, from `klaviyo-etl schedule crontab` on {now:%Y-%m-%d}.",
        "# Install: run `crontab -e` and paste these lines. cron does not read your shell",
        "# profile, so give it your key on a line of its own above them:"
        if len(key_variables) == 1
        else "# profile, so give it your keys, each on a line of its own above them:",
        *(f"#   {variable}=pk_..." for variable in key_variables),
        f"# Streams and intervals (from {config.path}):",
    ]
    lines += [f"#   {str(interval):>6}: {', '.join(streams)}" for interval, streams in by_length]
    period = cron_period(config)
    if period is None:
        lines.append("# Every stream is off, so there is nothing to schedule.")
        return "\n".join(lines) + "\n"
    if period.capped:
        lines += [
            f"# No stream needs a wake more often than every {period.wanted}, but the line wakes",
            "# hourly: a failed stream is retried within the hour, and a day that daylight",
            "# saving shortens to 23 hours skips no sync. A wake with nothing due does nothing.",
        ]
    elif not period.exact:
        lines.append(f"# cron cannot fire exactly every {period.wanted}, so the line below wakes")
        lines.append(f"# every {period.used} instead.")
    lines += [
        f"# The line wakes every {period.used} (machine's local time) and `sync --due` syncs",
        "# only the streams whose interval has elapsed. klaviyo-etl's database lock refuses",
        "# overlapping runs (a refused run logs one line and exits 2), so no flock is needed.",
    ]
    argv = [
        *command,
        "--db",
        str(Path(db_path).expanduser().absolute()),
        *extra_options,
        "--quiet",
        "sync",
        "--due",
        *sync_options,
    ]
    job = " ".join(_cron_quote(a) for a in argv)
    env = f"{CONFIG_ENV}={_cron_quote(str(config.path.absolute()))}"
    log = _cron_quote(str(Path(log_path).expanduser().absolute()))
    lines.append(f"{period.expression} {env} {job} >> {log} 2>&1")
    return "\n".join(lines) + "\n"
