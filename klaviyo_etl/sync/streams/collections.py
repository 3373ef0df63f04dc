"""Top-level collections (the account, metrics, lists, segments, campaigns, flows, forms,
templates, tags)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from klaviyo_etl import conventions as kc
from klaviyo_etl.endpoints import contract
from klaviyo_etl.errors import AuthError, FatalError, StreamSkipped
from klaviyo_etl.sync.filters import and_, quote, time_range
from klaviyo_etl.sync.streams.base import (
    Stream,
    clamp,
    earlier,
    later,
    latest,
    page_params,
    sort_field,
)
from klaviyo_etl.timeutil import parse_time

if TYPE_CHECKING:
    from klaviyo_etl.db.repositories import Repository
    from klaviyo_etl.models import Page, Resource
    from klaviyo_etl.sync.run import StreamRun


class ResourceStream(Stream):
    """A top-level collection, incremental on the endpoint's `updated` field where it has one.

    `variants` splits a collection into scans with their own watermarks, kept in
    `sync_state.extra`: campaign channels (the endpoint requires one in its filter), and the
    archived set of campaigns and flows, which Klaviyo lists only when the filter asks for
    `equals(archived,true)`. Every variant is part of a full scan, so a reconcile never
    flags an archived item deleted.
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

    def params(self, variant: str | None = None, mark: dt.datetime | None = None) -> dict[str, Any]:
        """The first page's query for one variant: from `mark` on, or everything (no mark)."""
        return page_params(
            self.endpoint,
            filter=and_(
                self.variant_filter(variant),
                time_range(self.endpoint, mark, None) if mark else None,
            ),
            sort=sort_field(self.endpoint),
            include=self.include,
        )

    def fill(self, variant: str | None, page: Page) -> Callable[[Resource], dict] | None:
        """Columns the API does not put on a resource (its parent, its channel)."""
        return None

    def first_mark(self, variant: str | None, state_watermark: str | None) -> str | None:
        """Where a variant without a watermark of its own starts: the stream's watermark
        (stored before variants existed), except for an archived set, read whole once."""
        return None if is_archived(variant) else state_watermark

    async def run(self, run: StreamRun) -> None:
        state = run.state
        field = self.endpoint.incremental_filter_field
        sortable = sort_field(self.endpoint) is not None
        full = run.full_scan or field is None
        scan_started = run.now_iso()
        for variant in self.variants:
            key = variant or "_"
            stored = clamp(state.extra.get(key) or self.first_mark(variant, state.watermark), run.started)
            mark = None if full else earlier(run.since, stored)
            params = self.params(variant, parse_time(mark) if mark else None)
            seen_mark = mark
            async for page in run.pages(self.endpoint.path, params):
                if field:
                    seen_mark = clamp(later(seen_mark, latest(page.data, field)), run.started)
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
        # The stream's watermark: the oldest of the non-archived scans (an archived set may be
        # empty and so never get one).
        marks = [state.extra.get(v or "_") for v in self.variants if not is_archived(v)]
        if marks and all(marks):
            state.watermark = min(marks, key=parse_time)

        def finish(repo: Repository) -> None:
            if run.full_scan or field is None:
                run.deleted += self.mark_deleted(repo, scan_started)

        await run.commit(finish, **({"last_reconcile_at": scan_started} if run.full_scan else {}))

    def mark_deleted(self, repo: Repository, scan_started: str) -> int:
        n = repo.mark_deleted(self.table, scan_started) if self.reconcilable else 0
        repo.drop_links_to_deleted_tags()  # a removed tag tags nothing
        return n

    def write_links(self, repo: Repository, page: Page) -> None:
        if self.include and "tags" in self.include.split(","):
            repo.replace_tag_links(self.table, {r.id: r.related_ids("tags") for r in page.data})


ARCHIVED = "archived"  # the variant suffix of an archived set: "archived", "email:archived"


def is_archived(variant: str | None) -> bool:
    return bool(variant) and variant.rpartition(":")[2] == ARCHIVED


def archived_filter(variant: str | None) -> str | None:
    """Klaviyo hides archived campaigns and flows unless the filter asks for them."""
    return f"equals({ARCHIVED},true)" if is_archived(variant) else None


class CampaignStream(ResourceStream):
    """Campaigns per channel, archived ones too, with their messages and tags in the same pages."""

    def __init__(self) -> None:
        super().__init__(
            "campaigns",
            "/api/campaigns",
            "campaigns",
            include="campaign-messages,tags",
            variants=(
                *kc.CAMPAIGN_CHANNELS,
                *(f"{channel}:{ARCHIVED}" for channel in kc.CAMPAIGN_CHANNELS),
            ),
        )

    @staticmethod
    def channel(variant: str | None) -> str:
        return (variant or "email").partition(":")[0]

    def variant_filter(self, variant: str | None) -> str | None:
        return and_(f"equals(messages.channel,{quote(self.channel(variant))})", archived_filter(variant))

    def fill(self, variant: str | None, page: Page) -> Callable[[Resource], dict]:
        parent = {m: c.id for c in page.data for m in c.related_ids("campaign-messages")}
        channel = self.channel(variant)

        def columns(r: Resource) -> dict:
            if r.type == "campaign":
                return {"channel": channel}
            if r.type == "campaign-message":
                return {"campaign_id": parent.get(r.id), "channel": channel}
            return {}

        return columns

    def mark_deleted(self, repo: Repository, scan_started: str) -> int:
        # Every campaign's page includes all of its messages: one the scan did not include
        # is gone, even when its campaign is still live.
        n = super().mark_deleted(repo, scan_started)
        n += repo.mark_deleted("campaign_messages", scan_started)
        repo.mark_orphans_deleted("campaign_messages", "campaign_id", "campaigns", scan_started)
        return n


class FlowStream(ResourceStream):
    """Flows, archived ones too, with their actions included (one S-tier request per 50
    flows, not per flow)."""

    def __init__(self) -> None:
        super().__init__(
            "flows", "/api/flows", "flows", include="flow-actions,tags", variants=(None, ARCHIVED)
        )

    def variant_filter(self, variant: str | None) -> str | None:
        return archived_filter(variant)

    def fill(self, variant: str | None, page: Page) -> Callable[[Resource], dict]:
        parent = {a: f.id for f in page.data for a in f.related_ids("flow-actions")}
        return lambda r: {"flow_id": parent.get(r.id)} if r.type == "flow-action" else {}

    def mark_deleted(self, repo: Repository, scan_started: str) -> int:
        # Every flow's page includes all of its actions: an action the scan did not include
        # was removed from its flow (live flows lose actions all the time), with its messages.
        n = super().mark_deleted(repo, scan_started)
        n += repo.mark_deleted("flow_actions", scan_started)
        for table in ("flow_actions", "flow_messages"):
            repo.mark_orphans_deleted(table, "flow_id", "flows", scan_started)
        repo.mark_orphans_deleted("flow_messages", "flow_action_id", "flow_actions", scan_started)
        return n


class AccountStream(ResourceStream):
    """The account the key belongs to (`GET /api/accounts`: one object, scope `accounts:read`).

    Read whole every run (one XS-tier request). The tool uses it for what it says, never
    for a figure: the account's preferred currency names the money of orders that name none
    (`reports/currency.py`), and its timezone tells `check` why Klaviyo's figures may count
    other days than ours.

    A key without `accounts:read` (a 403) skips this stream with a note instead of failing it.
    A failed stream fails the run (exit 1), and an older key made for the other streams lacks
    this scope: every cron run would then fail, for ever, over a field shown for display.
    Skipped, the run's exit code is unaffected, and the reason is still said where a missing
    scope of another stream is: beside the run (`accounts: skipped because ...`, even under
    `--quiet`), in `sync_runs` and `status`, and in `check` (as an optional scope). Without
    the account, the reports say what they said before it was synced. A 401 is still fatal.
    """

    optional = True

    def __init__(self) -> None:
        super().__init__("accounts", "/api/accounts", "accounts")

    async def run(self, run: StreamRun) -> None:
        try:
            await super().run(run)
        except AuthError as exc:
            if isinstance(exc, FatalError):  # 401: the key itself, for every stream alike
                raise
            scope = ", ".join(self.endpoint.scopes)
            raise StreamSkipped(
                f"the API key lacks {scope}: add it to show the account's preferred currency and"
                " timezone, or turn the stream off in the config file's schedule"
                f' ({self.name} = "off")'
            ) from exc
