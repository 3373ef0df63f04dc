"""The config file: defaults like the seed's, overrides, and one-line errors for mistakes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from klaviyo_etl.config_file import (
    DEFAULT_SCHEDULE,
    Interval,
    apply_defaults,
    config_path,
    default_config_text,
    load_config,
    write_default_config,
)
from klaviyo_etl.config_values import default_config, sets_nothing
from klaviyo_etl.errors import ConfigError
from klaviyo_etl.settings import Settings
from klaviyo_etl.sync.engine import STREAM_NAMES


def _load(tmp_path: Path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.mark.parametrize(
    "text, seconds, shown",
    [
        ("1m", 60, "1m"),
        ("30m", 1800, "30m"),
        ("1h", 3600, "1h"),
        ("90m", 5400, "1h30m"),
        ("1h30m", 5400, "1h30m"),
        ("3h", 10800, "3h"),
        ("1d", 86400, "1d"),
        ("36h", 129600, "1d12h"),
        ("1w", 604800, "1w"),
        (" 2D ", 172800, "2d"),
        ("off", None, "off"),
        ("OFF", None, "off"),
    ],
)
def test_intervals_parse_and_print(text, seconds, shown):
    interval = Interval.parse(text)
    assert interval.seconds == seconds
    assert str(interval) == shown
    assert Interval.parse(str(interval)) == interval


@pytest.mark.parametrize(
    "text", ["", "1", "h", "1x", "30s", "0m", "1.5h", "-1h", "1m1h", "never", "10000d", "99999999999d"]
)
def test_bad_intervals_are_refused(text):
    with pytest.raises(ValueError):
        Interval.parse(text)


def test_a_missing_file_means_the_seeds_defaults(tmp_path):
    config = load_config(tmp_path / "nope.toml")
    assert not config.exists
    assert list(config.schedule) == STREAM_NAMES
    assert set(DEFAULT_SCHEDULE) == set(STREAM_NAMES)
    assert str(config.schedule["events"]) == "1h"
    assert str(config.schedule["campaigns"]) == "3h"
    assert str(config.schedule["flows"]) == "6h"
    assert str(config.schedule["metrics"]) == str(config.schedule["profiles"]) == "1d"
    assert (config.lookback_days, config.reconcile_days) == (3, 7)
    assert config.db is None and config.base_url is None
    assert {s.source for s in config.settings()} == {"default"}


def test_the_file_overrides_what_it_sets(tmp_path):
    config = _load(
        tmp_path,
        """
[schedule]
events = "30m"
profiles = "off"

[sync]
lookback_days = 1.5

[defaults]
db = "~/data/k.db"
base_url = "http://127.0.0.1:8080/"
""",
    )
    assert config.exists
    assert str(config.schedule["events"]) == "30m" and config.schedule["profiles"].off
    assert str(config.schedule["campaigns"]) == "3h"
    assert (config.lookback_days, config.reconcile_days) == (1.5, 7)
    assert config.db == Path("~/data/k.db").expanduser()
    assert config.base_url == "http://127.0.0.1:8080"
    sources = {s.key: (s.value, s.source) for s in config.settings()}
    assert sources["schedule.events"] == ("30m", "file")
    assert sources["schedule.campaigns"] == ("3h", "default")
    assert sources["sync.lookback_days"] == ("1.5", "file")
    assert sources["sync.reconcile_days"] == ("7", "default")
    assert sources["defaults.base_url"] == ("http://127.0.0.1:8080", "file")


@pytest.mark.parametrize(
    "text, message",
    [
        ('[schedule]\nevnts = "1h"\n', "[schedule] evnts: unknown stream (known: metrics, events"),
        ('[schedule]\nevents = "1x"\n', "[schedule] events: '1x' is not an interval; use"),
        ('[schedule]\nevents = "0m"\n', "[schedule] events: '0m' is too short"),
        ("[schedule]\nevents = 60\n", "[schedule] events: 60 is not a string"),
        ("schedule = 3\n", "[schedule]: Input should be a valid dictionary"),
        (
            "[sync]\nlookback = 3\n",
            "[sync] lookback: unknown key (known: lookback_days, reconcile_days, parse_workers, request_timeout)",
        ),
        ("[sync]\nlookback_days = -1\n", "[sync] lookback_days: Input should be greater than or equal to 0"),
        (
            "[sync]\nlookback_days = 1e300\n",
            "[sync] lookback_days: Input should be less than or equal to 36500",
        ),
        (
            "[sync]\nreconcile_days = inf\n",
            "[sync] reconcile_days: Input should be less than or equal to 36500",
        ),
        ('[sync]\nreconcile_days = "weekly"\n', "[sync] reconcile_days: Input should be a valid number"),
        # Read as 1 and 0: every request given one second, no late events re-read.
        ("[sync]\nrequest_timeout = true\n", "[sync] request_timeout: must be a number, not true or false"),
        ("[sync]\nlookback_days = false\n", "[sync] lookback_days: must be a number, not true or false"),
        ("[sync]\nparse_workers = true\n", "[sync] parse_workers: must be a number, not true or false"),
        # "99999999999d": its due time left the calendar, "unexpected OverflowError" at every run.
        ('[schedule]\nevents = "99999999999d"\n', "[schedule] events: '99999999999d' is too long"),
        ('[defaults]\nbase_url = "a.klaviyo.com"\n', "[defaults] base_url: must start with http://"),
        ("[defaults]\ndb = 5\n", '[defaults] db: must be a path, in quotes (e.g. "~/klaviyo.db") (got 5)'),
        # Before: read as "." (the current folder): "cannot open database ." at the first command.
        ('[defaults]\ndb = ""\n', "[defaults] db: is empty: give a file, in quotes"),
        (
            "[schedules]\n",
            "[schedules]: unknown section (known: schedule, sync, defaults, reports, accounts)",
        ),
        ("[schedule\n", "invalid TOML: "),
    ],
)
def test_mistakes_are_one_line_naming_file_key_and_problem(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    error = str(caught.value)
    assert error.startswith(f"config {tmp_path / 'config.toml'}: ")
    assert message in error
    assert "\n" not in error


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_the_path_comes_from_the_environment_or_the_user_config_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("KLAVIYO_ETL_CONFIG", str(tmp_path / "mine.toml"))
    assert config_path() == tmp_path / "mine.toml"
    (tmp_path / "mine.toml").write_text('[schedule]\nevents = "2h"\n')
    assert str(load_config().schedule["events"]) == "2h"
    monkeypatch.delenv("KLAVIYO_ETL_CONFIG")
    assert config_path().name == "config.toml"
    assert "klaviyo-etl" in str(config_path())


def test_the_written_default_file_loads_back_to_the_defaults(tmp_path):
    path = write_default_config(tmp_path / "sub" / "config.toml")
    config = load_config(path)
    defaults = load_config(tmp_path / "missing.toml")
    assert config.schedule == defaults.schedule
    assert (config.lookback_days, config.reconcile_days) == (3, 7)
    assert config.db is None  # [defaults] is commented out: nothing to override
    assert "schedule.events" in config.from_file
    assert default_config_text().startswith("# klaviyo-etl configuration")


def test_init_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[schedule]\nevents = "2h"\n')
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        write_default_config(path)
    assert "2h" in path.read_text()
    write_default_config(path, force=True)
    assert str(load_config(path).schedule["events"]) == "1h"


def test_defaults_apply_only_where_no_option_was_given(tmp_path):
    config = _load(tmp_path, '[defaults]\ndb = "/data/k.db"\nbase_url = "http://x.test"\n')
    settings = Settings(db_path=Path("/cli.db"))
    applied = apply_defaults(settings, config, db_given=False, base_url_given=False)
    assert (applied.db_path, applied.base_url) == (Path("/data/k.db"), "http://x.test")
    kept = apply_defaults(settings, config, db_given=True, base_url_given=True)
    assert (kept.db_path, kept.base_url) == (Path("/cli.db"), settings.base_url)


def test_the_conversion_metric_setting_is_a_name_or_an_id(tmp_path):
    assert load_config(tmp_path / "none.toml").conversion_metric is None
    config = _load(tmp_path, '[reports]\nconversion_metric = " Placed Order "\n')
    assert config.conversion_metric == "Placed Order"
    shown = {s.key: s for s in config.settings()}["reports.conversion_metric"]
    assert (shown.value, shown.source) == ("Placed Order", "file")
    with pytest.raises(ConfigError, match=r"\[reports\] conversion_metric: must be a metric name or id"):
        _load(tmp_path, '[reports]\nconversion_metric = ""\n')
    with pytest.raises(
        ConfigError, match=r"\[reports\] metric: unknown key \(known: conversion_metric, exclude_bot_clicks\)"
    ):
        _load(tmp_path, '[reports]\nmetric = "x"\n')
    assert load_config(write_default_config(tmp_path / "d.toml")).conversion_metric is None


@pytest.mark.parametrize(
    "text, channels",
    [
        (None, ("email", "sms")),  # Klaviyo's default for an account made since 2024-08-27
        ("true", ("email", "sms")),
        ("false", ()),
        ("[]", ()),
        ('["SMS "]', ("sms",)),
        ('["sms", "email"]', ("email", "sms")),
    ],
)
def test_exclude_bot_clicks_names_the_channels_whose_bot_clicks_are_not_clicks(tmp_path, text, channels):
    config = _load(tmp_path, "" if text is None else f"[reports]\nexclude_bot_clicks = {text}\n")
    assert config.exclude_bot_clicks == channels
    shown = {s.key: s for s in config.settings()}["reports.exclude_bot_clicks"]
    assert shown.value == "[" + ", ".join(f'"{c}"' for c in channels) + "]"
    assert shown.source == ("default" if text is None else "file")
    # An account's own setting goes over the file's; without one it has the file's.
    own = "" if text is None else f"exclude_bot_clicks = {text}\n"
    config = _load(tmp_path, f'[reports]\nexclude_bot_clicks = ["sms"]\n[accounts.old]\nkey_env = "K"\n{own}')
    assert config.for_account("old").exclude_bot_clicks == (("sms",) if text is None else channels)


@pytest.mark.parametrize(
    "text, message",
    [
        ('"email"', "must be a list of channels (email, sms), true or false"),
        ('["push"]', "'push' is not a channel Klaviyo marks bot clicks on: give email, sms"),
    ],
)
def test_exclude_bot_clicks_refuses_what_is_no_channel(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(f"[reports] exclude_bot_clicks: {message}")):
        _load(tmp_path, f"[reports]\nexclude_bot_clicks = {text}\n")
    assert load_config(write_default_config(tmp_path / "d.toml")).exclude_bot_clicks == ("email", "sms")


ACCOUNTS = """
[sync]
lookback_days = 2

[accounts.acme]
key_env = "KLAVIYO_KEY_ACME"

[accounts.globex]
key_env = "KLAVIYO_KEY_GLOBEX"
db = "~/globex.db"
base_url = "http://127.0.0.1:9/"
lookback_days = 7
reconcile_days = 3
conversion_metric = "Ordered Product"
schedule = { events = "30m", profiles = "off" }
"""


def test_accounts_name_their_key_variable_database_and_own_settings(tmp_path):
    config = _load(tmp_path, ACCOUNTS)
    assert list(config.accounts) == ["acme", "globex"]
    acme, globex = config.accounts["acme"], config.accounts["globex"]
    assert (acme.key_env, acme.db) == ("KLAVIYO_KEY_ACME", None)
    assert globex.db == Path("~/globex.db").expanduser()
    assert globex.base_url == "http://127.0.0.1:9"
    # an account's settings go over the file's, for that account only
    seen = config.for_account("globex")
    assert (seen.lookback_days, seen.reconcile_days, seen.conversion_metric) == (7, 3, "Ordered Product")
    assert str(seen.interval("events")) == "30m" and seen.interval("profiles").off
    assert str(seen.interval("campaigns")) == DEFAULT_SCHEDULE["campaigns"]
    plain = config.for_account("acme")
    assert (plain.lookback_days, str(plain.interval("events"))) == (2, "1h")
    assert "accounts.globex.schedule.events" in {s.key for s in config.settings()}


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[accounts.acme]\nkey_env = "pk_live_0123456789abcdef"\n',
            "[accounts.acme] key_env: looks like an API key, not an environment variable name;"
            " keys never go in the config file",
        ),
        ('[accounts.acme]\nkey = "pk_live_0123"\n', "[accounts.acme] key: keys never go in the config file"),
        ('[accounts.acme]\napi_key = "x"\nkey_env = "K"\n', "[accounts.acme] api_key: keys never go in"),
        ("[accounts.acme]\n", "[accounts.acme] key_env: missing; name the environment variable"),
        (
            '[accounts.acme]\nkey_env = "K"\nlookback = 3\n',
            "[accounts.acme] lookback: unknown key (known: key_env",
        ),
        (
            '[accounts.acme]\nkey_env = "K"\nlookback_days = -1\n',
            "[accounts.acme] lookback_days: Input should be",
        ),
        (
            '[accounts.acme]\nkey_env = "K"\nreconcile_days = true\n',
            "[accounts.acme] reconcile_days: must be a number, not true or false",
        ),
        (
            '[accounts.acme]\nkey_env = "K"\nschedule = { event = "1h" }\n',
            "[accounts.acme.schedule] event: unknown",
        ),
        (
            '[accounts.acme]\nkey_env = "K"\nschedule = { events = "5s" }\n',
            "[accounts.acme.schedule] events: '5s'",
        ),
        ('[accounts."a b"]\nkey_env = "K"\n', "[accounts.a b]: an account name may hold letters"),
        ('accounts = "acme"\n', "[accounts]: Input should be a valid dictionary"),
        ('[accounts.acme]\nkey_env = "K"\ndb = 5\n', "[accounts.acme] db: must be a path, in quotes"),
        # Before: the account's database was "." and its sync exited 1, "cannot open database .".
        ('[accounts.acme]\nkey_env = "K"\ndb = " "\n', "[accounts.acme] db: is empty: give a file"),
        # Before: "looks like an API key", of nothing at all.
        (
            '[accounts.acme]\nkey_env = ""\n',
            "[accounts.acme] key_env: is empty: name the environment variable",
        ),
    ],
)
def test_account_mistakes_are_one_line_and_a_key_in_the_file_is_refused(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    error = str(caught.value)
    assert "\n" not in error
    assert message in error
    assert "pk_live" not in error  # the refused key is not echoed back


def test_the_written_default_file_shows_an_account_section_commented_out(tmp_path):
    text = default_config_text()
    assert "# [accounts.acme]" in text and '# key_env = "KLAVIYO_KEY_ACME"' in text
    assert load_config(write_default_config(tmp_path / "c.toml")).accounts == {}


def test_parse_workers_default_to_a_thread_and_the_file_may_ask_for_processes(tmp_path):
    assert load_config(tmp_path / "nope.toml").parse_workers == 0
    config = _load(tmp_path, "[sync]\nparse_workers = 2\n")
    assert config.parse_workers == 2
    assert {s.key: (s.value, s.source) for s in config.settings()}["sync.parse_workers"] == ("2", "file")
    with pytest.raises(ConfigError, match=r"\[sync\] parse_workers"):
        _load(tmp_path, "[sync]\nparse_workers = -1\n")


def test_the_request_timeout_is_60_s_unless_the_file_sets_it_and_no_option_or_variable_does(tmp_path):
    default = load_config(tmp_path / "nope.toml")
    assert default.request_timeout == 60
    assert {s.key: (s.value, s.source) for s in default.settings()}["sync.request_timeout"] == (
        "60",
        "default",
    )
    assert apply_defaults(Settings(), default, db_given=False, base_url_given=False).request_timeout == 60
    config = _load(tmp_path, "[sync]\nrequest_timeout = 12.5\n")
    assert {s.key: (s.value, s.source) for s in config.settings()}["sync.request_timeout"] == ("12.5", "file")
    applied = apply_defaults(Settings(), config, db_given=False, base_url_given=False)
    assert applied.request_timeout == 12.5
    given = Settings(request_timeout=3)
    kept = apply_defaults(given, config, db_given=False, base_url_given=False, request_timeout_given=True)
    assert kept.request_timeout == 3


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "Input should be greater than 0 (got 0)"),
        ("-5", "Input should be greater than 0 (got -5)"),
        ("601", "Input should be less than or equal to 600 (got 601)"),
        ("inf", "Input should be less than or equal to 600"),
        ("nan", "Input should be less than or equal to 600 (got nan)"),
        ('"slow"', "Input should be a valid number"),
    ],
)
def test_a_request_timeout_out_of_range_in_the_file_is_one_line(tmp_path, value, message):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"[sync]\nrequest_timeout = {value}\n")
    assert f"[sync] request_timeout: {message}" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text", [None, "", "\n# only a comment\n"])
def test_a_file_that_sets_nothing_gives_the_defaults_that_reading_it_would(tmp_path, text):
    """`klaviyo-etl sync` skips reading such a file (pydantic, issue 12: start-up); what it
    gets instead must be what `load_config` makes of it."""
    path = tmp_path / "config.toml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    assert sets_nothing(path)
    assert default_config(path, exists=path.exists()) == load_config(path)


@pytest.mark.parametrize("text", ["[sync]\n", '[schedule]\nevents = "1h"\n', "not toml [", "x = 1\n"])
def test_a_file_that_sets_something_or_cannot_be_read_is_read_by_load_config(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    assert not sets_nothing(path)
    assert not sets_nothing(tmp_path)  # a directory: load_config says so
