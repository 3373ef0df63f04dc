"""Klaviyo's own campaign and flow figures, from the Reporting API (the `reports` stream)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING, Any

from klaviyo_etl import conventions as kc
from klaviyo_etl.db.conversion import conversion_metric
from klaviyo_etl.db.local_days import local_days
from klaviyo_etl.sync.streams.base import Stream

if TYPE_CHECKING:
    from klaviyo_etl.db.repositories import Repository
    from klaviyo_etl.sync.run import StreamRun

REPORT_STATISTICS = [
    "recipients",
    "delivered",
    "opens",
    "opens_unique",
    "open_rate",
    "clicks",
    "clicks_unique",
    "click_rate",
    "click_to_open_rate",
    "conversions",
    "conversion_uniques",
    "conversion_value",
    "conversion_rate",
    "revenue_per_recipient",
    "unsubscribes",
    "unsubscribe_uniques",
    "unsubscribe_rate",
    "bounced",
    "bounce_rate",
    "failed",
    "failed_rate",
    "spam_complaints",
    "spam_complaint_rate",
]


# The Reporting API names channels its own way; store them as the campaigns table does.
REPORT_CHANNELS = {"push-notification": "mobile_push"}


class ReportingStream(Stream):
    """Klaviyo's own campaign and flow figures (Reporting API), for checking ours against.

    These endpoints allow 2 requests a minute and 225 a day, so ids go in batches of 100
    per request and only the two values reports are asked for.
    """

    name = "reports"
    BATCH = 100
    REPORTS = (
        (
            "campaign-values",
            "/api/campaign-values-reports",
            "campaign-values-report",
            "campaign_id",
            "campaign_message_id",
            "campaigns",
        ),
        (
            "flow-values",
            "/api/flow-values-reports",
            "flow-values-report",
            "flow_id",
            "flow_message_id",
            "flows",
        ),
    )

    def __init__(self, timeframe: str = "last_365_days"):
        self.timeframe = timeframe

    def params(self) -> dict[str, Any]:
        """The posts carry no query parameters: everything is in the `body`."""
        return {}

    def timeframe_bounds(self, today: dt.date) -> dict[str, str]:
        """The timeframe posted: the key's days as explicit bounds ending at the start of
        `today` (a key of no fixed length, e.g. `last_month`, as it is).

        Klaviyo resolves a key by its own clock when each request arrives. At 2 requests a
        minute a run may straddle midnight, and our clock may be off Klaviyo's, so the day a
        stored key ended on was a guess; with bounds, a stored row says which days Klaviyo
        counted. Klaviyo reads both on the company's clock (spec `CustomTimeframe`: the offset
        is ignored), so `today` is the account's day (`run`: `local_days`) and the bounds are
        its midnights written as wall-clock times.
        """
        days = kc.TIMEFRAME_DAYS.get(self.timeframe)
        if days is None:
            return {"key": self.timeframe}
        end = dt.datetime.combine(today, dt.time(), dt.UTC)
        return {"start": (end - dt.timedelta(days=days)).isoformat(), "end": end.isoformat()}

    def body(
        self, rtype: str, id_key: str, ids: list[str], metric_id: str, today: dt.date | None = None
    ) -> dict[str, Any]:
        """What one batch of ids posts to a values report (`today`: Klaviyo's date, default ours)."""
        today = today or dt.datetime.now(dt.UTC).date()
        return {
            "data": {
                "type": rtype,
                "attributes": {
                    "statistics": REPORT_STATISTICS,
                    "timeframe": self.timeframe_bounds(today),
                    "conversion_metric_id": metric_id,
                    "filter": f"contains-any({id_key},{json.dumps(ids)})",
                },
            }
        }

    async def run(self, run: StreamRun) -> None:
        # The same conversion metric our rollups count (configured, or the busiest Placed Order).
        picked = await run.read(lambda repo: conversion_metric(repo.db, run.options.conversion_metric))
        if picked is None:
            run.note = f"no {kc.PLACED_ORDER!r} metric synced yet; run `sync metrics` first"
            return
        metric_id = picked.id
        fetched = run.now_iso()
        # Every batch asks about the same days: those before the account's today, as Klaviyo
        # counts them (UTC's when the account is not synced).
        days = await run.read(lambda repo: local_days(repo.db))
        today = days.today(run.server_now())
        timeframe = self.timeframe_bounds(today)
        since = (run.started - dt.timedelta(days=366)).isoformat()
        for report, path, rtype, id_key, message_key, table in self.REPORTS:
            # Only what can have figures in the timeframe: every request spends the tight
            # daily budget, so drafts and long-past campaigns are not asked about.
            ids = await run.read(lambda repo, table=table: repo.reportable_ids(table, since))
            for start in range(0, len(ids), self.BATCH):
                batch = ids[start : start + self.BATCH]
                response = await run.post(path, self.body(rtype, id_key, batch, metric_id, today))
                results = ((response.get("data") or {}).get("attributes") or {}).get("results", [])
                rows = []
                for item in results:
                    g = item.get("groupings") or {}
                    key = "|".join(
                        [
                            report,
                            str(g.get(id_key)),
                            str(g.get(message_key)),
                            str(g.get("send_channel")),
                            self.timeframe,
                        ]
                    )
                    rows.append(
                        {
                            "id": hashlib.sha1(key.encode()).hexdigest(),
                            "report": report,
                            "entity_id": g.get(id_key),
                            "message_id": g.get(message_key),
                            "channel": REPORT_CHANNELS.get(g.get("send_channel"), g.get("send_channel")),
                            "timeframe_start": timeframe.get("start", self.timeframe),
                            "timeframe_end": timeframe.get("end", fetched),
                            "conversion_metric_id": metric_id,
                            "statistics": json.dumps(item.get("statistics") or {}),
                            "fetched_at": fetched,
                        }
                    )

                def commit(repo: Repository, rows=rows, batch=batch, report=report) -> int:
                    return repo.replace_report_values(report, batch, rows)

                await run.commit(commit, len(rows))
