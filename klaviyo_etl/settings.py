"""Global settings shared by every command: where the database is and how to reach Klaviyo."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from klaviyo_etl import REVISION
from klaviyo_etl.errors import ConfigError

DEFAULT_BASE_URL = "https://a.klaviyo.com"
DEFAULT_RETRIES = 7  # after the first attempt; backoff grows to 30 s between them
# What Klaviyo accepts in the `revision` header: a date, perhaps with a suffix (`2024-07-15.pre`).
REVISION_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}(\.[A-Za-z0-9_-]+)?")
CONFIG_ENV = "KLAVIYO_ETL_CONFIG"
# Seconds a request may wait for its answer before it counts as failed and is retried.
DEFAULT_REQUEST_TIMEOUT = 60.0
MAX_REQUEST_TIMEOUT = 600.0  # the longest Retry-After a run waits out: anything more is a hang


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("klaviyo-etl")) / "klaviyo.db"


def config_path() -> Path:
    """Where the config file is (whether or not it exists): $KLAVIYO_ETL_CONFIG or the user dir.

    Here rather than in `config_file` so a command can tell there is none without importing
    the validation (pydantic) that reading one needs."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("klaviyo-etl")) / "config.toml"


def mask_key(key: str | None) -> str:
    """Show enough of a key to tell keys apart, never enough to use it: `pk_…abcd`."""
    if not key:
        return "(none)"
    prefix = key.split("_", 1)[0] + "_" if "_" in key else ""
    return f"{prefix}…{key[-4:]}"


@dataclass
class Settings:
    db_path: Path = field(default_factory=default_db_path)
    api_key: str | None = None
    base_url: str = DEFAULT_BASE_URL
    revision: str = REVISION
    verbose: bool = False
    quiet: bool = False
    retries: int = DEFAULT_RETRIES
    allow_insecure: bool = False  # send the key over plain http:// to a host not on loopback
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT  # seconds, per request (each attempt)

    def __post_init__(self) -> None:
        # A key pasted with blanks around it went into the header as it was ("Illegal header
        # value", retried as if the network had failed); a blank one is no key at all.
        self.api_key = (self.api_key or "").strip() or None
        # A URL no request can reach is a configuration error, found now rather than
        # retried as if the network had failed.
        try:
            parts = urlsplit(self.base_url)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            usable = False
        if not usable:
            raise ConfigError(
                f"base URL {self.base_url!r} is not usable: give http:// or https:// and a host"
                " (--base-url, KLAVIYO_BASE_URL or the config file)"
            )
        if parts.path.rstrip("/").endswith("/api"):  # every request would be /api/api/...: 404s
            raise ConfigError(
                f"base URL {self.base_url!r} ends in /api, which every request adds itself: give"
                f" {self.base_url.rstrip('/').removesuffix('/api')} (--base-url, KLAVIYO_BASE_URL or"
                " the config file)"
            )
        if not REVISION_FORMAT.fullmatch(self.revision):  # Klaviyo would answer 400 to every request
            raise ConfigError(
                f"revision {self.revision!r} is not an API revision: give a date such as {REVISION}"
                " (YYYY-MM-DD, --revision or KLAVIYO_REVISION)"
            )
        if not 0 < self.request_timeout <= MAX_REQUEST_TIMEOUT:  # NaN too: a request never answered
            raise ConfigError(
                f"request timeout {self.request_timeout:g} s is out of range: give more than 0 and at most"
                f" {MAX_REQUEST_TIMEOUT:g} seconds (--request-timeout, KLAVIYO_ETL_REQUEST_TIMEOUT or"
                " [sync] request_timeout)"
            )

    def require_api_key(self) -> str:
        """The key, for a command about to send it: only over TLS, or plain HTTP on loopback."""
        if not self.api_key:
            raise ConfigError("no API key: set KLAVIYO_API_KEY to a private key (pk_…)")
        if not (self.api_key.isascii() and self.api_key.isprintable()) or " " in self.api_key:
            # It cannot go in a header: "unexpected UnicodeEncodeError", exit 1.
            raise ConfigError(
                f"the API key {mask_key(self.api_key)} holds a space or a character no key has"
                " (outside ASCII): set KLAVIYO_API_KEY to the private key (pk_…) as Klaviyo shows it"
            )
        if not self.allow_insecure and not key_travels_safely(self.base_url):
            raise ConfigError(
                f"refusing to send the API key over plain HTTP to {self.base_url}: use https://, "
                "or pass --allow-insecure"
            )
        return self.api_key

    def __repr__(self) -> str:  # never leak the key into logs or tracebacks
        return (
            f"Settings(db_path={str(self.db_path)!r}, api_key={mask_key(self.api_key)!r}, "
            f"base_url={self.base_url!r}, revision={self.revision!r})"
        )


def key_travels_safely(base_url: str) -> bool:
    """Whether a request to `base_url` keeps the key off the network in clear text: HTTPS, or
    plain HTTP to a loopback address (the sandbox, a local proxy)."""
    parts = urlsplit(base_url)
    if parts.scheme.lower() != "http":
        return True
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
