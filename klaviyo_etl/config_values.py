"""The effective configuration (`Config`) and its defaults, apart from reading the file.

`klaviyo_etl.config_file` reads and validates the file (with pydantic) into a `Config`; this
module holds the values themselves, so a command that finds no file, or one that sets
nothing, has every default without loading pydantic (issue 12: ~0.05 s of a sync's start).
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

from klaviyo_etl import conventions as kc
from klaviyo_etl.settings import DEFAULT_REQUEST_TIMEOUT, Settings
from klaviyo_etl.sync.names import STREAM_NAMES

# The seed's cadence: fast-moving data often, slow-moving data daily.
DEFAULT_SCHEDULE: dict[str, str] = {
    "events": "1h",
    "campaigns": "3h",
    "campaign_messages": "3h",
    "flows": "6h",
    "flow_actions": "6h",
    "flow_messages": "6h",
    "lists": "6h",
    "segments": "6h",
    "list_members": "6h",
    "segment_members": "6h",
    "metrics": "1d",
    "profiles": "1d",
    "forms": "1d",
    "templates": "1d",
    "tags": "1d",
    "reports": "1d",
    "accounts": "1d",
}
# A stream the engine gains later still gets synced, once a day, until the user says otherwise.
FALLBACK_INTERVAL = "1d"
DEFAULT_LOOKBACK_DAYS = 3.0
DEFAULT_RECONCILE_DAYS = 7.0
DEFAULT_PARSE_WORKERS = 0  # issue 12: a parse thread keeps up at a third of the memory

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60}
_INTERVAL_RE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_LONGEST_DAYS = 9999
_INTERVAL_HELP = 'use a number and unit like "30m", "1h", "3h", "1d", "1h30m", or "off"'


@dataclass(frozen=True)
class Interval:
    """How often a stream runs; ``seconds is None`` means the stream is off."""

    seconds: int | None

    @classmethod
    def parse(cls, text: str) -> Interval:
        """Parse "1h", "30m", "1d", "1h30m", "1w" or "off"; raise ValueError with a hint."""
        cleaned = text.strip().lower().replace(" ", "")
        if cleaned == "off":
            return cls(None)
        match = _INTERVAL_RE.match(cleaned)
        if not cleaned or not match:
            raise ValueError(f"{text!r} is not an interval; {_INTERVAL_HELP}")
        seconds = sum(
            int(count) * size for count, size in zip(match.groups(), _UNITS.values(), strict=True) if count
        )
        # cron cannot fire more often than once a minute, and neither should we.
        if seconds < 60:
            raise ValueError(f"{text!r} is too short; the shortest interval is 1m")
        if seconds > _LONGEST_DAYS * 86400:  # its due time left the calendar: "unexpected OverflowError"
            raise ValueError(f'{text!r} is too long; the longest interval is {_LONGEST_DAYS}d (or "off")')
        return cls(seconds)

    @property
    def off(self) -> bool:
        return self.seconds is None

    @property
    def minutes(self) -> int | None:
        return None if self.seconds is None else self.seconds // 60

    @property
    def timedelta(self) -> dt.timedelta | None:
        return None if self.seconds is None else dt.timedelta(seconds=self.seconds)

    def __str__(self) -> str:
        if self.seconds is None:
            return "off"
        if self.seconds % _UNITS["w"] == 0:
            return f"{self.seconds // _UNITS['w']}w"
        rest, parts = self.seconds, []
        for unit in ("d", "h", "m"):
            count, rest = divmod(rest, _UNITS[unit])
            if count:
                parts.append(f"{count}{unit}")
        return "".join(parts)


@dataclass(frozen=True)
class Account:
    """One `[accounts.NAME]` of the file, validated: where its key is and what it overrides.

    `db` None: the account's file sits beside the default database (`account_db_path`).
    """

    name: str
    key_env: str
    db: Path | None = None
    base_url: str | None = None
    lookback_days: float | None = None
    reconcile_days: float | None = None
    conversion_metric: str | None = None
    exclude_bot_clicks: tuple[str, ...] | None = None
    schedule: tuple[tuple[str, Interval], ...] = ()


def account_db_path(default_db: Path, name: str) -> Path:
    """An account's database when the file names none: `klaviyo-NAME.db` beside the default."""
    return default_db.with_name(f"{default_db.stem}-{name}{default_db.suffix or '.db'}")


@dataclass(frozen=True)
class Setting:
    """One effective setting, for `klaviyo-etl config`: where its value came from."""

    key: str
    value: str
    source: str  # "default" | "file"


@dataclass(frozen=True)
class Config:
    """The effective configuration: the file's settings over the defaults."""

    path: Path
    exists: bool
    schedule: dict[str, Interval]
    lookback_days: float
    reconcile_days: float
    db: Path | None
    base_url: str | None
    from_file: frozenset[str]  # dotted keys the file sets, e.g. "schedule.events"
    conversion_metric: str | None = None  # [reports]: a metric name or id (None: the default rule)
    # [reports]: the channels whose bots' clicks the reports leave out of clicks (LIVE_BEHAVIOUR.md §12)
    exclude_bot_clicks: tuple[str, ...] = kc.BOT_CLICK_CHANNELS
    parse_workers: int = DEFAULT_PARSE_WORKERS  # [sync]: processes parsing bulk loads (0: a thread)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT  # [sync]: seconds a request waits for its answer
    accounts: dict[str, Account] = dc_field(default_factory=dict)  # [accounts.NAME], by name

    def for_account(self, name: str) -> Config:
        """This config as account `name` sees it: its own windows, metric and schedule first."""
        account = self.accounts[name]
        changes: dict[str, Any] = {"schedule": {**self.schedule, **dict(account.schedule)}}
        for key in ("lookback_days", "reconcile_days", "conversion_metric", "exclude_bot_clicks"):
            value = getattr(account, key)
            if value is not None:
                changes[key] = value
        return replace(self, **changes)

    def interval(self, stream: str) -> Interval:
        return self.schedule.get(stream, Interval.parse(FALLBACK_INTERVAL))

    def settings(self) -> list[Setting]:
        def source(key: str) -> str:
            return "file" if key in self.from_file else "default"

        rows = [
            Setting(f"schedule.{stream}", str(interval), source(f"schedule.{stream}"))
            for stream, interval in self.schedule.items()
        ]
        rows.append(Setting("sync.lookback_days", _num(self.lookback_days), source("sync.lookback_days")))
        rows.append(Setting("sync.reconcile_days", _num(self.reconcile_days), source("sync.reconcile_days")))
        rows.append(Setting("sync.parse_workers", str(self.parse_workers), source("sync.parse_workers")))
        rows.append(
            Setting("sync.request_timeout", _num(self.request_timeout), source("sync.request_timeout"))
        )
        rows.append(Setting("defaults.db", str(self.db) if self.db else "(not set)", source("defaults.db")))
        rows.append(Setting("defaults.base_url", self.base_url or "(not set)", source("defaults.base_url")))
        rows.append(
            Setting(
                "reports.conversion_metric",
                self.conversion_metric or f"(not set: the {kc.PLACED_ORDER!r} metric with most events)",
                source("reports.conversion_metric"),
            )
        )
        rows.append(
            Setting(
                "reports.exclude_bot_clicks",
                bot_click_channels(self.exclude_bot_clicks),
                source("reports.exclude_bot_clicks"),
            )
        )
        for account in self.accounts.values():
            prefix = f"accounts.{account.name}"
            rows.append(Setting(f"{prefix}.key_env", account.key_env, "file"))
            rows.append(
                Setting(f"{prefix}.db", str(account.db) if account.db else "(beside the default db)", "file")
            )
            for key in (
                "base_url",
                "lookback_days",
                "reconcile_days",
                "conversion_metric",
                "exclude_bot_clicks",
            ):
                value = getattr(account, key)
                if value is not None:
                    shown = (
                        _num(value)
                        if isinstance(value, float)
                        else bot_click_channels(value)
                        if isinstance(value, tuple)
                        else str(value)
                    )
                    rows.append(Setting(f"{prefix}.{key}", shown, "file"))
            for stream, interval in account.schedule:
                rows.append(Setting(f"{prefix}.schedule.{stream}", str(interval), "file"))
        return rows


def apply_defaults(
    settings: Settings,
    config: Config,
    *,
    db_given: bool,
    base_url_given: bool,
    request_timeout_given: bool = False,
) -> Settings:
    """Settings with the file's [defaults] (and [sync] request_timeout) filled in where no
    option or env var was given."""
    changes: dict[str, Any] = {}
    if config.db is not None and not db_given:
        changes["db_path"] = config.db
    if config.base_url is not None and not base_url_given:
        changes["base_url"] = config.base_url
    if "sync.request_timeout" in config.from_file and not request_timeout_given:
        changes["request_timeout"] = config.request_timeout
    return replace(settings, **changes) if changes else settings


def bot_click_channels(channels: tuple[str, ...]) -> str:
    """`exclude_bot_clicks` as the file writes it: ["email", "sms"], or [] (bots' clicks counted)."""
    return "[" + ", ".join(f'"{c}"' for c in channels) + "]"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def default_config(path: Path, *, exists: bool) -> Config:
    """The configuration of a file at `path` that sets nothing (or of no file): every default."""
    return Config(
        path=path,
        exists=exists,
        schedule=default_schedule(),
        lookback_days=DEFAULT_LOOKBACK_DAYS,
        reconcile_days=DEFAULT_RECONCILE_DAYS,
        db=None,
        base_url=None,
        from_file=frozenset(),
    )


def default_schedule() -> dict[str, Interval]:
    return {
        stream: Interval.parse(DEFAULT_SCHEDULE.get(stream, FALLBACK_INTERVAL)) for stream in STREAM_NAMES
    }


def sets_nothing(path: Path) -> bool:
    """Whether `path` is no file, or a TOML file without a single key (empty, comments only).

    False also when it cannot be read or parsed: `config_file.load_config` says why."""
    try:
        if not path.exists():
            return True
        return path.is_file() and not tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
