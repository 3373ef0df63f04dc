"""Which accounts a command runs for, and each one's settings (`klaviyo_etl.accounts`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from klaviyo_etl.accounts import select_accounts
from klaviyo_etl.config_file import load_config
from klaviyo_etl.errors import ConfigError, UsageError
from klaviyo_etl.settings import Settings

CONFIG = """
[accounts.acme]
key_env = "KEY_ACME"

[accounts.globex]
key_env = "KEY_GLOBEX"
db = "{tmp}/elsewhere/globex.db"
base_url = "http://127.0.0.1:9"
lookback_days = 9
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(tmp=tmp_path), encoding="utf-8")
    return load_config(path)


def test_neither_option_means_the_single_account_of_old(config, tmp_path):
    assert select_accounts(Settings(db_path=tmp_path / "k.db"), config, None, False) is None
    assert select_accounts(Settings(db_path=tmp_path / "k.db"), config, [], False) is None


def test_each_account_has_its_key_database_url_and_settings(config, tmp_path, monkeypatch):
    monkeypatch.setenv("KEY_ACME", "pk_acme_1234")
    monkeypatch.delenv("KEY_GLOBEX", raising=False)
    base = Settings(
        db_path=tmp_path / "data" / "klaviyo.db", api_key="pk_single", base_url="http://127.0.0.1:8"
    )
    acme, globex = select_accounts(base, config, None, all_accounts=True)
    assert acme.name == "acme" and acme.settings.api_key == "pk_acme_1234"
    # the default database of an account sits beside the default database
    assert acme.settings.db_path == tmp_path / "data" / "klaviyo-acme.db"
    assert acme.settings.base_url == "http://127.0.0.1:8"
    assert globex.settings.db_path == tmp_path / "elsewhere" / "globex.db"
    assert globex.settings.base_url == "http://127.0.0.1:9"  # its own section goes first
    assert (globex.config.lookback_days, acme.config.lookback_days) == (9, 3)
    # KLAVIYO_API_KEY's key never leaks into an account whose variable is unset
    assert globex.settings.api_key is None
    with pytest.raises(ConfigError, match="account globex: no API key: set KEY_GLOBEX"):
        globex.require_api_key()


def test_an_account_key_goes_over_plain_http_only_to_loopback_or_with_allow_insecure(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text(
        '[accounts.far]\nkey_env = "KEY_FAR"\nbase_url = "http://proxy.internal"\n', encoding="utf-8"
    )
    monkeypatch.setenv("KEY_FAR", "pk_far_1234")
    (far,) = select_accounts(Settings(db_path=tmp_path / "k.db"), load_config(path), ["far"])
    with pytest.raises(ConfigError, match="account far: refusing to send the API key over plain HTTP"):
        far.require_api_key()
    base = Settings(db_path=tmp_path / "k.db", allow_insecure=True)
    (far,) = select_accounts(base, load_config(path), ["far"])
    assert far.require_api_key() == "pk_far_1234"


def test_accounts_come_in_the_order_asked_once_each(config, tmp_path):
    chosen = select_accounts(Settings(db_path=tmp_path / "k.db"), config, ["globex", "acme", "globex"])
    assert [a.name for a in chosen] == ["globex", "acme"]


def test_an_unknown_account_is_a_usage_error_listing_the_configured_ones(config, tmp_path):
    with pytest.raises(UsageError, match=r"unknown account 'acne' \(configured: acme, globex\)"):
        select_accounts(Settings(db_path=tmp_path / "k.db"), config, ["acme", "acne"])


def test_accounts_asked_for_without_any_configured_is_a_usage_error(tmp_path):
    empty = load_config(tmp_path / "none.toml")
    with pytest.raises(UsageError, match=r"no accounts are configured in .*none\.toml"):
        select_accounts(Settings(db_path=Path(tmp_path / "k.db")), empty, None, all_accounts=True)
