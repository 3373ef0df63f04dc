"""Big collections fetched as time windows in parallel (events by datetime, profiles by updated).

Window planning (`plan_windows`), splitting a busy window for an idle worker
(`split_window`, `busiest_window`) and the watermark a set of windows allows
(`windows_watermark`) are plain functions, tested without a server in
`tests/sync/test_windowed.py`.

Rows are rarely spread evenly over time (most profiles were `updated` lately), so equal
windows leave workers idle while one window still holds most rows, read one page at a
time. A worker that runs out of windows therefore takes the upper half of the remaining
range of the window with the most rows left (estimated from the rows it has read so far);
the busy window's reader starts again from its progress with the lower half's bound at
its next page.

Klaviyo's events are eventually consistent: some appear days after their `datetime`
(LIVE_BEHAVIOUR.md §10). Besides the lookback it re-reads every run, the events stream reads
each stretch of time once more when it is `SETTLE` old (`late_window`), so an event that
appears up to `SETTLE` late is stored, at the cost of one interval's events a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from klaviyo_etl.db.load_rollups import LoadRollups
from klaviyo_etl.db.repositories import EARLY_INDEXES
from klaviyo_etl.db.rollups import build_beside, load_fold
from klaviyo_etl.endpoints import contract
from klaviyo_etl.sync.concurrency import gather_or_cancel
from klaviyo_etl.sync.filters import fmt_time, time_range
from klaviyo_etl.sync.first_row import first_row_params, read_first_row, starts_at_first_row
from klaviyo_etl.sync.parsing import parse_rows
from klaviyo_etl.sync.streams.base import Stream, page_params
from klaviyo_etl.timeutil import parse_time

if TYPE_CHECKING:
    from collections.abc import Callable

    from klaviyo_etl.client import KlaviyoClient, RequestStats
    from klaviyo_etl.db.repositories import Repository
    from klaviyo_etl.sync.run import StreamRun, SyncOptions
    from klaviyo_etl.sync.state import StreamState


@dataclass
class Window:
    lo: dt.datetime
    hi: dt.datetime
    progress: dt.datetime
    done: bool = False
    # The last window asks for no upper bound (rows stamped after the start are read too).
    open_ended: bool = False
    rows: int = 0  # rows read so far: what `split_window` estimates the rest from


def plan_windows(
    lo: dt.datetime,
    hi: dt.datetime,
    *,
    min_window: dt.timedelta,
    concurrency: int,
    per_worker: float = 8,
    pages: int | None = None,
) -> list[Window]:
    """Split [lo, hi) into equal windows: no shorter than `min_window` (one window if the span
    is not longer), at most 256, at most `per_worker` per worker, and at most the `pages`
    the range is expected to fill (None: not known).

    More windows balance lumpy data across the workers; each window costs about half a page
    more (its last page is partial), which a rate-limited first load pays in time, and a
    window of a few rows costs a request of its own."""
    span = hi - lo
    count = max(1, min(256, int(span / min_window)))
    count = min(count, max(int(concurrency * per_worker), 1)) if span > min_window else 1
    if pages is not None:
        count = min(count, max(pages, 1))
    step = span / count
    edges = [lo + step * i for i in range(count)] + [hi]
    windows = [Window(edges[i], edges[i + 1], edges[i]) for i in range(count)]
    windows[-1].open_ended = True
    return windows


def rows_left(w: Window) -> float:
    """The rows a window still holds, estimated from what it has read (at the same density
    over the rest of its range); 0 for a window that is done or has read nothing yet."""
    read = (w.progress - w.lo).total_seconds()
    if w.done or w.rows <= 0 or read <= 0:
        return 0.0
    return w.rows * max(0.0, (w.hi - w.progress).total_seconds()) / read


def busiest_window(windows: list[Window]) -> Window | None:
    """The unfinished window with the most rows left (None if none is known to have any)."""
    best = max(windows, key=rows_left, default=None)
    return best if best is not None and rows_left(best) > 0 else None


def split_window(w: Window, *, min_rows: float) -> Window | None:
    """Give the upper half of `w`'s remaining range to a new window, or None when `w` has
    fewer than `min_rows` left (each window costs a partial last page) or under 2 s left.

    `w` keeps `[lo, m)` and the new window takes `[m, hi)` (and `w`'s open end); `m` is a
    whole second, the resolution of the filters, so the two ranges meet exactly. `w`'s
    reader is still on a cursor that runs to the old `hi`: it must start again from its
    progress up to `m` (see `WindowedStream.read`). A page of that cursor already in flight
    may pass `m`; its rows past `m` are read again by the new window (idempotent upserts)."""
    if rows_left(w) < min_rows:
        return None
    m = (w.progress + (w.hi - w.progress) / 2).replace(microsecond=0)
    if not w.progress < m < w.hi:
        return None
    new = Window(m, w.hi, m, open_ended=w.open_ended)
    w.hi, w.open_ended = m, False
    return new


def windows_watermark(windows: list[Window], hi: dt.datetime) -> str:
    """The lowest progress of any unfinished window (everything before it is stored), never
    past `hi`; when all are done, the end of the last window (capped at `hi` too)."""
    open_ = [w.progress for w in windows if not w.done]
    low = min(open_) if open_ else max(w.hi for w in windows)
    low = min(low, hi)
    return iso_mark(low)


def windows_covered(windows: list[Window]) -> tuple[float, float]:
    """(seconds of the windows' time range read so far, seconds in all): a done window
    counts whole, an open one up to its progress."""
    total = sum((w.hi - w.lo).total_seconds() for w in windows)
    done = sum(((w.hi if w.done else min(w.progress, w.hi)) - w.lo).total_seconds() for w in windows)
    return done, total


def pages_left(windows: list[Window], pages: int) -> float | None:
    """The pages the windows still hold, at the density of the `pages` read so far over the
    time they cover (None before half of it is read: too soon to tell)."""
    done, total = windows_covered(windows)
    if total <= 0 or done < total / 2:
        return None
    return pages * (total - done) / done


def iso_mark(value: dt.datetime) -> str:
    """A watermark as stored: ISO 8601 in UTC to the second, with `+00:00`."""
    return fmt_time(value).replace("Z", "+00:00")


# How late an event may appear and still be read (LIVE_BEHAVIOUR.md §10): Estuary's connector
# re-reads events at this horizon after seeing Klaviyo's events appear more than 4 days late.
SETTLE = dt.timedelta(days=7)
SETTLED = "settled"  # the state's mark: events dated before it were read once SETTLE old


def late_window(settled: str | None, lo: dt.datetime, started: dt.datetime) -> Window | None:
    """The stretch an incremental run reads again because it is now `SETTLE` old: from the
    last run's mark to `SETTLE` before this run's start, below the run's own windows (from
    `lo`). None when there is no mark yet, or nothing between the mark and `lo`."""
    if not settled:
        return None
    end = min(lo, started - SETTLE)
    start = parse_time(settled)
    return Window(start, end, start) if start < end else None


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
        reconcilable: bool = False,
        bulk_load: bool = False,
        windows_per_worker: float = 8,
        prebuilds_rollups: bool = False,
    ):
        self.name = name
        # The report rollups count this table's rows (events): a bulk load's end starts them.
        self.prebuilds_rollups = prebuilds_rollups
        self.windows_per_worker = windows_per_worker
        self.bulk_load = bulk_load
        self.endpoint = contract().by_path(path)
        self.field = self.endpoint.incremental_filter_field or ""
        self.table = table
        self.concurrency = concurrency
        self.min_window = min_window
        self.lookback = lookback
        self.reconcilable = reconcilable
        # The oldest row's time, when `before_clock` read it, or the engine before the streams
        # were loaded (a list: [None] is "no rows").
        self.first: list[dt.datetime | None] = []

    def extra_params(self, predictive: bool) -> dict[str, Any]:
        """Parameters besides the window's (profiles add fields here)."""
        return {}

    def params(self, lo: dt.datetime, hi: dt.datetime | None, *, predictive: bool = False) -> dict[str, Any]:
        """One window's first page, ascending: `lo <= field < hi` (hi=None: open-ended)."""
        return page_params(
            self.endpoint,
            filter=time_range(self.endpoint, lo, hi),
            sort=self.field,
            **self.extra_params(predictive),
        )

    def earliest_params(self) -> dict[str, Any]:
        """The oldest row's field alone: where a first sync starts."""
        return first_row_params(self.endpoint)

    async def earliest(self, run: StreamRun) -> dt.datetime | None:
        if self.first:  # read while Klaviyo's clock was (`before_clock`)
            return self.first[0]
        return await read_first_row(run.client, self.endpoint, run.stats)

    async def before_clock(
        self,
        client: KlaviyoClient,
        state: StreamState,
        options: SyncOptions,
        full_scan: bool,
        stats: RequestStats,
    ) -> None:
        """A first load (or a full scan) starts at the oldest row: its request needs no clock,
        so it goes out beside the clock's request rather than after it (issue 12)."""
        if starts_at_first_row(options.since, state.watermark, full_scan):
            self.use_first_row(await read_first_row(client, self.endpoint, stats))

    def use_first_row(self, found: dt.datetime | None) -> None:
        self.first = [found]

    def plan(self, lo: dt.datetime, hi: dt.datetime, pages: int | None = None) -> list[Window]:
        return plan_windows(
            lo,
            hi,
            min_window=self.min_window,
            concurrency=self.concurrency,
            per_worker=self.windows_per_worker,
            pages=pages,
        )

    async def expected_pages(self, run: StreamRun, lo: dt.datetime, hi: dt.datetime) -> int:
        """The pages [lo, hi) should fill, from the rows already stored: the more of those in
        it (read again) and in the span as long just before it (the rate new rows come at).

        An incremental run of events read 140 rows of its lookback in 11 requests, one
        window per worker; this plans 1 (a busy window is still split by idle workers, from
        the density its first page shows)."""
        page = self.endpoint.page_size_max or 100
        cap = page * max(int(self.concurrency * self.windows_per_worker), 1)

        def count(repo: Repository) -> int:
            def between(a: dt.datetime, b: dt.datetime) -> int:
                return repo.count_between(self.table, self.field, iso_mark(a), iso_mark(b), cap=cap)

            return max(between(lo, hi), between(lo - (hi - lo), lo))

        return -(-(await run.read(count)) // page)

    async def run(self, run: StreamRun) -> None:
        state = run.state
        hi = run.started - run.safety_lag
        # A stored mark is never past the start: a row stamped in the future (or a mark from
        # a clock that ran ahead) must not hold the stream back until that date.
        stored = min(parse_time(state.watermark), run.started) if state.watermark else None
        resume = stored - run.lookback if stored is not None and self.lookback else stored
        lo: dt.datetime | None
        if starts_at_first_row(run.since, state.watermark, run.full_scan):
            lo = await self.earliest(run)
        elif run.since:
            # A `--since` later than the stored mark would skip the rows in between (the
            # watermark moves on at the end): read from the earlier of the two.
            lo = min(parse_time(run.since), resume) if resume is not None else parse_time(run.since)
        else:
            lo = resume
        scan_started = run.now_iso()
        scan_started_server = run.server_now()
        # Bulk mode: a first load into an empty table goes in without secondary indexes
        # (built again once, below); an interrupted one leaves them listed for the next run.
        bulk = self.bulk_load and await run.read(lambda repo: repo.is_empty(self.table))
        if bulk:
            await run.commit(lambda repo: repo.defer_indexes(self.table))
        # The rollups' metric hours and active profiles, folded as the pages are stored.
        fold = await run.read(lambda repo: load_fold(repo.db)) if bulk and self.prebuilds_rollups else None
        incremental = lo is not None and lo == resume
        if lo is not None and lo < run.started:
            # The last window is open-ended, so rows newer than the start (or stamped ahead by
            # a skewed clock) are read too; the watermark stops at `hi` = start - safety lag,
            # so the newest rows are read again next time rather than risk missing late ones.
            # An incremental run plans from the rows stored; a first load or a full scan (a
            # reconcile, a first load's volume) by time alone.
            pages = await self.expected_pages(run, lo, run.started) if incremental and not bulk else None
            windows = self.plan(lo, run.started, pages)
            late = late_window(state.extra.get(SETTLED), lo, run.started) if self.lookback else None
            if late is not None and incremental:
                windows.append(late)
            await self.fetch(run, windows, hi, bulk, fold)
        if self.lookback and lo is not None and (incremental or not run.since):
            # The stretch up to SETTLE ago is done: the late window read it (a first load or a
            # full scan read everything; a file from before the mark starts it here). A
            # `--since` from before the lookback read from its date, not the late window: the
            # mark stays, and the next run reads that window.
            mark = run.started - SETTLE
            if state.extra.get(SETTLED):
                mark = max(mark, parse_time(state.extra[SETTLED]))
            state.extra[SETTLED] = iso_mark(mark)
        complete_scan = run.full_scan and not run.since
        # A complete scan flags the rows it did not see as gone. Not a bulk load's: the table
        # was empty when it started, so every row in it is the scan's own and none can be
        # flagged; nor does it read again what changed while it ran (that only keeps the
        # flagging safe, and the next run reads those rows: the watermark stops at `hi`,
        # before the start). It still counts as a reconcile (`last_reconcile_at`, below).
        flags = complete_scan and self.reconcilable and lo is not None and not bulk
        if flags:
            # A row updated while the scan ran moved behind the windows already read: read
            # what changed since the scan started before flagging anything unseen as gone.
            since = scan_started_server - dt.timedelta(seconds=1)
            await self.fetch(run, [Window(since, run.server_now(), since, open_ended=True)], hi, bulk=False)
        final = max(hi, stored) if stored is not None else hi
        state.watermark = iso_mark(final)

        def finish(repo: Repository) -> None:
            if flags:
                run.deleted += repo.mark_deleted(self.table, scan_started)
            if bulk and self.prebuilds_rollups:
                # The events' indexes build while another connection reads the rollups'
                # largest passes from the rows just loaded (see `build_beside`).
                build_beside(
                    repo.db,
                    lambda: repo.restore_indexes(self.table),
                    conversion=run.options.conversion_metric,
                    folded=fold,
                )
            else:
                repo.restore_indexes(self.table)

        await run.commit(finish, **({"last_reconcile_at": scan_started} if complete_scan else {}))

    async def fetch(
        self,
        run: StreamRun,
        windows: list[Window],
        hi: dt.datetime,
        bulk: bool,
        fold: LoadRollups | None = None,
    ) -> None:
        """Read `windows` with up to `concurrency` workers; a worker left without a window
        splits the busiest one (`split_window`), or waits for the next page to try again.
        Pages are stored through `fold` when there is one."""
        queue = list(windows)
        queue.reverse()  # popped from the end: the first window first
        # A bulk load parses beside the event loop (`ParserPools`: one thread by default, or
        # `[sync] parse_workers` processes); the small incremental runs parse on the loop.
        parsing = {
            "parse": functools.partial(parse_rows, field_name=self.field),
            "executor": run.pools.get() if bulk and run.pools else None,
        }
        min_rows = 2 * (self.endpoint.page_size_max or 100)
        changed = asyncio.Condition()
        # The table's early indexes (`EARLY_INDEXES`) are built once the pages left fit in one
        # burst: the writer builds them in the pause before it, and the load's end waits for
        # the others only (issue 12, a first load of 200,000 events at 35 requests a burst:
        # the tail after the last page 0.40 -> 0.25 s, 0.891 -> 0.905 of the ceiling; the
        # last burst's pages stored with the index up cost ~0.03 s of CPU).
        early = EARLY_INDEXES.get(self.table) if bulk else None
        queued = 0
        built: list[asyncio.Future] = []

        def page_queued() -> None:
            nonlocal early, queued
            queued += 1
            left = pages_left(windows, queued) if early else None
            if left is not None and left <= run.client.burst("GET", self.endpoint.path):
                names, early = early, None
                built.append(run.queue(lambda repo: repo.restore_indexes(self.table, names)))

        async def worker() -> None:
            while True:
                if queue:
                    w = queue.pop()
                elif (busy := busiest_window(windows)) and (w := split_window(busy, min_rows=min_rows)):
                    windows.append(w)
                elif all(w.done for w in windows):
                    return
                else:
                    async with changed:
                        await changed.wait()
                    continue
                try:
                    await self.read(run, w, windows, hi, parsing, changed, fold, page_queued, bulk)
                finally:
                    async with changed:
                        changed.notify_all()

        # One window (a small range): one worker, as before splitting; more: every worker,
        # those beyond the windows splitting them once their first pages are in.
        await gather_or_cancel(*(worker() for _ in range(self.concurrency if len(windows) > 1 else 1)))
        for build in built:
            await build

    async def read(
        self,
        run: StreamRun,
        w: Window,
        windows: list[Window],
        hi: dt.datetime,
        parsing: dict[str, Any],
        changed: asyncio.Condition,
        fold: LoadRollups | None = None,
        page_queued: Callable[[], None] | None = None,
        bulk: bool = False,
    ) -> None:
        """Read one window to its end, ascending; again from its progress whenever a split
        has moved its end (the cursor it follows still runs to the old end). A `bulk` load's
        rows are written as rows expected new (`Repository.write_rows`)."""
        state = run.state
        new = self.table if bulk else None
        # The page before this one, still being written: the next page is fetched meanwhile.
        pending: asyncio.Future | None = None
        try:
            while not w.done:
                end = w.hi
                params = self.params(
                    w.progress, None if w.open_ended else end, predictive=run.options.predictive
                )
                split = False
                async with contextlib.aclosing(run.pages(self.endpoint.path, params, **parsing)) as pages:
                    async for page in pages:
                        if pending is not None:
                            await pending  # at most one page of a window waits for the writer
                            pending = None
                        # The window's progress moves only as its page is queued (no wait in
                        # between): a watermark another window stores never passes rows still
                        # waiting to be queued.
                        if page.last:
                            w.progress = max(w.progress, parse_time(page.last))
                        w.rows += page.count
                        # Ascending: a row at or past the end means every row before it is read.
                        if not page.links.next or (not w.open_ended and w.progress >= w.hi):
                            w.done = True
                        state.watermark = windows_watermark(windows, hi)
                        run.covered = windows_covered(windows)
                        pending = run.queue(
                            (lambda repo, page=page: repo.write_rows(page.rows, bulk=new))
                            if fold is None
                            else (lambda repo, page=page: fold.write(repo, page.rows, w.lo, new)),
                            page.count,
                            warnings=page.warnings,
                        )
                        if page_queued is not None:
                            page_queued()
                        async with changed:
                            changed.notify_all()
                        if not w.done and w.hi != end:  # split: the rest of this cursor is not ours
                            split = True
                            break
                if not split:
                    w.done = True
        finally:
            if pending is not None:
                await pending


class ProfileStream(WindowedStream):
    """Profiles by `updated`, with their subscriptions (and predictive analytics if asked for)."""

    def __init__(self) -> None:
        super().__init__(
            "profiles",
            "/api/profiles",
            "profiles",
            # 20 in flight, not 8: at the L tier (75/s) a burst's requests, each ~0.07 s to come
            # back, go out in ~0.25 s instead of ~0.7 s, and the last burst of a first load
            # no longer trails (issue 12: 0.72 -> 0.80 of the ceiling, medians of 3). More
            # windows cost more partial last pages: 24 made 223-225 requests of the 225 that
            # three bursts allow. One window each: most profiles were updated lately, so the
            # last window holds most rows whatever the count, and idle workers split the busiest.
            # What binds (traced 2026-12-02, 20,000 at the L tier): the 2nd and 3rd bursts go
            # out as the slots free (1-4 ms after, median), so they replay the 1st burst's
            # answer times a second later each, and the run ends ~2 s + 2 answers after the
            # k-th answer of the 1st burst (k = requests - 150, ~69). The 1st burst takes ~4
            # rounds of 20 (~0.08 s each: the answer, plus the herd queueing in the sandbox
            # and here). Tried and dropped: 25-32 in flight (225-233 requests, a 4th burst or
            # no faster: a round of 25 answers takes longer), splitting only windows with 4-10
            # pages left (216-220 requests, but the 3rd burst has too few windows left to
            # follow the freed slots: wall 3.14-3.53 s against 3.10).
            concurrency=20,
            min_window=dt.timedelta(days=2),
            reconcilable=True,
            bulk_load=True,
            windows_per_worker=1,
        )

    def extra_params(self, predictive: bool) -> dict[str, Any]:
        fields = ["subscriptions"] + (["predictive_analytics"] if predictive else [])
        return {"additional-fields[profile]": ",".join(fields)}
