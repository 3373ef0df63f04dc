"""Several Klaviyo accounts in one command: which accounts it runs for, and each one's settings.

The config file names accounts (`[accounts.NAME]`, see `klaviyo_etl.config_file`). A command
given `--account NAME` (repeatable) or `--all-accounts` runs once per account, each with its
own key (read from the variable the file names), its own database and its own settings;
`select_accounts` turns those options into `AccountTarget`s. Given neither, it returns None and
the command runs as it always did: one account, KLAVIYO_API_KEY and --db.

Precedence for an account: its own section, then the command line and environment, then
`[defaults]`, `[sync]`, `[reports]` and `[schedule]`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from klaviyo_etl.config_file import Config, account_db_path
from klaviyo_etl.errors import ConfigError, UsageError
from klaviyo_etl.settings import Settings


@dataclass(frozen=True)
class AccountTarget:
    """One account a command runs for: its name, settings (database, key, URL) and config."""

    name: str
    key_env: str
    settings: Settings
    config: Config

    def require_api_key(self) -> str:
        """The account's key, or a ConfigError naming the account and its variable; like
        `Settings.require_api_key`, only for TLS or plain HTTP on loopback (--allow-insecure)."""
        if not self.settings.api_key:
            raise ConfigError(
                f"account {self.name}: no API key: set {self.key_env} to its private key (pk_…)"
            )
        try:
            return self.settings.require_api_key()
        except ConfigError as exc:
            raise ConfigError(f"account {self.name}: {exc}") from None


def account_target(settings: Settings, config: Config, name: str) -> AccountTarget:
    """Account `name` of `config`, with `settings` (the command's, [defaults] applied) as the base."""
    account = config.accounts[name]
    own = replace(
        settings,
        db_path=account.db or account_db_path(settings.db_path, name),
        api_key=os.environ.get(account.key_env) or None,
        base_url=account.base_url or settings.base_url,
    )
    return AccountTarget(name, account.key_env, own, config.for_account(name))


def select_accounts(
    settings: Settings, config: Config, names: Sequence[str] | None, all_accounts: bool = False
) -> list[AccountTarget] | None:
    """The accounts `--account NAME...` / `--all-accounts` ask for, in the order asked (the
    file's order for --all-accounts); None when neither was given (one account, as before).

    An unknown name, or accounts asked for while the file names none, is a UsageError (exit 2).
    """
    names = list(dict.fromkeys(names or ()))
    if not names and not all_accounts:
        return None
    if not config.accounts:
        raise UsageError(
            f"no accounts are configured in {config.path}: add an [accounts.NAME] section"
            ' with key_env = "VARIABLE" for each (see `klaviyo-etl config init`)'
        )
    if names and all_accounts:
        raise UsageError("give --account NAME or --all-accounts, not both")
    unknown = [n for n in names if n not in config.accounts]
    if unknown:
        raise UsageError(
            f"unknown account {', '.join(map(repr, unknown))} (configured: {', '.join(config.accounts)})"
        )
    chosen = list(config.accounts) if all_accounts else names
    return [account_target(settings, config, name) for name in chosen]
