"""Collections under each parent row (list members, segment members, flow messages)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any

from klaviyo_etl.endpoints import contract
from klaviyo_etl.errors import NotFound
from klaviyo_etl.sync.concurrency import gather_or_cancel
from klaviyo_etl.sync.filters import time_range
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
    from klaviyo_etl.sync.run import StreamRun


class ChildStream(Stream):
    """Collections under each parent row (list members, segment members, flow messages).

    Each parent keeps its own watermark in `extra`; a full scan of a parent replaces its
    membership, flagging members that left. Children of deleted parents are flagged too.

    A 404 on a parent's route is news, not a failure: the parent is gone from Klaviyo (a
    deleted list, an action removed from a live flow). It is flagged deleted with its
    children, and the other parents go on.
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
        concurrency: int = 4,
    ):
        self.name = name
        self.endpoint = contract().by_path(path)
        self.parent_table = parent_table
        self.parent_col = parent_col
        self.table = table
        self.members = members
        self.concurrency = concurrency

    def params(self, mark: dt.datetime | None = None) -> dict[str, Any]:
        """One parent's first page: from `mark` on, or all of its children (no mark)."""
        return page_params(
            self.endpoint,
            filter=time_range(self.endpoint, mark, None) if mark else None,
            sort=sort_field(self.endpoint),
        )

    def parents(self, repo: Repository) -> list[dict[str, Any]]:
        return repo.live_rows(self.parent_table)

    def parent_fill(self, parent: dict[str, Any]) -> dict[str, Any]:
        return {self.parent_col: parent["id"]}

    async def run(self, run: StreamRun) -> None:
        state = run.state
        parents = await run.read(self.parents)
        gone: list[str] = []
        field = self.endpoint.incremental_filter_field
        sortable = sort_field(self.endpoint) is not None
        gate = asyncio.Semaphore(self.concurrency)

        async def one(parent: dict[str, Any]) -> None:
            parent_id = parent["id"]
            async with gate:
                scan_started = run.now_iso()
                stored = clamp(state.extra.get(parent_id), run.started)
                mark = None if run.full_scan else earlier(run.since, stored)
                params = self.params(parse_time(mark) if mark else None)
                seen = mark
                try:
                    async for page in run.pages(self.endpoint.path.replace("{id}", parent_id), params):
                        if field:
                            seen = clamp(later(seen, latest(page.data, field)), run.started)
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
                except NotFound:
                    gone.append(parent_id)
                    state.extra.pop(parent_id, None)
                    await self.parent_gone(run, parent_id)
                    return
                if seen:
                    state.extra[parent_id] = seen

                def finish(repo: Repository) -> None:
                    if run.full_scan:
                        run.deleted += repo.mark_deleted(
                            self.table, scan_started, where=f"[{self.parent_col}] = ?", params=(parent_id,)
                        )

                await run.commit(finish)

        await gather_or_cancel(*(one(parent) for parent in parents))
        alive = {parent["id"] for parent in parents} - set(gone)

        for pid in [p for p in state.extra if p not in alive]:
            state.extra.pop(pid)
        state.watermark = run.started_iso
        now = run.now_iso()

        def finish_all(repo: Repository) -> None:
            repo.mark_orphans_deleted(self.table, self.parent_col, self.parent_table, now)

        if gone:
            run.note = f"{len(gone)} {self.parent_table} gone from Klaviyo (404), flagged deleted"
        await run.commit(finish_all, **({"last_reconcile_at": now} if run.full_scan else {}))

    async def parent_gone(self, run: StreamRun, parent_id: str) -> None:
        """Flag a parent that answered 404 deleted, with its children here."""
        now = run.now_iso()

        def flag(repo: Repository) -> None:
            repo.mark_rows_deleted(self.parent_table, "id = ?", (parent_id,), now)
            run.deleted += repo.mark_rows_deleted(self.table, f"[{self.parent_col}] = ?", (parent_id,), now)

        await run.commit(flag)


class FlowMessageStream(ChildStream):
    def __init__(self) -> None:
        super().__init__(
            "flow_messages",
            "/api/flow-actions/{id}/flow-messages",
            parent_table="flow_actions",
            parent_col="flow_action_id",
            table="flow_messages",
            members=False,
        )

    def parents(self, repo: Repository) -> list[dict[str, Any]]:
        # Only sending actions have messages; each request is S-tier (3/s, 60/min).
        return repo.sending_flow_actions()

    def parent_fill(self, parent: dict[str, Any]) -> dict[str, Any]:
        return {"flow_action_id": parent["id"], "flow_id": parent["flow_id"]}
