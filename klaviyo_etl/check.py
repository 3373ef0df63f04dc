"""`klaviyo-etl check`: does this key, this revision and our figures hold up against an account?

Three questions, each answered from what the account itself says:

1. **Access.** One cheap request (first page, page size 1) per top-level endpoint the sync
   reads, through the same client and rate limiter as a sync. Each of those endpoints needs
   exactly one scope (`spec/endpoints.json`), so a 403 names the scope the key lacks; the
   child endpoints (members, flow messages) and the Reporting API need only scopes of
   those. The Reporting API itself is not probed: it allows 225 requests a day. A 401
   (key rejected) or a 410 (revision retired) stops the check, as it stops a sync.
2. **Revision.** Any `Deprecation`, `Sunset` or `Warning` header an answer carries is shown, beside the
   pinned revision's age under Klaviyo's published policy (a revision is deprecated after
   one year and retired after two).
3. **Figures.** `--source compare` (`reports/compare.py`) recomputes our campaign and flow
   figures over the timeframe of the stored Reporting API figures. Here they are summed per
   campaign or flow and channel, and a figure differs when

       |ours - Klaviyo's| > max(tolerance * max(|ours|, |Klaviyo's|), floor)

   so with the defaults (2 %, floor 1) 1 vs 0 agrees and 2 vs 0 does not, and large
   counts may differ by 2 % (an event arriving late can reach one side before the other).
   A campaign or flow whose clicks alone differ, by exactly its bots' clicks (`Bot Click`
   true, LIVE_BEHAVIOUR.md §12), is not listed: one line says that the account's Klaviyo
   setting counts them the other way and names the `[reports] exclude_bot_clicks` to set.
   It still differs (counted among the differences, exit 1) until the setting agrees.

What it does not prove: the comparison uses the figures the last `sync reports` stored and
the events the last `sync events` stored, so it checks our arithmetic on the account's own
events against Klaviyo's arithmetic, over Klaviyo's timeframe (campaigns sent in the period;
every flow Klaviyo reported on). It says nothing about streams it does not compare (profiles,
lists, segments, forms). Both sides count the timeframe's days in the account's timezone (the
`accounts` stream; `db/local_days.py`), as Klaviyo does; the check names that timezone when it
is not UTC. Without the account synced (a key lacking `accounts:read`) our days are UTC's, and
the check says so when Klaviyo's may not be.

A scope only an optional stream needs (`accounts:read`) is probed and shown, but a key
without it passes: the sync skips that stream with a note and exits 0 (see `AccountStream`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.client import KlaviyoClient
from klaviyo_etl.db.account import synced_account
from klaviyo_etl.db.local_days import UTC, local_days
from klaviyo_etl.endpoints import Endpoint, ReportEndpoint, contract
from klaviyo_etl.errors import ApiError, FatalError
from klaviyo_etl.reports.compare import compare_report
from klaviyo_etl.reports.messages import COUNTS, campaigns_sent, stored_timeframe
from klaviyo_etl.reports.periods import Period, in_zone
from klaviyo_etl.settings import mask_key
from klaviyo_etl.sync.streams import Stream, build_streams
from klaviyo_etl.timeutil import parse_time, parse_time_or_none
from klaviyo_etl.wording import counted

DEFAULT_TOLERANCE = 0.02
DEFAULT_FLOOR = 1.0
# What the comparison reads, in the order a sync needs them.
CHECK_STREAMS = ["metrics", "events", "campaigns", "flows", "flow_messages", "reports"]
# What `check --sync` syncs: those, and the account, whose timezone the check names.
CHECK_SYNC_STREAMS = ["accounts", *CHECK_STREAMS]
REVISION_HEADERS = ("deprecation", "sunset", "warning")
_KINDS = (("campaign", "campaign-values"), ("flow", "flow-values"))


# -- access -------------------------------------------------------------------------------


@dataclass
class Probe:
    """One scope and the request that tested it."""

    scope: str
    path: str
    streams: list[str]  # the sync streams that need this scope
    status: int | None = None  # HTTP status of the probe (None: not probed)
    detail: str = ""
    optional: bool = False  # only optional streams need it: the sync skips them without it

    @property
    def granted(self) -> bool:
        return self.status is not None and self.status < 300


@dataclass
class Access:
    base_url: str
    key: str  # masked
    revision: str
    probes: list[Probe]
    headers: dict[str, str] = field(default_factory=dict)  # deprecation/sunset headers seen

    @property
    def missing_scopes(self) -> list[str]:
        """Scopes the sync needs and the key lacks (a problem: exit 1)."""
        return [p.scope for p in self.probes if p.status == 403 and not p.optional]

    @property
    def missing_optional(self) -> list[Probe]:
        """Scopes only optional streams need, which the key lacks (said, not a problem)."""
        return [p for p in self.probes if p.status == 403 and p.optional]

    @property
    def failed(self) -> list[Probe]:
        """Probes that failed for a reason other than a missing scope."""
        return [p for p in self.probes if p.status is not None and p.status >= 300 and p.status != 403]

    def to_json(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "key": self.key,
            "key_accepted": True,
            "revision": revision_status(self.revision),
            "revision_headers": self.headers,
            "scopes_needed": [p.scope for p in self.probes if not p.optional],
            "scopes_missing": self.missing_scopes,
            "scopes_optional": [p.scope for p in self.probes if p.optional],
            "scopes_optional_missing": [p.scope for p in self.missing_optional],
            "probes": [
                {
                    "scope": p.scope,
                    "path": p.path,
                    "status": p.status,
                    "streams": p.streams,
                    "detail": p.detail,
                    "optional": p.optional,
                }
                for p in self.probes
            ],
        }


def _endpoints(stream: Stream) -> list[Endpoint | ReportEndpoint]:
    endpoint = getattr(stream, "endpoint", None)
    if endpoint is not None:
        return [endpoint]
    reports = getattr(stream, "REPORTS", ())
    return [contract().report(path) for _, path, *_ in reports]


def scope_probes(streams: dict[str, Stream] | None = None) -> list[Probe]:
    """One probe per scope the sync needs, on a top-level GET needing that scope alone."""
    streams = streams or build_streams()
    needs: dict[str, list[str]] = {}
    single: dict[str, str] = {}
    for name, stream in streams.items():
        for endpoint in _endpoints(stream):
            for scope in endpoint.scopes:
                needs.setdefault(scope, [])
                if name not in needs[scope]:
                    needs[scope].append(name)
            if endpoint.method == "GET" and "{" not in endpoint.path and len(endpoint.scopes) == 1:
                single.setdefault(endpoint.scopes[0], endpoint.path)
    return [
        Probe(scope, single.get(scope, ""), names, optional=all(streams[n].optional for n in names))
        for scope, names in needs.items()
    ]


def probe_params(endpoint: Endpoint, stream: Stream | None) -> dict[str, Any]:
    """The cheapest first page: page size 1, and the filter the endpoint requires, if any."""
    params: dict[str, Any] = {}
    if endpoint.page_size_param:
        params[endpoint.page_size_param] = 1
    variants = getattr(stream, "variants", (None,))
    if endpoint.required_filter and stream is not None:
        params["filter"] = stream.variant_filter(variants[0])  # type: ignore[attr-defined]
    return params


async def check_access(client: KlaviyoClient) -> Access:
    """Probe every scope the sync needs. A 401 or 410 raises (`KeyRejected`, `RevisionRetired`)."""
    streams = build_streams()
    by_path = {
        s.endpoint.path: s for s in streams.values() if isinstance(getattr(s, "endpoint", None), Endpoint)
    }
    headers: dict[str, str] = {}

    async def remember(response: httpx.Response) -> None:
        for name, value in response.headers.items():
            if name.lower() in REVISION_HEADERS:
                headers[name] = value

    hooks = client.http.event_hooks
    client.http.event_hooks = {**hooks, "response": [*hooks.get("response", []), remember]}
    probes = scope_probes(streams)
    for probe in probes:
        if not probe.path:
            continue
        endpoint = contract().by_path(probe.path)
        try:
            await client.get(probe.path, probe_params(endpoint, by_path.get(probe.path)))
            probe.status = 200
        except FatalError:  # 401 or 410: wrong for every endpoint alike
            raise
        except ApiError as exc:
            probe.status, probe.detail = exc.status, exc.detail
    return Access(client.base_url, mask_key(client.api_key), client.revision, probes, headers)


def revision_status(revision: str, today: dt.date | None = None) -> dict[str, Any]:
    """The revision's age under Klaviyo's policy: stable for a year, deprecated the next."""
    today = today or dt.datetime.now(dt.UTC).date()
    try:
        released = dt.date.fromisoformat(revision[:10])
    except ValueError:
        return {"revision": revision, "age_days": None, "policy": "unknown"}
    age = (today - released).days
    policy = "stable" if age < 365 else "deprecated" if age < 730 else "past retirement"
    return {"revision": revision, "age_days": age, "policy": policy}


def run_access_check(client_factory: Callable[[], KlaviyoClient]) -> Access:
    async def go() -> Access:
        async with client_factory() as client:
            return await check_access(client)

    return asyncio.run(go())


# -- figures ------------------------------------------------------------------------------


@dataclass
class Figures:
    period: Period
    tolerance: float
    floor: float
    compared: dict[str, int]  # campaigns / flows compared
    rows: list[dict[str, Any]]  # one per campaign or flow (and channel) that differs
    advice: list[str]  # what to sync first, and why
    timezone: str = UTC  # whose days both sides count (the account's; UTC: none synced)
    account_synced: bool = True
    # Rows (as `rows`) whose clicks alone differ, by exactly their bots' clicks
    bot_rows: list[dict[str, Any]] = field(default_factory=list)
    exclude_bot_clicks: tuple[str, ...] = kc.BOT_CLICK_CHANNELS  # the setting they were counted by
    # Channels whose bots' clicks made no difference to any comparison: their setting unknown
    bots_untold: tuple[str, ...] = ()

    @property
    def bot_clicks_note(self) -> str | None:
        """One line for `bot_rows`: which way the account counts bots' clicks and the
        `[reports] exclude_bot_clicks` that makes ours count them the same way."""
        if not self.bot_rows:
            return None
        channels = sorted({r["channel"] for r in self.bot_rows if r["channel"]})
        counted_here = self.bot_rows[0]["bots_counted"]
        if counted_here:
            wanted = {*self.exclude_bot_clicks, *channels}
            setting = [c for c in kc.BOT_CLICK_CHANNELS if c in wanted]
            ways = "Klaviyo leaves them out and we count them"
        else:
            setting = [c for c in self.exclude_bot_clicks if c not in channels]
            ways = "Klaviyo counts them and we leave them out"
        kinds = {
            kind: len({r["id"] for r in self.bot_rows if r["kind"] == kind}) for kind in ("campaign", "flow")
        }
        which = " and ".join(counted(n, kind) for kind, n in kinds.items() if n)
        shown = ", ".join(f'"{c}"' for c in setting)
        untold = f" (too few bot clicks on {', '.join(self.bots_untold)} to tell)" if self.bots_untold else ""
        return (
            f"{which} differ by exactly their bot clicks (Bot Click true) on {', '.join(channels)}:"
            f" {ways}; set [reports] exclude_bot_clicks = [{shown}] to agree{untold}"
        )

    @property
    def timezone_note(self) -> str | None:
        """The days compared: the account's timezone's, said when not UTC; or, without the
        account synced, that ours are UTC's whatever Klaviyo's are (a warning)."""
        if not self.account_synced:
            return (
                "the account is not synced (`accounts:read`): our days are UTC's, Klaviyo counts"
                " the account's timezone; run `klaviyo-etl sync accounts` so both count the same days"
            )
        if self.timezone == UTC:
            return None
        return f"days in {self.timezone}, the account's timezone, on both sides (as Klaviyo counts them)"

    @property
    def comparable(self) -> bool:
        return any(self.compared.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period.to_json(),
            "tolerance": self.tolerance,
            "floor": self.floor,
            "compared": self.compared,
            "differ": self.rows,
            "advice": self.advice,
            "account_timezone": self.timezone,  # whose days both sides count
            "timezone_note": self.timezone_note,
            "differ_by_bot_clicks": self.bot_rows,
            "bot_clicks_note": self.bot_clicks_note,
        }


def differs(ours: float | None, theirs: float | None, tolerance: float, floor: float) -> bool:
    """True when the figures differ by more than `tolerance` (relative) and `floor` (absolute)."""
    if theirs is None:
        return False
    a, b = float(ours or 0), float(theirs)
    return abs(a - b) > max(tolerance * max(abs(a), abs(b)), floor)


def readiness(db: sqlite_utils.Database, period: Period) -> list[str]:
    """What to sync before the comparison means anything (empty: nothing)."""
    synced = dict(db.execute("SELECT stream, last_success_at FROM sync_state").fetchall())
    never = [s for s in CHECK_STREAMS if not synced.get(s)]
    if never:
        return [
            f"never synced: {', '.join(never)}; run `klaviyo-etl sync {' '.join(CHECK_STREAMS)}`"
            " first (or pass --sync)"
        ]
    advice = []
    timeframe = stored_timeframe(db)
    covered = (  # Klaviyo's figures end at the start of that day (the account's)
        parse_time(timeframe.utc_hi) if timeframe and timeframe.end else None
    )
    events = parse_time_or_none(synced.get("events"))
    if covered and events and events < covered:
        advice.append(
            f"events were last synced {synced['events'][:16]}, before the end of Klaviyo's figures"
            f" ({timeframe.hi}): run `klaviyo-etl sync events` (or pass --sync)"
        )
    if covered:
        reported = {r[0] for r in db.execute("SELECT entity_id FROM report_values")}
        # Only what `sync reports` asks about: campaigns sent inside Klaviyo's timeframe.
        missing = [
            c["name"]
            for c in campaigns_sent(db, period, None)
            if c["campaign_id"] not in reported
            and timeframe.utc_lo <= (c["send_time"] or "") < timeframe.utc_hi
        ]
        if missing:
            advice.append(
                f"{len(missing)} campaign(s) sent in {period.describe()} have no stored Klaviyo"
                f" figures (e.g. {missing[0]!r}): run `klaviyo-etl sync reports` (or pass --sync)"
            )
        # Flows are compared on every stored row: one that sent inside the timeframe without
        # stored figures would silently drop out of the comparison.
        silent = [
            name
            for fid, name in db.execute(
                "SELECT DISTINCT f.id, f.name FROM flows f JOIN rollup_entities e ON e.flow_id = f.id"
                " WHERE f.deleted_at IS NULL AND e.kind = 'message' AND e.last_day >= ? AND e.first_day < ?"
                " ORDER BY f.name",
                [timeframe.lo, timeframe.hi],
            )
            if fid not in reported
        ]
        if silent:
            advice.append(
                f"{len(silent)} flow(s) sent in Klaviyo's timeframe ({timeframe.describe()}) have no"
                f" stored Klaviyo figures (e.g. {silent[0]!r}): run `klaviyo-etl sync reports`"
                " (or pass --sync)"
            )
    return advice


def compare_figures(
    db: sqlite_utils.Database,
    period: Period,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    floor: float = DEFAULT_FLOOR,
    conversion: str | None = None,
    exclude_bot_clicks: Collection[str] = kc.BOT_CLICK_CHANNELS,
) -> Figures:
    """Our figures beside Klaviyo's stored ones, summed per campaign or flow and channel.

    `conversion`: the `[reports] conversion_metric` setting, the one `sync reports` sent;
    `exclude_bot_clicks`: the `[reports] exclude_bot_clicks` one."""
    days = local_days(db)
    period = in_zone(period, days)
    rows: list[dict[str, Any]] = []
    bot_rows: list[dict[str, Any]] = []
    told: set[str] = set()  # channels whose bots' clicks decided a comparison, either way
    compared: dict[str, int] = {}
    for kind, report in _KINDS:
        totals: dict[tuple[str, str], dict[str, Any]] = {}
        compared_rows = compare_report(
            db, report, period, conversion=conversion, exclude_bot_clicks=exclude_bot_clicks
        ).rows
        for row in compared_rows:
            if row.get("agree") is None:
                continue  # a timeframe we cannot resolve: nothing to recompute over
            key = (row["entity_id"], row["channel"])
            total = totals.setdefault(
                key,
                {
                    "kind": kind,
                    "id": row["entity_id"],
                    "name": row["name"],
                    "channel": row["channel"],
                    "timeframe": row["timeframe"],
                    "ours": {},
                    "klaviyo": {},
                    "bots_counted": row["bots_counted"],
                    "bot_clicks": 0,
                    "bot_clickers": 0,
                },
            )
            total["bot_clicks"] += row["bot_clicks"]
            total["bot_clickers"] += row["bot_clickers"]
            for figure in COUNTS:
                theirs = row.get(f"klaviyo_{figure}")
                if theirs is None:
                    continue
                total["ours"][figure] = total["ours"].get(figure, 0) + (row.get(figure) or 0)
                total["klaviyo"][figure] = total["klaviyo"].get(figure, 0) + theirs
        compared[f"{kind}s"] = len({entity for entity, _ in totals})  # a flow on two channels is one
        for total in totals.values():
            figures = {
                figure: {"ours": total["ours"][figure], "klaviyo": theirs}
                for figure, theirs in total["klaviyo"].items()
                if differs(total["ours"][figure], theirs, tolerance, floor)
            }
            if figures:
                found = {k: total[k] for k in ("kind", "id", "name", "channel", "timeframe")}
                if _bots_make_the_difference(total, figures, tolerance, floor):
                    bot_rows.append(found | {"differences": figures, "bots_counted": total["bots_counted"]})
                    told.add(total["channel"])
                else:
                    rows.append(found | {"differences": figures})
            elif total["bot_clicks"] and not _agrees_the_other_way(total, tolerance, floor):
                told.add(total["channel"])  # agrees, and would not with bots counted the other way
    rows.sort(key=lambda r: (r["kind"], r["name"] or "", r["channel"] or ""))
    bot_rows.sort(key=lambda r: (r["kind"], r["name"] or "", r["channel"] or ""))
    return Figures(
        period,
        tolerance,
        floor,
        compared,
        rows,
        readiness(db, period),
        days.zone,
        synced_account(db) is not None,
        bot_rows,
        tuple(exclude_bot_clicks),
        tuple(c for c in kc.BOT_CLICK_CHANNELS if c not in told),
    )


def _bots_count_the_other_way(total: dict[str, Any]) -> dict[str, float]:
    """Our clicks and unique clicks with the bots' clicks counted the other way (out if we
    counted them, in if not)."""
    sign = -1 if total["bots_counted"] else 1
    other = {
        "clicks": total["ours"].get("clicks", 0) + sign * total["bot_clicks"],
        "clicks_unique": total["ours"].get("clicks_unique", 0) + sign * total["bot_clickers"],
    }
    return other


def _agrees_the_other_way(total: dict[str, Any], tolerance: float, floor: float) -> bool:
    """Whether the clicks counted the other way agree with Klaviyo's too."""
    other = _bots_count_the_other_way(total)
    return not any(
        differs(value, total["klaviyo"].get(name), tolerance, floor)
        for name, value in other.items()
        if name in total["klaviyo"]
    )


def _bots_make_the_difference(
    total: dict[str, Any], figures: dict[str, Any], tolerance: float, floor: float
) -> bool:
    """Whether only the clicks differ, and counting the bots' clicks the other way makes them
    agree: the account's setting is the other one."""
    if not total["bot_clicks"] or not set(figures) <= {"clicks", "clicks_unique"}:
        return False
    return _agrees_the_other_way(total, tolerance, floor)
