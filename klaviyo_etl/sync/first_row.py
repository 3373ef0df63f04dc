"""Where a first load of a windowed stream starts: the time of its oldest row.

A first load (or a full scan) of events or profiles plans its windows from the oldest row,
and asking for it needs no clock: the request goes out beside the one for Klaviyo's clock.
On a database not created yet (no state to read) the engine sends it before the streams,
the database layer and pydantic are loaded (~0.1 s: issue 12), so this module is as cheap to
import as the client, and reads the one-row page without the models.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from klaviyo_etl.endpoints import Endpoint
from klaviyo_etl.jsonapi import is_resource
from klaviyo_etl.timeutil import parse_time

if TYPE_CHECKING:
    from klaviyo_etl.client import KlaviyoClient, RequestStats

# The windowed streams by the path they read (`build_streams` gives them the same paths;
# tests/sync/test_windowed.py checks that the two agree).
FIRST_ROW_PATHS = {"events": "/api/events", "profiles": "/api/profiles"}


def starts_at_first_row(since: str | None, watermark: str | None, full_scan: bool) -> bool:
    """Whether a run reads from the oldest row: no `--since`, and no mark to resume from or a
    full scan (`WindowedStream.run` plans its windows from there; the request for that row
    goes out beside the clock's)."""
    return not since and (not watermark or full_scan)


def first_row_params(endpoint: Endpoint) -> dict[str, Any]:
    """The oldest row's incremental field alone: one row, one field, ascending."""
    field = endpoint.incremental_filter_field or ""
    params: dict[str, Any] = {"sort": field, "fields[" + endpoint.resource + "]": field}
    if endpoint.page_size_param:
        params[endpoint.page_size_param] = 1
    return params


def first_attributes(body: bytes) -> dict[str, Any] | None:
    """The attributes of a page's first resource (None: no resource). `data` is one resource
    or a list of them, each an object with text `type` and `id` and object `attributes`, as
    the models require; any other body raises ValueError, as their rejection does, which the
    client retries as a body cut short on the wire."""
    doc = json.loads(body)
    data = doc.get("data") if isinstance(doc, dict) else None
    resources = [data] if isinstance(data, dict) else data
    if not isinstance(resources, list) or not all(is_resource(r) for r in resources):
        raise ValueError("not a page of JSON:API resources")
    return resources[0].get("attributes") or {} if resources else None


async def read_first_row(
    client: KlaviyoClient, endpoint: Endpoint, stats: RequestStats
) -> dt.datetime | None:
    """The time of `endpoint`'s oldest row (None: no rows, or the row has no time)."""
    attributes = await client.request(
        "GET", endpoint.path, params=first_row_params(endpoint), stats=stats, parse=first_attributes
    )
    value = (attributes or {}).get(endpoint.incremental_filter_field or "")
    return parse_time(value) if value else None
