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
            # 10 in flight, one window each (issue 12). Each window ends on a partial page,
            # and a first load's end waits on the request count: at 35 a second, 210
            # requests fill 6 bursts exactly and one more starts a 7th (~0.4 s). A 200-page
            # load took 210 requests in 16 windows (8 workers), 206 in 10; 64 windows took
            # ~248. More in flight sends the first burst sooner, and every later burst
            # follows its spread a second on. Measured in alternated `make bench` runs (4
            # each): 8 workers and 16 windows 0.894 of the ceiling, 10 and 10 0.901, 12 and
            # 12 0.900 (210 requests); 16 or 20 workers on 12-16 windows split them from
            # the start and took 216-219 requests (0.80). Idle workers still split the
            # busiest window, so lumpy data is balanced as before.
            concurrency=10,
            min_window=dt.timedelta(hours=6),
            lookback=True,
            bulk_load=True,
            windows_per_worker=1,
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
