"""What every stream shares: the `Stream` interface and the paging and watermark helpers.

Streams describe *what* to fetch from Klaviyo and where it lands; the client does the HTTP
and the repositories do the SQL. Every stream writes each page together with its new
watermark in one transaction (through the single writer), so a crash can never leave the
watermark ahead of the stored rows.

Each stream's `params(...)` returns the query parameters of the request it sends, so a test
can ask a stream what it will send (the contract tests do).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from klaviyo_etl.endpoints import Endpoint
from klaviyo_etl.timeutil import parse_time

if TYPE_CHECKING:
    from klaviyo_etl.client import KlaviyoClient, RequestStats
    from klaviyo_etl.models import Resource
    from klaviyo_etl.sync.run import StreamRun, SyncOptions
    from klaviyo_etl.sync.state import StreamState


def page_params(endpoint: Endpoint, **params: Any) -> dict[str, Any]:
    """`params` without the None values, plus the largest page the endpoint allows."""
    out = {k: v for k, v in params.items() if v is not None}
    if endpoint.page_size_param and endpoint.page_size_max:
        out[endpoint.page_size_param] = endpoint.page_size_max
    return out


def sort_field(endpoint: Endpoint) -> str | None:
    """The incremental field, if the endpoint can also sort by it (so progress is monotonic)."""
    field = endpoint.incremental_filter_field
    return field if field is not None and field in (endpoint.sort_fields or []) else None


def latest(resources: list[Resource], field: str) -> str | None:
    """The latest value of `field` on a page (None if no resource has it)."""
    values = [r.attributes.get(field) for r in resources if r.attributes.get(field)]
    return max(values, key=parse_time) if values else None


def earlier(a: str | None, b: str | None) -> str | None:
    """The earlier of two marks, either of which may be missing (`--since` against a stored
    mark: reading from the earlier one never skips rows the stored mark has not reached)."""
    if not a or not b:
        return a or b
    return a if parse_time(a) <= parse_time(b) else b


def clamp(mark: str | None, limit: dt.datetime) -> str | None:
    """A mark never past `limit` (the run's start): one row stamped in the future must not
    hold a stream back until that date."""
    if mark and parse_time(mark) > limit:
        return limit.isoformat(timespec="seconds")
    return mark


def later(a: str | None, b: str | None) -> str | None:
    """The later of two watermarks, either of which may be missing."""
    if not a or not b:
        return a or b
    return a if parse_time(a) >= parse_time(b) else b


class Stream:
    """One named stream. Subclasses implement `run` and `params`."""

    name: str
    table: str | None = None  # what reconciliation checks for deletions
    reconcilable = False
    # The tool does without it: a key lacking its scope skips it (`check`: an optional scope).
    optional = False

    async def before_clock(
        self,
        client: KlaviyoClient,
        state: StreamState,
        options: SyncOptions,
        full_scan: bool,
        stats: RequestStats,
    ) -> None:
        """Requests that need no clock, sent while Klaviyo's is being read (issue 12); `run`
        follows with what they found. None by default."""

    def use_first_row(self, found: dt.datetime | None) -> None:
        """Start from the oldest row's time, read before this stream was built (on a new
        database the engine sends that request beside the clock's: `sync/first_row.py`).
        Only the windowed streams start there."""
        raise TypeError(f"the {self.name} stream does not start at its oldest row")

    async def run(self, run: StreamRun) -> None:  # pragma: no cover - interface
        raise NotImplementedError
