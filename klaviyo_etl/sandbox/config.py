"""The sandbox's knobs: how much data to generate and how hostile the server should be."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

DEFAULT_API_KEY = "pk_sandbox_0000000000000000000000000000abcd"


def default_now() -> datetime:
    """The current UTC time truncated to the hour, so a seed gives the same data all hour."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class SandboxConfig:
    """Data size (read once by `SandboxData.generate`) and server behaviour (read per request,
    so a test may change `fault_rate`, `latency_ms` or `rate_limits` while the server runs)."""

    seed: int = 7
    profiles: int = 300
    events: int = 3000
    campaigns: int = 16  # about half of those after the first three are not sends
    flows: int = 4
    lists: int = 4
    segments: int = 3
    forms: int = 3
    templates: int = 8
    tags: int = 5
    days: int = 120  # events spread over the last `days` days before `now`
    api_key: str = DEFAULT_API_KEY
    latency_ms: float = 0.0  # slept before answering each request
    fault_rate: float = 0.0  # fraction of requests answered with a 5xx, a drop or a short body
    rate_limits: bool = False  # enforce Klaviyo's per-endpoint burst/steady windows
    rate_limit_scale: float = 1.0  # multiplies allowed request counts; <1 provokes 429s cheaply
    now: datetime | None = None  # the instant the data is anchored to (default: this hour)
    # Scopes the key lacks (e.g. "campaigns:read"): endpoints needing one answer 403.
    missing_scopes: frozenset[str] = field(default_factory=frozenset)
    # The company's account (`GET /api/accounts`). The Reporting API counts a timeframe's
    # days in its timezone, as Klaviyo does (LIVE_BEHAVIOUR.md §6, §8).
    timezone: str = "UTC"
    preferred_currency: str = "USD"
    # The account's "exclude bot clicks" setting (email and SMS): on, Klaviyo's reporting and
    # so its Reporting API leave clicks whose `Bot Click` is true out of clicks and click
    # rates. On by default for accounts made since 2024-08-27 (LIVE_BEHAVIOUR.md §12).
    exclude_bot_clicks: bool = True
    # Its id: another value stands for another company's account (a key for the wrong one).
    account_id: str = "SbxAcct"

    def anchored_now(self) -> datetime:
        now = self.now or default_now()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.astimezone(UTC)
