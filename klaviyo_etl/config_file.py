"""The user's config file: per-stream schedules, sync windows and default options.

A TOML file at ``platformdirs.user_config_dir("klaviyo-etl")/config.toml`` (or wherever
``KLAVIYO_ETL_CONFIG`` points). It is optional: without it every setting has a default that
mirrors the seed's scheduler (events hourly, campaigns every 3 h, flows every 6 h, metrics and
profiles daily). Any mistake in it becomes one ``ConfigError`` line naming the file, the key
and the problem, because a scheduler that silently ignores a typo never runs the stream.

    [schedule]
    events = "1h"          # "30m", "3h", "1d", "1w", "1h30m", or "off"
    profiles = "off"

    [sync]
    lookback_days = 3      # how far back each events sync re-reads, for late arrivals
    reconcile_days = 7     # how often deletions are reconciled
    parse_workers = 0      # processes parsing a first load (0: a thread of the sync)
    request_timeout = 60   # seconds a request waits for its answer before it is retried

    [defaults]
    db = "~/klaviyo.db"    # used when neither --db nor KLAVIYO_ETL_DB is given
    base_url = "https://a.klaviyo.com"

    [reports]
    conversion_metric = "Placed Order"   # a metric name or id; default: the "Placed Order"
                                         # metric with the most events
    exclude_bot_clicks = ["email", "sms"]  # channels whose bots' clicks are not clicks
                                           # (default both, as Klaviyo; [] or false: count them)

    [accounts.acme]                      # optional: several accounts, `--account acme`
    key_env = "KLAVIYO_KEY_ACME"         # the environment variable holding its key, never the key
    db = "~/klaviyo-acme.db"             # default: klaviyo-acme.db beside the default database
    lookback_days = 5                    # also: reconcile_days, conversion_metric, base_url,
                                         # exclude_bot_clicks
    schedule = { events = "30m" }        # over [schedule], for this account only
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from klaviyo_etl import conventions as kc
from klaviyo_etl.config_values import (
    _INTERVAL_HELP,
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_PARSE_WORKERS,
    DEFAULT_RECONCILE_DAYS,
    DEFAULT_SCHEDULE,
    FALLBACK_INTERVAL,
    Account,
    Config,
    Interval,
    Setting,
    _num,
    account_db_path,
    apply_defaults,
    bot_click_channels,
    default_schedule,
)
from klaviyo_etl.errors import ConfigError
from klaviyo_etl.settings import CONFIG_ENV, DEFAULT_REQUEST_TIMEOUT, MAX_REQUEST_TIMEOUT, config_path
from klaviyo_etl.sync.names import STREAM_NAMES
from klaviyo_etl.sync.options import MAX_DAYS

# What the rest of the code imports from here (the values live in `config_values`).
__all__ = [
    "DEFAULT_LOOKBACK_DAYS",
    "DEFAULT_PARSE_WORKERS",
    "DEFAULT_RECONCILE_DAYS",
    "DEFAULT_SCHEDULE",
    "FALLBACK_INTERVAL",
    "Account",
    "Config",
    "Interval",
    "Setting",
    "account_db_path",
    "apply_defaults",
    "config_path",
    "default_config_text",
    "load_config",
    "write_default_config",
]


def _not_a_bool(value: Any) -> Any:
    """A number's setting refuses true/false, which pydantic reads as 1/0: `request_timeout =
    true` gave every request one second, `lookback_days = false` re-read no late events."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


Number = Annotated[float, BeforeValidator(_not_a_bool)]
Count = Annotated[int, BeforeValidator(_not_a_bool)]


class SyncSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lookback_days: Number = Field(DEFAULT_LOOKBACK_DAYS, ge=0, le=MAX_DAYS)
    reconcile_days: Number = Field(DEFAULT_RECONCILE_DAYS, gt=0, le=MAX_DAYS)
    parse_workers: Count = Field(DEFAULT_PARSE_WORKERS, ge=0, le=64)
    request_timeout: Number = Field(DEFAULT_REQUEST_TIMEOUT, gt=0, le=MAX_REQUEST_TIMEOUT)


class DefaultsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    db: Path | None = None
    base_url: str | None = None

    @field_validator("db", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        # Path("") is "." (the current folder), which no command can open as a database.
        if isinstance(value, str) and not value.strip():
            raise ValueError('is empty: give a file, in quotes (e.g. "~/klaviyo.db"), or leave it out')
        return value

    @field_validator("db")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


class ReportsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversion_metric: str | None = None
    exclude_bot_clicks: tuple[str, ...] = kc.BOT_CLICK_CHANNELS

    @field_validator("conversion_metric")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a metric name or id, not empty")
        return value.strip() if value is not None else None

    @field_validator("exclude_bot_clicks", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> Any:
        return bot_click_setting(value)


def bot_click_setting(value: Any) -> tuple[str, ...]:
    """`exclude_bot_clicks` read: a list of channels (Klaviyo's setting is per channel), or true
    (every one) / false (none: bots' clicks count as clicks, as when the account turned it off)."""
    if isinstance(value, bool):
        return kc.BOT_CLICK_CHANNELS if value else ()
    if not isinstance(value, list | tuple) or not all(isinstance(c, str) for c in value):
        raise ValueError(f"must be a list of channels ({', '.join(kc.BOT_CLICK_CHANNELS)}), true or false")
    unknown = [c for c in value if c.strip().lower() not in kc.BOT_CLICK_CHANNELS]
    if unknown:
        raise ValueError(
            f"{unknown[0]!r} is not a channel Klaviyo marks bot clicks on:"
            f" give {', '.join(kc.BOT_CLICK_CHANNELS)}"
        )
    return tuple(c for c in kc.BOT_CLICK_CHANNELS if c in {v.strip().lower() for v in value})


# An account's name: what `--account NAME` takes and what its default database file carries.
_ACCOUNT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Klaviyo's private keys start "pk_"; anything else that is no variable name is refused too.
_KEY_WORDS = ("key", "api_key", "private_key")
_KEY_HINT = (
    "keys never go in the config file: put the key in an environment variable"
    ' and name the variable here (key_env = "KLAVIYO_KEY_NAME")'
)


class AccountSection(BaseModel):
    """`[accounts.NAME]`: one Klaviyo account, its key's variable, its database and overrides."""

    model_config = ConfigDict(extra="forbid")

    key_env: str
    db: Path | None = None
    base_url: str | None = None
    lookback_days: Number | None = Field(None, ge=0, le=MAX_DAYS)
    reconcile_days: Number | None = Field(None, gt=0, le=MAX_DAYS)
    conversion_metric: str | None = None
    exclude_bot_clicks: tuple[str, ...] | None = None
    schedule: dict[str, Any] = {}

    @field_validator("exclude_bot_clicks", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> Any:
        return None if value is None else bot_click_setting(value)

    @field_validator("key_env")
    @classmethod
    def _variable(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError(
                "is empty: name the environment variable that holds the account's key"
                ' (key_env = "KLAVIYO_KEY_NAME")'
            )
        if value.lower().startswith("pk_") or not _ENV_NAME_RE.match(value):
            raise ValueError(f"looks like an API key, not an environment variable name; {_KEY_HINT}")
        return value

    @field_validator("db", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        return DefaultsSection._not_blank(value)

    @field_validator("db")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return DefaultsSection._expand(value)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return DefaultsSection._url(value)

    @field_validator("conversion_metric")
    @classmethod
    def _metric(cls, value: str | None) -> str | None:
        return ReportsSection._not_blank(value)


class FileContents(BaseModel):
    """Exactly what the file may hold; everything unknown is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    schedule: dict[str, Any] = {}
    sync: SyncSection = SyncSection()
    defaults: DefaultsSection = DefaultsSection()
    reports: ReportsSection = ReportsSection()
    accounts: dict[str, AccountSection] = {}


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate the config file; a missing file means all defaults."""
    path = Path(path).expanduser() if path is not None else config_path()
    raw: dict[str, Any] = {}
    exists = path.exists()
    if exists:
        if path.is_dir():
            raise ConfigError(f"config {path}: is a directory, expected a TOML file")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {path}: invalid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config {path}: cannot read: {exc}") from None
    try:
        contents = FileContents.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config {path}: {_first_problem(exc)}") from None

    schedule = default_schedule()
    schedule.update(_schedule(path, "[schedule]", contents.schedule))
    accounts = {}
    for name, section in contents.accounts.items():
        if not _ACCOUNT_NAME_RE.match(name):
            raise ConfigError(
                f"config {path}: [accounts.{name}]: an account name may hold letters, digits, '_', '-'"
                " and '.' (it names the account's database file)"
            )
        own = _schedule(path, f"[accounts.{name}.schedule]", section.schedule)
        accounts[name] = Account(
            name=name,
            key_env=section.key_env,
            db=section.db,
            base_url=section.base_url,
            lookback_days=section.lookback_days,
            reconcile_days=section.reconcile_days,
            conversion_metric=section.conversion_metric,
            exclude_bot_clicks=section.exclude_bot_clicks,
            schedule=tuple(own.items()),
        )

    from_file = {f"schedule.{stream}" for stream in contents.schedule}
    for section in ("sync", "defaults", "reports"):
        for key in getattr(contents, section).model_fields_set:
            from_file.add(f"{section}.{key}")
    return Config(
        path=path,
        exists=exists,
        schedule=schedule,
        lookback_days=contents.sync.lookback_days,
        reconcile_days=contents.sync.reconcile_days,
        db=contents.defaults.db,
        base_url=contents.defaults.base_url,
        from_file=frozenset(from_file),
        conversion_metric=contents.reports.conversion_metric,
        exclude_bot_clicks=contents.reports.exclude_bot_clicks,
        accounts=accounts,
        parse_workers=contents.sync.parse_workers,
        request_timeout=contents.sync.request_timeout,
    )


def _schedule(path: Path, where: str, table: dict[str, Any]) -> dict[str, Interval]:
    """A `[schedule]` table read: stream -> interval, or one ConfigError line."""
    out: dict[str, Interval] = {}
    for stream, text in table.items():
        if stream not in STREAM_NAMES:
            raise ConfigError(
                f"config {path}: {where} {stream}: unknown stream (known: {', '.join(STREAM_NAMES)})"
            )
        try:
            if not isinstance(text, str):
                raise ValueError(f"{text!r} is not a string; {_INTERVAL_HELP}")
            out[stream] = Interval.parse(text)
        except ValueError as exc:
            raise ConfigError(f"config {path}: {where} {stream}: {exc}") from None
    return out


def _first_problem(exc: ValidationError) -> str:
    """Pydantic's first error as "[section] key: problem", the way the file reads."""
    errors = exc.errors()
    # A key written into the file is the problem to name first, whatever else is wrong.
    literal = [
        e for e in errors if len(e["loc"]) == 3 and e["loc"][0] == "accounts" and e["loc"][2] in _KEY_WORDS
    ]
    error = (literal or errors)[0]
    loc = [str(part) for part in error["loc"]]
    if loc[0] == "accounts" and len(loc) >= 2:
        return _account_problem(error, loc)
    if len(loc) == 1:
        where = f"[{loc[0]}]"
    else:
        where = f"[{loc[0]}] {'.'.join(loc[1:])}"
    if error["type"] == "extra_forbidden":
        if len(loc) == 1:
            return f"{where}: unknown section (known: {', '.join(FileContents.model_fields)})"
        section = {"sync": SyncSection, "defaults": DefaultsSection, "reports": ReportsSection}[loc[0]]
        return f"{where}: unknown key (known: {', '.join(section.model_fields)})"
    message = _message(error)
    return f"{where}: {message} (got {error.get('input')!r})"


def _message(error: Any) -> str:
    """pydantic's message, in the file's words (it names a Python class for a path)."""
    if error["type"] == "path_type":
        return 'must be a path, in quotes (e.g. "~/klaviyo.db")'
    return error["msg"].removeprefix("Value error, ")


def _account_problem(error: Any, loc: list[str]) -> str:
    """A problem inside `[accounts.NAME]`, said the way the file reads."""
    where = f"[accounts.{loc[1]}]"
    if len(loc) == 2:
        return f"{where}: must be a table with key_env (got {error.get('input')!r})"
    key = loc[2]
    if error["type"] == "extra_forbidden":
        if key in _KEY_WORDS:
            return f"{where} {key}: {_KEY_HINT}"
        return f"{where} {key}: unknown key (known: {', '.join(AccountSection.model_fields)})"
    if error["type"] == "missing":
        return f"{where} {key}: missing; name the environment variable holding this account's key"
    message = _message(error)
    if key == "key_env":
        return f"{where} {key}: {message}"  # never echo what may be a key
    return f"{where} {'.'.join(loc[2:])}: {message} (got {error.get('input')!r})"


def default_config_text() -> str:
    """A commented config file listing every default, for `klaviyo-etl config init`."""
    lines = [
        "# klaviyo-etl configuration. Every setting below is the default; edit what you need.",
        "# `klaviyo-etl config` shows the effective values and where each came from.",
        "",
        "[schedule]",
        '# How often each stream syncs: "30m", "1h", "3h", "1d", "1w", "1h30m", or "off".',
        "# `klaviyo-etl schedule run` and `klaviyo-etl sync --due` run a stream once its",
        "# interval has passed since its last successful sync.",
    ]
    for stream in STREAM_NAMES:
        lines.append(f'{stream} = "{DEFAULT_SCHEDULE.get(stream, FALLBACK_INTERVAL)}"')
    lines += [
        "",
        "[sync]",
        "# Each events sync re-reads this many days before its watermark, for late arrivals.",
        f"lookback_days = {_num(DEFAULT_LOOKBACK_DAYS)}",
        "# How often (days) a sync also reconciles deletions by re-listing every id.",
        f"reconcile_days = {_num(DEFAULT_RECONCILE_DAYS)}",
        "# Processes that parse a first load's pages; 0 parses on a thread of the sync, which",
        "# keeps up with Klaviyo's limits at a third of the memory (see README, Performance).",
        f"parse_workers = {DEFAULT_PARSE_WORKERS}",
        "# Seconds a request waits for its answer before it is retried (at most"
        f" {_num(MAX_REQUEST_TIMEOUT)}).",
        f"request_timeout = {_num(DEFAULT_REQUEST_TIMEOUT)}",
        "",
        "[defaults]",
        "# Used when neither the command-line option nor its environment variable is given.",
        '# db = "~/klaviyo.db"',
        '# base_url = "https://a.klaviyo.com"',
        "",
        "[reports]",
        "# The metric counted as a conversion (a name or an id), in every report and in the",
        f"# Reporting API requests. Default: the {kc.PLACED_ORDER!r} metric with the most events.",
        f'# conversion_metric = "{kc.PLACED_ORDER}"',
        "# The channels whose bots' clicks (Bot Click true) are left out of clicks and click rates,",
        "# as Klaviyo's reporting leaves them out by default. An account whose Klaviyo setting",
        "# counts them: drop its channel here ([] or false: count them on every channel).",
        f"exclude_bot_clicks = {bot_click_channels(kc.BOT_CLICK_CHANNELS)}",
        "",
        "# Several accounts: one section each, then `--account NAME` or `--all-accounts`.",
        "# Keys never go in this file: key_env names the environment variable holding the key.",
        "# [accounts.acme]",
        '# key_env = "KLAVIYO_KEY_ACME"',
        '# db = "~/klaviyo-acme.db"        # default: klaviyo-acme.db beside the default database',
        "# lookback_days = 5              # also reconcile_days, conversion_metric, base_url,",
        "#                                # exclude_bot_clicks",
        '# schedule = { events = "30m" }  # over [schedule], for this account only',
        "",
    ]
    return "\n".join(lines)


def write_default_config(path: str | Path | None = None, *, force: bool = False) -> Path:
    """Write the commented default file; refuse to overwrite one unless `force`."""
    path = Path(path).expanduser() if path is not None else config_path()
    if path.is_dir():
        raise ConfigError(
            f"config {path} is a folder: set {CONFIG_ENV} to a file path (e.g. {path / 'config.toml'})"
        )
    if path.exists() and not force:
        raise ConfigError(f"config {path} already exists; pass --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(default_config_text(), encoding="utf-8")
    except OSError as exc:  # a file where a folder should be, a folder we may not write
        reason = (
            "a file is in the way of its folder"
            if isinstance(exc, FileExistsError | NotADirectoryError)
            else ""
        )
        raise ConfigError(f"cannot write config {path}: {reason or exc.strerror or exc}") from None
    return path
