"""Global settings: an unusable base URL is a configuration error before any request, and the
API key travels only over TLS, or plain HTTP on loopback."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from klaviyo_etl import REVISION
from klaviyo_etl.cli import app
from klaviyo_etl.errors import ConfigError
from klaviyo_etl.settings import Settings, key_travels_safely

KEY = "pk_test_abcd1234"


@pytest.mark.parametrize("url", ["ftp://a.klaviyo.com", "https://", "a.klaviyo.com", "http://host:port", ""])
def test_an_unusable_base_url_is_a_config_error(url):
    with pytest.raises(ConfigError, match="base URL"):
        Settings(base_url=url)


@pytest.mark.parametrize("url", ["https://a.klaviyo.com", "http://127.0.0.1:8080", "http://sandbox.test/"])
def test_http_and_https_urls_with_a_host_are_accepted(url):
    assert Settings(base_url=url).base_url == url


@pytest.mark.parametrize(
    "url", ["https://a.klaviyo.com/api", "https://a.klaviyo.com/api/", "http://127.0.0.1:8080/api"]
)
def test_a_base_url_ending_in_api_is_a_config_error_naming_the_one_to_give(url):
    # every request path starts with /api: /api/api/metrics would be a 404 on every stream
    with pytest.raises(ConfigError, match=r"ends in /api, which every request adds itself: give http"):
        Settings(base_url=url)


@pytest.mark.parametrize("revision", ["garbage", "", "2026-7-15", "15-07-2026"])
def test_a_revision_that_is_not_a_date_is_a_config_error(revision):
    # Klaviyo answers 400 to every request, and the sync printed one failure per stream
    with pytest.raises(ConfigError, match=r"is not an API revision: give a date such as"):
        Settings(revision=revision)


@pytest.mark.parametrize("seconds", [0, -1, 600.5, float("inf"), float("nan")])
def test_a_request_timeout_out_of_range_is_a_config_error_naming_where_to_set_it(seconds):
    with pytest.raises(ConfigError) as caught:
        Settings(request_timeout=seconds)
    assert "give more than 0 and at most 600 seconds (--request-timeout, KLAVIYO_ETL_REQUEST_TIMEOUT" in str(
        caught.value
    )


@pytest.mark.parametrize("seconds", [0.5, 60, 600])
def test_a_request_timeout_up_to_ten_minutes_is_accepted(seconds):
    assert Settings(request_timeout=seconds).request_timeout == seconds


@pytest.mark.parametrize("revision", ["2026-07-15", "2024-07-15.pre", "2099-01-01"])
def test_dated_revisions_are_accepted(revision):
    assert Settings(revision=revision).revision == revision


def test_the_cli_says_a_bad_revision_in_one_line_before_any_request(tmp_path):
    result = CliRunner().invoke(
        app,
        ["--db", str(tmp_path / "k.db"), "--revision", "latest", "sync", "metrics"],
        env={"KLAVIYO_API_KEY": KEY, "KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml")},
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"Error: revision 'latest' is not an API revision: give a date such as {REVISION}"
        " (YYYY-MM-DD, --revision or KLAVIYO_REVISION)"
    ]
    assert not (tmp_path / "k.db").exists()


def test_the_cli_exits_2_at_once_on_an_ftp_base_url(tmp_path):
    began = time.monotonic()
    result = CliRunner().invoke(
        app,
        ["--db", str(tmp_path / "k.db"), "--base-url", "ftp://a.klaviyo.com", "sync", "metrics"],
        env={"KLAVIYO_API_KEY": "pk_test", "KLAVIYO_ETL_CONFIG": str(tmp_path / "none.toml")},
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: base URL 'ftp://a.klaviyo.com' is not usable: give http:// or https:// and a host"
        " (--base-url, KLAVIYO_BASE_URL or the config file)"
    ]
    assert time.monotonic() - began < 5


@pytest.mark.parametrize(
    "url",
    [
        "https://a.klaviyo.com",
        "http://127.0.0.1:8080",
        "http://127.3.4.5",
        "http://localhost:9",
        "http://[::1]:80",
    ],
)
def test_tls_or_loopback_may_carry_the_key(url):
    assert key_travels_safely(url)
    assert Settings(api_key=KEY, base_url=url).require_api_key() == KEY


@pytest.mark.parametrize("url", ["http://a.klaviyo.com", "http://10.0.0.5:8080", "HTTP://proxy.internal"])
def test_plain_http_elsewhere_is_refused_unless_allowed(url):
    assert not key_travels_safely(url)
    with pytest.raises(ConfigError, match="--allow-insecure"):
        Settings(api_key=KEY, base_url=url).require_api_key()
    assert Settings(api_key=KEY, base_url=url, allow_insecure=True).require_api_key() == KEY


def test_a_key_is_read_without_the_blanks_around_it():
    # A key pasted with a space or a newline (KLAVIYO_API_KEY="pk_... ") went into the header
    # as it was: "Illegal header value", retried as transient for ~60 s, every run.
    assert Settings(api_key=" pk_live_abcd1234\n").api_key == "pk_live_abcd1234"
    assert Settings(api_key=" \t").api_key is None
