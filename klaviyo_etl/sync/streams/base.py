"""Streams describe *what* to fetch from Klaviyo and where it lands; the client does the HTTP.

Every stream writes each page together with its new watermark in one transaction (through
the single writer), so a crash can never leave the watermark ahead of the stored rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from klaviyo_etl import conventions as kc
from klaviyo_etl.endpoints import Endpoint, contract
from klaviyo_etl.models import Page, Resource
from klaviyo_etl.sync.concurrency import gather_or_cancel
from klaviyo_etl.sync.filters import and_, fmt_time, parse_time, quote, time_range
from klaviyo_etl.sync.parsing import parse_rows

if TYPE_CHECKING:
    from klaviyo_etl.db.repositories import Repository
    from klaviyo_etl.sync.engine import StreamRun

CAMPAIGN_CHANNELS = ("email", "sms", "mobile_push")


def _page_params(endpoint: Endpoint, **params: Any) -> dict[str, Any]:
    out = {k: v for k, v in params.items() if v is not None}
    if endpoint.page_size_param and endpoint.page_size_max:
        out[endpoint.page_size_param] = endpoint.page_size_max
    return out


def _latest(resources: list[Resource], field: str) -> str | None:
    values = [r.attributes.get(field) for r in resources if r.attributes.get(field)]
    return max(values, key=parse_time) if values else None


def _later(a: str | None, b: str | None) -> str | None:
    if not a or not b:
        return a or b
    return a if parse_time(a) >= parse_time(b) else b


class Stream:
    """One named stream. Subclasses implement `run`."""

    name: str
    table: str | None = None  # what reconciliation checks for deletions
    reconcilable = False

    async def run(self, run: StreamRun) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class ResourceStream(Stream):
    """A top-level collection, incremental on the endpoint's `updated` field where it has one.

    `variants` splits a collection that needs a required filter (campaign channels) into
    scans with their own watermarks, kept in `sync_state.extra`.
    """

    def __init__(
        self,
        name: str,
        path: str,
        table: str,
        *,
        include: str | None = None,
        reconcilable: bool = True,
        variants: tuple[str | None, ...] = (None,),
    ):
        self.name = name
        self.endpoint = contract().by_path(path)
        self.table = table
        self.include = include
        self.reconcilable = reconcilable
        self.variants = variants

    def variant_filter(self, variant: str | None) -> str | None:
        return None

    def fill(self, variant: str | None, page: Page) -> Callable[[Resource], dict] | None:
        """Columns the API does not put on a resource (its parent, its channel)."""
        return None

    async def run(self, run: StreamRun) -> None:
        state = run.state
        field = self.endpoint.incremental_filter_field
        sortable = field is not None and field in (self.endpoint.sort_fields or [])
        full = run.full_scan or field is None
        scan_started = run.now_iso()
        for variant in self.variants:
            key = variant or "_"
            mark = None if full else (run.since or state.extra.get(key) or state.watermark)
            params = _page_params(
                self.endpoint,
                filter=and_(
                    self.variant_filter(variant),
                    time_range(self.endpoint, parse_time(mark), None) if mark else None,
                ),
                sort=field if sortable else None,
                include=self.include,
            )
            seen_mark = mark
            async for page in run.pages(self.endpoint.path, params):
                if field:
                    seen_mark = _later(seen_mark, _latest(page.data, field))
                if sortable and seen_mark:
                    state.extra[key] = seen_mark
                fill = self.fill(variant, page)

                def commit(repo: Repository, page=page, fill=fill) -> int:
                    n = repo.write_resources(page.data, fill)
                    repo.write_resources(page.included, fill)
                    self.write_links(repo, page)
                    return n

                await run.commit(commit, len(page.data))
            if field and seen_mark:
                state.extra[key] = seen_mark
        marks = [state.extra.get(v or "_") for v in self.variants]
        if all(marks):
            state.watermark = min(marks, key=parse_time)

        def finish(repo: Repository) -> None:
            if run.full_scan or field is None:
                run.deleted += self.mark_deleted(repo, scan_started)

        await run.commit(finish, **({"last_reconcile_at": scan_started} if run.full_scan else {}))

    def mark_deleted(self, repo: Repository, scan_started: str) -> int:
        return repo.mark_deleted(self.table, scan_started) if self.reconcilable else 0

    def write_links(self, repo: Repository, page: Page) -> None:
        links = [(r.id, t) for r in page.data for t in r.related_ids("tags")]
        if links:
            repo.write_tag_links(self.table, links)


class CampaignStream(ResourceStream):
    """Campaigns per channel, with their messages and tags included in the same pages."""

    def __init__(self) -> None:
        super().__init__(
            "campaigns",
            "/api/campaigns",
            "campaigns",
            include="campaign-messages,tags",
            variants=CAMPAIGN_CHANNELS,
        )

    def variant_filter(self, variant: str | None) -> str | None:
        return f"equals(messages.channel,{quote(variant or 'email')})"

    def fill(self, variant: str | None, page: Page) -> Callable[[Resource], dict]:
        parent = {m: c.id for c in page.data for m in c.related_ids("campaign-messages")}

        def columns(r: Resource) -> dict:
            if r.type == "campaign":
                return {"channel": variant}
            if r.type == "campaign-message":
                return {"campaign_id": parent.get(r.id), "channel": variant}
            return {}

        return columns

    def mark_deleted(self, repo: Repository, scan_started: str) -> int:
        n = super().mark_deleted(repo, scan_started)
        repo.db.execute(
            "UPDATE campaign_messages SET deleted_at = ? WHERE deleted_at IS NULL AND campaign_id "
            "IN (SELECT id FROM campaigns WHERE deleted_at IS NOT NULL)",
            [scan_started],
        )
        return n


class FlowStream(ResourceStream):
    """Flows with their actions included (one S-tier request per 50 flows, not per flow)."""

    def __init__(self) -> None:
        super().__init__("flows", "/api/flows", "flows", include="flow-actions,tags")

    def fill(self, variant: str | None, page: Page) -> Callable[[Resource], dict]:
        parent = {a: f.id for f in page.data for a in f.related_ids("flow-actions")}
        return lambda r: {"flow_id": parent.get(r.id)} if r.type == "flow-action" else {}

    def mark_deleted(self, repo: Repository, scan_started: str) -> int:
        n = super().mark_deleted(repo, scan_started)
        for table, col in (("flow_actions", "flow_id"), ("flow_messages", "flow_id")):
            repo.db.execute(
                f"UPDATE {table} SET deleted_at = ? WHERE deleted_at IS NULL AND {col} "
                "IN (SELECT id FROM flows WHERE deleted_at IS NOT NULL)",
                [scan_started],
            )
        return n


class ChildStream(Stream):
    """Collections under each parent row (list members, segment members, flow messages).

    Each parent keeps its own watermark in `extra`; a full scan of a parent replaces its
    membership, flagging members that left. Children of deleted parents are flagged too.
    """

    reconcilable = True

    def __init__(
        self,
        name: str,
        path: str,
        *,
        parent_table: str,
        parent_col: str,
        table: str,
        members: bool,
        parent_where: str = "",
        concurrency: int = 4,
    ):
        self.name = name
        self.endpoint = contract().by_path(path)
        self.parent_table = parent_table
        self.parent_col = parent_col
        self.table = table
        self.members = members
        self.parent_where = parent_where
        self.concurrency = concurrency

    def parent_fill(self, parent: dict[str, Any]) -> dict[str, Any]:
        return {self.parent_col: parent["id"]}

    async def run(self, run: StreamRun) -> None:
        state = run.state
        where = f" AND ({self.parent_where})" if self.parent_where else ""
        parents = await run.query(f"SELECT * FROM [{self.parent_table}] WHERE deleted_at IS NULL{where}")
        field = self.endpoint.incremental_filter_field
        sortable = field is not None and field in (self.endpoint.sort_fields or [])
        gate = asyncio.Semaphore(self.concurrency)

        async def one(parent: dict[str, Any]) -> None:
            parent_id = parent["id"]
            async with gate:
                scan_started = run.now_iso()
                mark = None if run.full_scan else (run.since or state.extra.get(parent_id))
                params = _page_params(
                    self.endpoint,
                    filter=time_range(self.endpoint, parse_time(mark), None) if mark else None,
                    sort=field if sortable else None,
                )
                seen = mark
                async for page in run.pages(self.endpoint.path.replace("{id}", parent_id), params):
                    if field:
                        seen = _later(seen, _latest(page.data, field))
                    if sortable and seen:
                        state.extra[parent_id] = seen

                    def commit(repo: Repository, page=page) -> int:
                        if self.members:
                            n = repo.write_members(self.table, self.parent_col, parent_id, page.data)
                        else:
                            fill = self.parent_fill(parent)
                            n = repo.write_resources(page.data, lambda r: fill)
                        return n

                    await run.commit(commit, len(page.data))
                if seen:
                    state.extra[parent_id] = seen

                def finish(repo: Repository) -> None:
                    if run.full_scan:
                        run.deleted += repo.mark_deleted(
                            self.table, scan_started, where=f"[{self.parent_col}] = ?", params=(parent_id,)
                        )

                await run.commit(finish)

        await gather_or_cancel(*(one(parent) for parent in parents))
        alive = {parent["id"] for parent in parents}

        for pid in [p for p in state.extra if p not in alive]:
            state.extra.pop(pid)
        state.watermark = run.started_iso
        now = run.now_iso()

        def finish_all(repo: Repository) -> None:
            repo.db.execute(
                f"UPDATE [{self.table}] SET deleted_at = ? WHERE deleted_at IS NULL AND "
                f"[{self.parent_col}] IN (SELECT id FROM [{self.parent_table}] "
                "WHERE deleted_at IS NOT NULL)",
                [now],
            )

        await run.commit(finish_all, **({"last_reconcile_at": now} if run.full_scan else {}))


class FlowMessageStream(ChildStream):
    def __init__(self) -> None:
        super().__init__(
            "flow_messages",
            "/api/flow-actions/{id}/flow-messages",
            parent_table="flow_actions",
            parent_col="flow_action_id",
            table="flow_messages",
            members=False,
            # Only sending actions have messages; each request is S-tier (3/s, 60/min).
            parent_where="action_type IS NULL OR action_type IN "
            "('send-email', 'send-sms', 'send-mobile-push', 'send-whatsapp')",
        )

    def parent_fill(self, parent: dict[str, Any]) -> dict[str, Any]:
        return {"flow_action_id": parent["id"], "flow_id": parent["flow_id"]}


@dataclass
class Window:
    lo: dt.datetime
    hi: dt.datetime
    progress: dt.datetime
    done: bool = False


class WindowedStream(Stream):
    """A big collection fetched as time windows in parallel (events by datetime, profiles by updated).

    Each window is read in ascending order, so its progress is the last value seen. The
    stored watermark is the lowest progress of any unfinished window: everything before it
    is stored, whatever order the windows finish in, and a killed run resumes from there.
    """

    def __init__(
        self,
        name: str,
        path: str,
        table: str,
        *,
        concurrency: int,
        min_window: dt.timedelta,
        lookback: bool = False,
        extra_params: Callable[[StreamRun], dict[str, Any]] | None = None,
        reconcilable: bool = False,
        bulk_load: bool = False,
    ):
        self.name = name
        self.bulk_load = bulk_load
        self.endpoint = contract().by_path(path)
        self.field = self.endpoint.incremental_filter_field or ""
        self.table = table
        self.concurrency = concurrency
        self.min_window = min_window
        self.lookback = lookback
        self.extra_params = extra_params or (lambda run: {})
        self.reconcilable = reconcilable

    async def earliest(self, run: StreamRun) -> dt.datetime | None:
        params = {"sort": self.field, "fields[" + self.endpoint.resource + "]": self.field}
        if self.endpoint.page_size_param:
            params[self.endpoint.page_size_param] = 1
        async for page in run.pages(self.endpoint.path, params):
            values = [r.attributes.get(self.field) for r in page.data]
            return parse_time(values[0]) if values and values[0] else None
        return None

    def plan(self, lo: dt.datetime, hi: dt.datetime) -> list[Window]:
        span = hi - lo
        count = max(1, min(256, int(span / self.min_window)))
        count = min(count, max(self.concurrency * 8, 1)) if span > self.min_window else 1
        step = span / count
        edges = [lo + step * i for i in range(count)] + [hi]
        return [Window(edges[i], edges[i + 1], edges[i]) for i in range(count)]

    async def run(self, run: StreamRun) -> None:
        state = run.state
        hi = run.started - run.safety_lag
        if run.since:
            lo = parse_time(run.since)
        elif state.watermark and not run.full_scan:
            lo = parse_time(state.watermark)
            if self.lookback:
                lo -= run.lookback
        else:
            lo = await self.earliest(run)
        scan_started = run.now_iso()
        # Bulk mode: a first load into an empty table goes in without secondary indexes
        # (built again once, below); an interrupted one leaves them listed for the next run.
        bulk = self.bulk_load and not await run.query(f"SELECT 1 FROM [{self.table}] LIMIT 1")
        if bulk:
            await run.commit(lambda repo: repo.defer_indexes(self.table))
        if lo is not None and lo < run.started:
            # The last window is open-ended, so rows newer than the start (or stamped ahead by
            # a skewed clock) are read too; the watermark stops at `hi` = start - safety lag,
            # so the newest rows are read again next time rather than risk missing late ones.
            windows = self.plan(lo, run.started)
            await self.fetch(run, windows, hi, bulk)
        final = max(hi, parse_time(state.watermark)) if state.watermark else hi
        state.watermark = fmt_time(final).replace("Z", "+00:00")

        complete_scan = run.full_scan and not run.since

        def finish(repo: Repository) -> None:
            if complete_scan and self.reconcilable and lo is not None:
                run.deleted += repo.mark_deleted(self.table, scan_started)
            repo.restore_indexes(self.table)

        await run.commit(finish, **({"last_reconcile_at": scan_started} if complete_scan else {}))

    async def fetch(self, run: StreamRun, windows: list[Window], hi: dt.datetime, bulk: bool) -> None:
        queue: asyncio.Queue[Window] = asyncio.Queue()
        for w in windows:
            queue.put_nowait(w)
        state = run.state
        # A bulk load parses in worker processes (CPU-bound: one GIL is not enough);
        # the small incremental runs parse in-process and skip starting a pool.
        parsing = {
            "parse": functools.partial(parse_rows, field_name=self.field),
            "executor": run.pools.get() if bulk and run.pools else None,
        }

        def watermark() -> str:
            open_ = [w.progress for w in windows if not w.done]
            low = min(open_) if open_ else windows[-1].hi
            low = min(low, hi)
            return fmt_time(low).replace("Z", "+00:00")

        async def worker() -> None:
            while not queue.empty():
                w = queue.get_nowait()
                params = _page_params(
                    self.endpoint,
                    filter=time_range(self.endpoint, w.lo, None if w is windows[-1] else w.hi),
                    sort=self.field,
                    **self.extra_params(run),
                )
                async for page in run.pages(self.endpoint.path, params, **parsing):
                    if page.last:
                        w.progress = max(w.progress, parse_time(page.last))
                    if not page.links.next:
                        w.done = True
                    state.watermark = watermark()
                    await run.commit(lambda repo, page=page: repo.write_rows(page.rows), page.count)
                w.done = True

        await gather_or_cancel(*(worker() for _ in range(min(self.concurrency, len(windows)))))


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

    ENTITIES = {
        "campaigns": "SELECT id FROM campaigns WHERE deleted_at IS NULL AND send_time >= ?"
        " AND lower(coalesce(status, '')) NOT IN ('draft', 'cancelled', 'canceled') ORDER BY id",
        "flows": "SELECT id FROM flows WHERE deleted_at IS NULL AND ? IS NOT NULL"
        " AND lower(coalesce(status, '')) != 'draft' ORDER BY id",
    }

    def __init__(self, timeframe: str = "last_365_days"):
        self.timeframe = timeframe

    async def run(self, run: StreamRun) -> None:
        metric = await run.query(
            "SELECT id FROM metrics WHERE name = ? AND deleted_at IS NULL", [kc.PLACED_ORDER]
        )
        if not metric:
            run.note = f"no {kc.PLACED_ORDER!r} metric synced yet; run `sync metrics` first"
            return
        metric_id = metric[0]["id"]
        fetched = run.now_iso()
        since = (run.started - dt.timedelta(days=366)).isoformat()
        for report, path, rtype, id_key, message_key, table in self.REPORTS:
            # Only what can have figures in the timeframe: every request spends the tight
            # daily budget, so drafts and long-past campaigns are not asked about.
            ids = [r["id"] for r in await run.query(self.ENTITIES[table], [since])]
            for start in range(0, len(ids), self.BATCH):
                batch = ids[start : start + self.BATCH]
                body = {
                    "data": {
                        "type": rtype,
                        "attributes": {
                            "statistics": REPORT_STATISTICS,
                            "timeframe": {"key": self.timeframe},
                            "conversion_metric_id": metric_id,
                            "filter": f"contains-any({id_key},{json.dumps(batch)})",
                        },
                    }
                }
                response = await run.post(path, body)
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
                            "timeframe_start": self.timeframe,
                            "timeframe_end": fetched,
                            "conversion_metric_id": metric_id,
                            "statistics": json.dumps(item.get("statistics") or {}),
                            "fetched_at": fetched,
                        }
                    )

                def commit(repo: Repository, rows=rows) -> int:
                    return repo.upsert("report_values", rows)

                await run.commit(commit, len(rows))


def _profile_params(run: StreamRun) -> dict[str, Any]:
    fields = ["subscriptions"] + (["predictive_analytics"] if run.options.predictive else [])
    return {"additional-fields[profile]": ",".join(fields)}


def build_streams() -> dict[str, Stream]:
    streams: list[Stream] = [
        ResourceStream("metrics", "/api/metrics", "metrics"),
        WindowedStream(
            "events",
            "/api/events",
            "events",
            concurrency=8,
            min_window=dt.timedelta(hours=6),
            lookback=True,
            bulk_load=True,
        ),
        WindowedStream(
            "profiles",
            "/api/profiles",
            "profiles",
            concurrency=4,
            min_window=dt.timedelta(days=2),
            extra_params=_profile_params,
            reconcilable=True,
            bulk_load=True,
        ),
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


from klaviyo_etl.sync.names import ALIASES, DEPENDS_ON, STREAM_NAMES, resolve  # noqa: E402,F401
