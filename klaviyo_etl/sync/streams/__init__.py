"""The streams: what to fetch from Klaviyo and where it lands, one file per kind.

- `base`: the `Stream` interface and the paging and watermark helpers;
- `collections`: top-level collections (`ResourceStream`, the account, campaigns, flows);
- `children`: collections under each parent row (members, flow messages);
- `windowed`: big collections in parallel time windows (events, profiles);
- `reporting`: Klaviyo's own figures from the Reporting API.

`build_streams()` is the registry: every stream by name. Their names, aliases and
dependencies live in `klaviyo_etl.sync.names`, which is cheap to import.
"""

from __future__ import annotations

import datetime as dt

from klaviyo_etl.sync.streams.base import Stream
from klaviyo_etl.sync.streams.children import ChildStream, FlowMessageStream
from klaviyo_etl.sync.streams.collections import (
    AccountStream,
    CampaignStream,
    FlowStream,
    ResourceStream,
)
from klaviyo_etl.sync.streams.reporting import ReportingStream
from klaviyo_etl.sync.streams.windowed import ProfileStream, WindowedStream

__all__ = [
    "AccountStream",
    "CampaignStream",
    "ChildStream",
    "FlowMessageStream",
    "FlowStream",
    "ProfileStream",
    "ReportingStream",
    "ResourceStream",
    "Stream",
    "WindowedStream",
    "build_streams",
]


def build_streams() -> dict[str, Stream]:
    streams: list[Stream] = [
        # First: its timezone says what a day is for the rollups the events build and for the
        # Reporting API's timeframe (`db/local_days.py`); one request.
        AccountStream(),
        ResourceStream("metrics", "/api/metrics", "metrics"),
        WindowedStream(
            "events",
            "/api/events",
            "events",
            concurrency=8,
            min_window=dt.timedelta(hours=6),
            lookback=True,
            bulk_load=True,
            # 16 windows, not 64: the partial last pages of 64 cost a 200-page first load
            # ~48 requests (a quarter of its time under the limit; issue 12).
            windows_per_worker=2,
            prebuilds_rollups=True,
        ),
        ProfileStream(),
        ResourceStream("lists", "/api/lists", "lists", include="tags"),
        ChildStream(
            "list_members",
            "/api/lists/{id}/profiles",
            parent_table="lists",
            parent_col="list_id",
            table="list_members",
            members=True,
        ),
        ResourceStream("segments", "/api/segments", "segments", include="tags"),
        ChildStream(
            "segment_members",
            "/api/segments/{id}/profiles",
            parent_table="segments",
            parent_col="segment_id",
            table="segment_members",
            members=True,
        ),
        CampaignStream(),
        FlowStream(),
        FlowMessageStream(),
        ResourceStream("forms", "/api/forms", "forms"),
        ResourceStream("templates", "/api/templates", "templates"),
        ResourceStream("tags", "/api/tags", "tags"),
        ReportingStream(),
    ]
    return {s.name: s for s in streams}
