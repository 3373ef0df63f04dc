"""Rollup tables that let the reports answer from thousands of rows instead of millions of events.

Four derived tables (created by migration m004) hold everything `report campaigns`,
`report flows`, `report forms`, `report overview` and `report metric` need:

- `rollup_entity_days`: per message (kind 'message') or form (kind 'form'), role
  (received, opened, clicked, bot_clicked, bounced, failed, unsubscribed, spam, recipients,
  conversion / viewed, submitted) and day: events, value and distinct profiles. Distinct counts do not add up
  across days, so each row also carries `prev_day`, the profile's previous day with the same
  role on the same entity ('' for its first). The distinct profiles over any day range
  [A, B] are then exactly the sum of `profiles` over rows with A <= day <= B and
  prev_day < A, because each profile's first day inside the range is the only one whose
  previous day lies before it.
- `rollup_entity_totals` (the same summed over all days) and `rollup_entities` (channel,
  flow and first/last day of each message or form).
- `rollup_metric_hours`: events and value per metric per hour.
- `rollup_activity_days`: active profiles per day with the same `prev_day` key, so the
  active profiles of any period are one indexed sum.
- `rollup_currency_days` (migration m010): events and value per metric, day and
  currency (`$currency_code` of the event's properties, upper case; '' when it names none)
  for every metric named as the conversion metric is, so that a report says what its money
  is in, and whether the orders mix currencies, from a few rows (LIVE_BEHAVIOUR.md §7).

Days and hours are the account's (`klaviyo_etl.db.local_days`: its timezone, as Klaviyo counts
them; UTC when none is synced): an hour is a local hour too, so that a local day is always
a whole number of them, also at +05:30. The zone is part of the rollups' signature unless it
is UTC, so a newly synced or changed zone rebuilds them once and a UTC database rebuilds
nothing on upgrade.

Entities are keyed by the raw `$message` (or `$attributed_message`) of the events: a campaign
id or a campaign-message id for campaigns (live accounts send the campaign id), a
flow-message id for flows. The reports resolve those ids to campaigns and flows.

A click whose `Bot Click` property is true plays 'bot_clicked', not 'clicked' (`ROLE`): Klaviyo's
reporting leaves bots' clicks out of clicks and click rates by default (LIVE_BEHAVIOUR.md §12).

Conversions are the events of ONE metric, `klaviyo_etl.db.conversion.conversion_metric`
(the configured one, or the "Placed Order" with most events); its id is part of the
rollups' signature, so choosing another one rebuilds them.

Freshness: inserted events are found by rowid beyond the stored watermark, and a trigger
records the keys of events whose counted fields change (reconciliation setting deleted_at)
or that are deleted. `refresh_rollups` recomputes only what those touch; `ensure_rollups`,
called by every report, makes that a no-op costing two lookups when nothing changed.

A first load's end: while the writer rebuilds the events' deferred indexes (SQLite, without
the GIL), `build_beside` makes the metric hours and the active profiles on a second
connection, from the load's own fold of its pages (`klaviyo_etl.db.load_rollups`), or by
reading every event in one pass when there is no fold it can use; the full rebuild that
follows keeps them if no event changed in between (measured at 200,000 events: the tail
after the last page 1.32 -> 0.88 s wall with the hours read beside the index builds; folded
during the load, 0.60 -> 0.47 s, medians of 3 traced runs alternated: the pass no longer
slows the index builds beside it, and its ~0.4 s of CPU is gone). The writer, its index builds done
(idx_events_datetime is kept up during the load), builds the message and form rollups in
the meantime, so the rebuild after it has nothing left to read (the bench's 200,000 events
without metrics: 0.06-0.09 s; with the metrics synced, 0.33-0.48 s).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.db.conversion import conversion_metric
from klaviyo_etl.db.load_rollups import MAX_PROFILES as PREBUILD_MAX_PROFILES
from klaviyo_etl.db.load_rollups import LoadRollups
from klaviyo_etl.db.local_days import LocalDays, local_days
from klaviyo_etl.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Every derived table a full rebuild empties and refills (created by migration m004).
ROLLUP_TABLES = (
    "rollup_entity_days",
    "rollup_entity_totals",
    "rollup_entities",
    "rollup_channel_days",
    "rollup_metric_hours",
    "rollup_activity_days",
    "rollup_currency_days",
)
# Bump when the rollup logic changes so existing databases rebuild once.
ROLLUP_VERSION = 3  # 2: SMS 'failed' apart from 'bounced'; one conversion metric; 3: bot clicks
# Set once `rollup_currency_days` holds every day: a database whose rollups were built before
# that table (migration m010) fills it alone, from its orders (~2 s at 10 M events), instead of
# rebuilding everything (~100 s) under a new ROLLUP_VERSION.
CURRENCY_KEY = "currency_days"

# metric name -> (channel, role) for message events, under every name the metric has had.
MESSAGE_ROLES: dict[str, tuple[str, str]] = {
    known: (channel, role)
    for channel, roles in kc.CHANNEL_METRICS.items()
    for role, name in roles.items()
    if name
    for known in kc.known_as(name)
}
# The click metrics, under every name they have had: the events a bot's click may be.
CLICK_METRICS = tuple(name for name, (_channel, role) in MESSAGE_ROLES.items() if role == "clicked")
FORM_ROLES: dict[str, str] = {kc.VIEWED_FORM: "viewed", kc.SUBMITTED_FORM: "submitted"}


@dataclass
class RefreshStats:
    """What a refresh did, for logs and the benchmark."""

    mode: str  # full | incremental | none
    seconds: float = 0.0
    days: int = 0
    messages: int = 0
    forms: int = 0
    new_events: int = 0
    from_day: int = 0  # messages and forms recomputed from their first changed day only
    notes: list[str] = field(default_factory=list)


def _roles(
    db: sqlite_utils.Database, conversion: str | None = None
) -> list[tuple[str, str, str, str | None]]:
    """(metric_id, kind, role, channel) for every metric the rollups count: message and form
    metrics by name, and the one conversion metric (`conversion`: the config's setting)."""
    names = [*MESSAGE_ROLES, *FORM_ROLES]
    marks = ",".join("?" * len(names))
    out = []
    for metric_id, name in db.execute(
        f"SELECT id, name FROM metrics WHERE deleted_at IS NULL AND name IN ({marks}) ORDER BY id",
        names,
    ).fetchall():
        if name in MESSAGE_ROLES:
            channel, role = MESSAGE_ROLES[name]
            out.append((metric_id, "message", role, channel))
        else:
            out.append((metric_id, "form", FORM_ROLES[name], None))
    picked = conversion_metric(db, conversion)
    if picked is not None:
        out.append((picked.id, "conversion", "conversion", None))
    return out


def _signature(roles: list[tuple], days: LocalDays) -> str:
    """What the rollups were built for. The timezone whose days they count is in it unless it
    is UTC, so a UTC database's signature is what it was before days had a zone (nothing to
    rebuild on upgrade), and a newly synced or changed zone rebuilds them once."""
    if days.utc:
        return json.dumps({"version": ROLLUP_VERSION, "roles": roles})
    return json.dumps({"version": ROLLUP_VERSION, "roles": roles, "timezone": days.zone})


def _state(db: sqlite_utils.Database) -> dict[str, str]:
    return dict(db.execute("SELECT key, value FROM rollup_state").fetchall())


def _max_rowid(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]


def _rebuild_due(state: dict[str, str], signature: str) -> bool:
    """Whether a refresh rebuilds everything: the rollups were never built, or were built for
    other roles or another timezone than `signature` says."""
    return "watermark" not in state or state.get("signature") != signature


def needs_refresh(db: sqlite_utils.Database, conversion: str | None = None) -> bool:
    """True when events changed since the last refresh (or the rollups were never built)."""
    state = _state(db)
    if _rebuild_due(state, _signature(_roles(db, conversion), local_days(db))):
        return True
    if CURRENCY_KEY not in state or int(state["watermark"]) != _max_rowid(db):
        return True
    return db.execute("SELECT 1 FROM rollup_dirty LIMIT 1").fetchone() is not None


def needs_rebuild(db: sqlite_utils.Database, conversion: str | None = None) -> bool:
    """True when the next refresh rebuilds everything (first use, metrics, the conversion
    metric or the account's timezone changed)."""
    return _rebuild_due(_state(db), _signature(_roles(db, conversion), local_days(db)))


# How long a report waits for a sync's write lock before reading the rollups as they are.
BUSY_WAIT_SECONDS = 5.0


def ensure_rollups(
    db: sqlite_utils.Database, *, conversion: str | None = None, wait_seconds: float | None = None
) -> RefreshStats:
    """Bring the rollups up to date before a report reads them; cheap when nothing changed.

    `conversion` is the `[reports] conversion_metric` setting (None: the default rule); every
    caller passes the same one, or the rollups rebuild.

    If a sync holds the write lock longer than `wait_seconds` (default BUSY_WAIT_SECONDS),
    the report goes ahead on the rollups as they are and says so in its notes, rather than
    failing.
    """
    if not needs_refresh(db, conversion):
        return RefreshStats(mode="none")
    timeout = db.execute("PRAGMA busy_timeout").fetchone()[0]
    wait = BUSY_WAIT_SECONDS if wait_seconds is None else wait_seconds
    db.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
    try:
        return refresh_rollups(db, "", conversion=conversion)
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
        return RefreshStats(
            mode="stale",
            notes=["The database is busy (a sync is writing): figures may miss the newest events."],
        )
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(timeout)}")


def _drop_temp_tables(conn: sqlite3.Connection) -> None:
    for name in ("_roles", "_dirty", "_pd", "_ents"):
        conn.execute(f"DROP TABLE IF EXISTS temp.{name}")


def refresh_rollups(
    db: sqlite_utils.Database, since_datetime: str | None = None, *, conversion: str | None = None
) -> RefreshStats:
    """Recompute rollups for everything that changed, or rebuild them all.

    `since_datetime=None` rebuilds from scratch. A datetime (the sync engine passes the
    earliest datetime it wrote) additionally recomputes every day, message and form with
    events at or after it; changes found through the rowid watermark and the triggers are
    recomputed whatever their datetime, so late-arriving or deleted events are never missed.
    An empty string means "only what changed".
    """
    started = time.perf_counter()
    conn = db.conn
    cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
    # A bounded cache and file-backed temp tables: the refresh runs at the end of every
    # sync, whose memory must stay flat however many events there are (temp tables in
    # memory grew with the data).
    conn.execute("PRAGMA temp_store = FILE")
    try:
        conn.execute("BEGIN IMMEDIATE")  # read the state under the write lock
        try:
            roles = _roles(db, conversion)
            days = local_days(db)
            signature = _signature(roles, days)
            state = _state(db)
            full = since_datetime is None or _rebuild_due(state, signature)
            top = _max_rowid(db)
            _load_roles(db, roles)
            if full:
                # 16 MiB while sorting every event, then back (64 MiB made a first load's peak
                # RSS 50 % higher; an incremental refresh reads a few days: the default cache).
                conn.execute("PRAGMA cache_size = -16384")
                stats = _rebuild_all(db, state, signature, days)
            else:
                stats = _refresh_changed(db, int(state["watermark"]), since_datetime or None, days)
                if CURRENCY_KEY not in state:  # built before m010: fill that table alone
                    db.execute("DELETE FROM rollup_currency_days")
                    _currency_days(db, "", "9999", days)
            db.execute("DELETE FROM rollup_dirty")
            db.execute("DELETE FROM rollup_state WHERE key = ?", [PREBUILT_KEY])
            for key, value in (
                ("watermark", str(top)),
                (CURRENCY_KEY, "1"),
                ("signature", signature),
                ("refreshed_at", dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
            ):
                db.execute("INSERT OR REPLACE INTO rollup_state (key, value) VALUES (?, ?)", [key, value])
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled it back itself (a full disk): a ROLLBACK then raised "cannot
            # rollback - no transaction is active" in place of the error that says what happened.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            _drop_temp_tables(conn)
    finally:
        conn.execute(f"PRAGMA cache_size = {int(cache_size)}")
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


# The rollups of a full rebuild that need no role and no index (their passes read the whole
# table), built by `build_beside` while a bulk load's indexes are built; the rebuild keeps
# them when the events are still those they were read from (`_events_token`). Both come
# from one pass in datetime order: the metric hours sum it, and each profile's active days
# arrive in the same order as through idx_events_profile_datetime (a pass of their own,
# sorting every event without that index, took longer than the index builds it would hide
# behind).
PREBUILT_TABLES = ("rollup_metric_hours", "rollup_activity_days")
# The message and form rollups, which read the events through the partial indexes a bulk
# load keeps: `build_beside` builds them on the writer's connection once `work` is done,
# while the reader still reads (they depend on the roles too: `_signature`).
ENTITY_TABLES = ("rollup_entity_days", "rollup_entity_totals", "rollup_entities", "rollup_channel_days")
PREBUILT_KEY = "prebuilt"


def _events_token(conn: sqlite3.Connection) -> str:
    """What changes whenever the events do: a row inserted moves the highest rowid (or
    reuses a deleted one, which the delete trigger records), and the triggers record every
    change to a counted field or delete in rollup_dirty."""
    return json.dumps(
        conn.execute(
            "SELECT (SELECT coalesce(max(rowid), 0) FROM events),"
            " (SELECT count(*) FROM rollup_dirty), (SELECT coalesce(max(rowid), 0) FROM rollup_dirty)"
        ).fetchone()
    )


def _database_file(db: sqlite_utils.Database) -> str:
    return next((row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"), "")


# The rest of a first load's tail at 200,000 events (measured 2026-12-02, `sync events`): the
# two sides here take about as long (index builds ~0.33-0.48 s, the reader ~0.39-0.50 s, on
# the two cores); then the finish's COMMIT runs SQLite's auto-checkpoint, which copies the
# index builds' ~5,200 WAL frames (~21 MB) into the database between two fdatasyncs (~90 ms:
# that, not the `record` write, is the gap before the engine's refresh); the close at exit
# checkpoints the few frames left and unlinks the 25 MB WAL (~20 ms). Tried and dropped
# (medians of 3-11, alternated): keeping idx_events_metric_id_datetime up during the load
# (checkpoint 91 -> 52 ms, tail 0.61 -> 0.58 s, but the last answer 6.67 -> 6.84 s and the
# sync 7.30 -> 7.55 s); the writer counting the active profiles in SQL while the reader sums
# the hours alone (the writer becomes the longer side: 0.56 -> 0.65 s); the reader handing
# finished hours to the writer to store while it reads (both threads' Python then takes
# turns on the GIL: the tail 0.89 -> 1.10 s); 16 KiB pages (the tail ~0.1 s shorter, the
# load 29 -> 37 us of CPU per event, the sync 7.59 -> 8.23 s).
# Measured again with the load's fold (2026-12-02, 200,000 events; tail ~0.45 s after the
# last page): the two builds take 0.13 s (metric_id, datetime) and 0.16 s (profile_id,
# datetime); the queries read both (tests/db/test_load_indexes.py), and the reader is done
# ~75 ms into them, so neither can go and their order does not matter. Building them before
# the last pages, once the first worker finds nothing left to read or split, would hide at
# most ~77 ms (3 pages arrive after that point). The COMMIT's checkpoint is what makes the
# load durable (synchronous=NORMAL syncs the WAL only at a checkpoint), so the run waits
# for it: deferring it (wal_autocheckpoint) only moves it to the close.
def build_beside(
    db: sqlite_utils.Database,
    work: Callable[[], T],
    *,
    conversion: str | None = None,
    folded: LoadRollups | None = None,
) -> T:
    """Run `work` (a bulk load's index builds, on `db`, inside its transaction), then build the
    message and form rollups (`ENTITY_TABLES`, for the conversion metric `conversion` picks),
    and store the metric hours and active profiles for the next full rebuild, which then skips
    its largest passes (~0.4 s of CPU at 200,000 events).

    A second connection makes them while `work` runs (CREATE INDEX runs in SQLite without the
    GIL, so the two share the machine's cores): from `folded`, the load's own fold of its
    pages (`LoadRollups`), when it saw every event as stored, or else by reading the
    committed events in one pass. If `work`'s transaction changed any event (a
    reconciliation flagging rows deleted), the token differs and nothing is stored. Only
    before the first full rebuild (no watermark yet: the next refresh rebuilds everything
    anyway).
    """
    path = _database_file(db)
    if not path or "watermark" in _state(db):
        return work()
    built: dict[str, Any] = {}
    days = local_days(db)
    if folded is not None and folded.days == days and folded.current(db.conn):
        fold = folded

        def read(conn: sqlite3.Connection) -> tuple[str, dict, dict | None]:
            return _events_token(conn), fold.metric_hours(conn, _sum_hours), fold.activity()

    else:

        def read(conn: sqlite3.Connection) -> tuple[str, dict, dict | None]:
            return _prebuild(conn, days)

    reader = _read_beside(path, read, built)
    try:
        result = work()
        signature = _build_entities(db, conversion, days)
    finally:
        reader.join()
    if "error" in built:
        log.debug("rollups not prebuilt: %s", built["error"])
    elif built["result"][0] == _events_token(db.conn):
        token, hours, activity = built["result"]
        tables = PREBUILT_TABLES if activity is not None else PREBUILT_TABLES[:1]
        for table in tables:
            db.execute(f"DELETE FROM {table}")
        _insert_hours(db.conn, hours)
        if activity is not None:
            _insert_activity(db.conn, activity)
        mark: dict[str, Any] = {"token": token, "tables": tables, "timezone": days.zone}
        if signature is not None:
            mark.update(tables=(*tables, *ENTITY_TABLES), signature=signature)
        db.execute(
            "INSERT OR REPLACE INTO rollup_state (key, value) VALUES (?, ?)", [PREBUILT_KEY, json.dumps(mark)]
        )
    return result


def load_fold(db: sqlite_utils.Database) -> LoadRollups | None:
    """A fold for a bulk load's pages (`build_beside` then stores what it folded), or None
    once the rollups were built: `build_beside` stores nothing then (the next refresh reads
    the new events itself), and folding them would only cost the load CPU."""
    return None if "watermark" in _state(db) else LoadRollups()


def _build_entities(db: sqlite_utils.Database, conversion: str | None, days: LocalDays) -> str | None:
    """The message and form rollups as a full rebuild makes them, on `db` (so through the same
    indexes, in the same order: the same floats); the roles' signature, or None when the
    conversion setting matches no metric (the refresh then says so).

    With the connection's own cache, not the rebuild's 16 MiB: beside the reader's sums that
    made a first load's peak RSS 82-85 MB, against 72-73 MB so (80 before), and the sorts
    spilling to temporary files cost no measurable time. SQLite's sorter keeps equal keys in
    the order they came, so the sums are the same floats either way (checked at 200,000
    events with cents, and by a test)."""
    conn = db.conn
    try:
        roles = _roles(db, conversion)
        _load_roles(db, roles)
        for table in ENTITY_TABLES:
            db.execute(f"DELETE FROM {table}")
        _rebuild_entity_tables(db, days)
        return _signature(roles, days)
    except ConfigError as exc:
        log.debug("message and form rollups not prebuilt: %s", exc)
        return None
    finally:
        _drop_temp_tables(conn)


def _prebuilt(
    db: sqlite_utils.Database, state: dict[str, str], signature: str, days: LocalDays
) -> tuple[str, ...]:
    """The tables `build_beside` stored that are still current (the events did not change
    since it read them, nor the timezone whose days they count; for the message and form
    rollups, nor did the roles)."""
    try:
        mark = json.loads(state.get(PREBUILT_KEY) or "null")
    except ValueError:
        return ()
    if not isinstance(mark, dict) or mark.get("token") != _events_token(db.conn):
        return ()
    if mark.get("timezone", "UTC") != days.zone:
        return ()
    current = PREBUILT_TABLES + (ENTITY_TABLES if mark.get("signature") == signature else ())
    return tuple(t for t in current if t in mark.get("tables", ()))


def _prebuild(conn: sqlite3.Connection, days: LocalDays) -> tuple[str, dict, dict | None]:
    """The events' token, the metric hours as `_metric_hours` makes them and the active
    profiles as `_rebuild_activity_full` does (None past PREBUILD_MAX_PROFILES), from one
    pass over the live events."""
    token = _events_token(conn)
    activity: dict[tuple[str, str], int] | None = {}
    last_days: dict[str, str] = {}  # profile -> its last active day so far
    hour_read, day = None, None  # the rows' hour as last seen, and its day (one string each)

    def counted_rows():
        """The pass's rows the metric hours count; the active days are followed on the way."""
        nonlocal activity, hour_read, day
        # The order the full pass reads through idx_events_datetime (datetime, then rowid), so
        # the value sums are the same floats. NULL datetimes come first: a profile's days
        # arrive in the order the activity pass reads them through (profile_id, datetime).
        # One sort of the table read in its order, NOT INDEXED: through idx_events_datetime
        # (kept up during a bulk load) each row is a lookup of a page the windows' interleaved
        # pages left anywhere (measured at 200,000 events: 0.39 -> 0.52 s CPU).
        for metric_id, hour, value, profile_id, counted in conn.execute(
            f"SELECT metric_id, {days.hour_sql()}, value, profile_id,"
            " datetime >= '' AND datetime < '9999' AND metric_id IS NOT NULL FROM events NOT INDEXED"
            " WHERE deleted_at IS NULL ORDER BY datetime, rowid"
        ):
            if counted:
                yield metric_id, hour, value
            if profile_id is not None and activity is not None:
                if hour != hour_read:
                    hour_read, day = hour, None if hour is None else hour[:10]
                last = last_days.get(profile_id, "")
                if day != last:
                    activity[(day, last)] = activity.get((day, last), 0) + 1
                    last_days[profile_id] = day
                    if len(last_days) > PREBUILD_MAX_PROFILES:
                        activity = None
                        last_days.clear()

    hours = _sum_hours(counted_rows())
    return token, hours, activity


def _read_beside(
    path: str, read: Callable[[sqlite3.Connection], Any], out: dict[str, Any]
) -> threading.Thread:
    """Start `read(conn)` on a thread of its own, with its own connection to `path` and in one
    read transaction (a consistent snapshot of what is committed); its result or error goes
    to `out`. Python's sqlite3 lets go of the GIL while SQLite works, so SQL on either side
    runs beside the other's Python."""

    def run() -> None:
        try:
            conn = sqlite3.connect(path, isolation_level=None)
            try:
                conn.execute("PRAGMA query_only = ON")
                conn.execute("PRAGMA temp_store = FILE")  # sorts spill to disk: flat memory
                conn.execute("BEGIN")
                out["result"] = read(conn)
                conn.execute("COMMIT")
            finally:
                conn.close()
        except Exception as exc:  # the caller does the work itself, as without a reader
            out["error"] = exc

    thread = threading.Thread(target=run, name="rollup-reader", daemon=True)
    thread.start()
    return thread


def _load_roles(db: sqlite_utils.Database, roles: list[tuple]) -> None:
    db.execute("DROP TABLE IF EXISTS temp._roles")
    db.execute(
        "CREATE TEMP TABLE _roles (metric_id TEXT, kind TEXT, role TEXT, channel TEXT,"
        " PRIMARY KEY (metric_id, role))"
    )
    # Received, bounced and failed events also count as 'recipients' (a profile counted once
    # whichever it had), so one grouping pass over the events yields that role too.
    extra = [
        (m, k, "recipients", c)
        for m, k, r, c in roles
        if k == "message" and r in ("received", "bounced", "failed")
    ]
    db.conn.executemany("INSERT INTO temp._roles VALUES (?, ?, ?, ?)", roles + extra)
    db.execute("DROP TABLE IF EXISTS temp._dirty")
    # What changed: days, and messages/forms with the earliest day touched ('' = unknown).
    db.execute("CREATE TEMP TABLE _dirty (kind TEXT, key TEXT, day TEXT, PRIMARY KEY (kind, key))")


def _rebuild_all(
    db: sqlite_utils.Database, state: dict[str, str], signature: str, days: LocalDays
) -> RefreshStats:
    # Tables `build_beside` filled from the same events stay (the events did not change since).
    kept = _prebuilt(db, state, signature, days)
    for table in ROLLUP_TABLES:
        if table not in kept:
            db.execute(f"DELETE FROM {table}")
    if "rollup_metric_hours" not in kept:
        _metric_hours(db, "", "9999", days)
    if "rollup_activity_days" not in kept:
        # Not read on a second connection beside the message and form passes: two Python
        # passes contend for the GIL (measured: each took twice the CPU, the wall barely less).
        _rebuild_activity_full(db, days)
    _currency_days(db, "", "9999", days)
    if set(ENTITY_TABLES) <= set(kept):
        count = "SELECT count(*) FROM rollup_entities WHERE kind = ?"
        messages, forms = (db.execute(count, [kind]).fetchone()[0] for kind in ("message", "form"))
    else:
        messages, forms = _rebuild_entity_tables(db, days)
    return RefreshStats(mode="full", messages=messages, forms=forms)


def _rebuild_entity_tables(db: sqlite_utils.Database, days: LocalDays) -> tuple[int, int]:
    """Every message and form rollup and the channel sums (`temp._roles` loaded, the tables
    empty); how many messages and forms there are."""
    messages, _ = _rebuild_entities(db, "message", None, days)
    forms, _ = _rebuild_entities(db, "form", None, days)
    _rebuild_channels(db)
    return messages, forms


def _since(days: LocalDays, day: str) -> str:
    """The bound on `events.datetime` where the local `day` begins ('' and '9999' stay open)."""
    return day if day in ("", "9999") else days.start_of(day)


# The days the triggers record are UTC days (`substr(datetime, 1, 10)`, migration m004): an
# event's local day is its UTC day, the day before or the day after (offsets are within a day).
DIRTY_LOCAL = """SELECT kind, key, date(day, '-1 day') AS day FROM rollup_dirty
    WHERE kind NOT IN ('rowid', 'day')
    UNION ALL SELECT 'day', date(key, shift), date(key, shift) FROM rollup_dirty,
      (SELECT '-1 day' AS shift UNION ALL SELECT '+0 days' UNION ALL SELECT '+1 day')
    WHERE kind = 'day'"""


def _refresh_changed(
    db: sqlite_utils.Database, watermark: int, since: str | None, days: LocalDays
) -> RefreshStats:
    # A deleted row's rowid may be handed out again; rescan from the lowest one deleted.
    low = db.execute("SELECT min(CAST(key AS INTEGER)) FROM rollup_dirty WHERE kind = 'rowid'").fetchone()[0]
    if low is not None:
        watermark = min(watermark, int(low) - 1)
    new_events = db.execute("SELECT count(*) FROM events WHERE rowid > ?", [watermark]).fetchone()[0]
    merge = " ON CONFLICT (kind, key) DO UPDATE SET day = min(day, excluded.day)"
    recorded = "rollup_dirty WHERE kind != 'rowid'" if days.utc else f"({DIRTY_LOCAL})"
    db.execute(
        f"INSERT INTO temp._dirty SELECT kind, key, min(coalesce(day, '')) FROM {recorded}"
        " GROUP BY kind, key" + merge
    )
    keys = (("message", "message_id"), ("message", "attributed_message_id"), ("form", "form_id"))
    day_sql = days.day_sql()
    for kind, expr in (("day", day_sql), *keys):
        db.execute(
            f"INSERT INTO temp._dirty SELECT '{kind}', {expr}, min({day_sql})"
            f" FROM events WHERE rowid > ? AND {expr} IS NOT NULL GROUP BY {expr}" + merge,
            [watermark],
        )
    if since:
        since_day = days.day_of(since)
        last = db.execute("SELECT max(datetime) FROM events").fetchone()[0]
        if last and days.day_of(last) >= since_day:
            day = dt.date.fromisoformat(since_day)
            end = dt.date.fromisoformat(days.day_of(last))
            spanned = []
            while day <= end:
                spanned.append(("day", day.isoformat(), day.isoformat()))
                day += dt.timedelta(days=1)
            db.conn.executemany("INSERT OR IGNORE INTO temp._dirty VALUES (?, ?, ?)", spanned)
        for kind, expr in keys:
            db.execute(
                f"INSERT INTO temp._dirty SELECT DISTINCT '{kind}', {expr}, ? FROM events"
                f" WHERE datetime >= ? AND {expr} IS NOT NULL" + merge,
                [since_day, _since(days, since_day)],
            )
    changed = [
        row[0] for row in db.execute("SELECT key FROM temp._dirty WHERE kind = 'day' ORDER BY key").fetchall()
    ]
    if changed:
        db.execute(
            "DELETE FROM rollup_metric_hours WHERE substr(hour, 1, 10) IN"
            " (SELECT key FROM temp._dirty WHERE kind = 'day')"
        )
        db.execute(
            "DELETE FROM rollup_currency_days WHERE day IN (SELECT key FROM temp._dirty WHERE kind = 'day')"
        )
        for start, end in _day_ranges(changed):
            _metric_hours(db, start, end, days)
            _currency_days(db, start, end, days)
        _rebuild_activity(db, changed[0], days)
    messages, recent_messages = _rebuild_entities(db, "message", "message", days)
    forms, recent_forms = _rebuild_entities(db, "form", "form", days)
    if messages or db.execute("SELECT 1 FROM temp._dirty WHERE kind = 'message'").fetchone():
        _rebuild_channels(db)
    return RefreshStats(
        mode="incremental",
        days=len(changed),
        messages=messages,
        forms=forms,
        new_events=new_events,
        from_day=recent_messages + recent_forms,
    )


def _metric_hours(db: sqlite_utils.Database, start: str, end: str, days: LocalDays) -> None:
    """Insert hourly counts (local hours) for the events of the local days [start, end).

    Summed in Python from one pass over the rows: SQLite would sort every event to group
    by an expression, which is several times slower on millions of rows.
    """
    _insert_hours(
        db.conn,
        _sum_hours(
            db.conn.execute(
                f"SELECT metric_id, {days.hour_sql()}, value FROM events"
                " WHERE datetime >= ? AND datetime < ? AND deleted_at IS NULL AND metric_id IS NOT NULL",
                [_since(days, start), _since(days, end)],
            )
        ),
    )


# Whether a click event is a bot's: its `Bot Click` property (LIVE_BEHAVIOUR.md §12) true, as
# Klaviyo sends it (JSON true), or as text or a number that says so. A CASE, as SQLite
# evaluates its branches lazily: only the events naming the property pay for their JSON.
BOT_CLICK = (
    "CASE WHEN instr({a}, '\"Bot Click\"') = 0 THEN 0 WHEN json_valid({a}) THEN"
    " json_extract({a}, '$.event_properties.\"Bot Click\"') IN (1, 'true', 'True', '1', '1.0')"
    " ELSE 0 END"
)
# The role a message event plays: a bot's click is 'bot_clicked', apart from 'clicked', as
# Klaviyo's reporting leaves bot clicks out of clicks and click rates by default.
ROLE = (
    "CASE WHEN r.role != 'clicked' THEN r.role WHEN "
    + BOT_CLICK.format(a="e.attributes")
    + " THEN 'bot_clicked' ELSE r.role END"
)


# An event's currency: `$currency_code` in its properties (LIVE_BEHAVIOUR.md §7), upper case.
CURRENCY = (
    "CASE WHEN json_valid(attributes) THEN upper(trim(coalesce("
    "json_extract(attributes, '$.event_properties.\"$currency_code\"'), ''))) ELSE '' END"
)


def _currency_days(db: sqlite_utils.Database, start: str, end: str, days: LocalDays) -> None:
    """Insert the currency rows of the events of the local days [start, end), for every metric
    named as the conversion metric is (`temp._roles` loaded): through the (metric_id,
    datetime) index, so a refresh reads the orders of its days only (none without one)."""
    ids = [
        row[0]
        for row in db.execute(
            "SELECT id FROM metrics WHERE name IN (SELECT name FROM metrics WHERE id IN"
            " (SELECT metric_id FROM temp._roles WHERE kind = 'conversion'))"
        )
    ]
    if not ids:
        return
    db.execute(
        f"""INSERT INTO rollup_currency_days
            SELECT metric_id, {days.day_sql()}, {CURRENCY}, count(*), total(value)
            FROM events WHERE metric_id IN ({",".join("?" * len(ids))})
              AND datetime >= ? AND datetime < ? AND deleted_at IS NULL
            GROUP BY 1, 2, 3""",
        [*ids, _since(days, start), _since(days, end)],
    )


def _sum_hours(rows) -> dict[tuple[str, str], list]:
    """(metric_id, hour, value) rows -> {(metric_id, hour): [events, value]}, summed in the
    rows' order (the same order gives the same float sums, to the last bit)."""
    sums: dict[tuple[str, str], list] = {}
    for metric_id, hour, value in rows:
        entry = sums.get((metric_id, hour))
        if entry is None:
            sums[(metric_id, hour)] = [1, value or 0.0]
        else:
            entry[0] += 1
            entry[1] += value or 0.0
    return sums


def _insert_hours(conn: sqlite3.Connection, sums: dict[tuple[str, str], list]) -> None:
    conn.executemany(
        "INSERT INTO rollup_metric_hours VALUES (?, ?, ?, ?)",
        ((m, h, n, v) for (m, h), (n, v) in sums.items()),
    )


def _rebuild_activity_full(db: sqlite_utils.Database, days: LocalDays) -> None:
    """All active-profile rows from one ordered pass over the (profile_id, datetime) index."""
    counts: dict[tuple[str, str], int] = {}
    last_profile, last_day = None, ""
    for profile_id, day in db.conn.execute(
        # Served in order by idx_events_profile_datetime (no INDEXED BY: a bulk load may
        # drop indexes for a while, and a report must still work then, only slower).
        f"SELECT profile_id, {days.day_sql()} FROM events"
        " WHERE deleted_at IS NULL AND profile_id IS NOT NULL ORDER BY profile_id, datetime"
    ):
        if profile_id != last_profile:
            last_profile, last_day = profile_id, ""
        elif day == last_day:
            continue
        key = (day, last_day)
        counts[key] = counts.get(key, 0) + 1
        last_day = day
    _insert_activity(db.conn, counts)


def _insert_activity(conn: sqlite3.Connection, counts: dict[tuple[str, str], int]) -> None:
    conn.executemany(
        "INSERT INTO rollup_activity_days VALUES (?, ?, ?)",
        ((day, prev, n) for (day, prev), n in counts.items()),
    )


def _day_ranges(days: list[str]) -> list[tuple[str, str]]:
    """Sorted ISO days -> half-open [start, end) ranges of consecutive days."""
    ranges: list[tuple[str, str]] = []
    for day in days:
        nxt = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], nxt)
        else:
            ranges.append((day, nxt))
    return ranges


def _rebuild_activity(db: sqlite_utils.Database, first_day: str, days: LocalDays) -> None:
    """Recompute active-profile rows for days >= first_day ('' = all days)."""
    db.execute("DELETE FROM rollup_activity_days WHERE day >= ?", [first_day])
    # Each recently active profile's last active day before first_day, found through the
    # (profile_id, datetime) index, links the recomputed days to the kept ones.
    db.execute(
        f"""WITH recent AS (
               SELECT DISTINCT profile_id, {days.day_sql()} AS day FROM events
               WHERE datetime >= :t0 AND deleted_at IS NULL AND profile_id IS NOT NULL),
           earlier AS (
               SELECT p.profile_id, (
                   SELECT {days.day_sql("max(e.datetime)")} FROM events e
                   WHERE e.profile_id = p.profile_id AND e.datetime < :t0
                     AND e.deleted_at IS NULL) AS day
               FROM (SELECT DISTINCT profile_id FROM recent) p
               WHERE :d0 != ''),
           days AS (SELECT profile_id, day FROM recent
                    UNION ALL SELECT profile_id, day FROM earlier WHERE day IS NOT NULL),
           lagged AS (SELECT day, LAG(day) OVER (PARTITION BY profile_id ORDER BY day) AS prev
                      FROM days)
           INSERT INTO rollup_activity_days
           SELECT day, coalesce(prev, ''), count(*) FROM lagged WHERE day >= :d0 GROUP BY 1, 2""",
        {"d0": first_day, "t0": _since(days, first_day)},
    )


def _rebuild_channels(db: sqlite_utils.Database) -> None:
    """Sum the message rollups per channel (small: channels x roles x days x prev days)."""
    db.execute("DELETE FROM rollup_channel_days")
    db.execute(
        """INSERT INTO rollup_channel_days
           SELECT coalesce(e.channel, ''), d.role, d.day, d.prev_day, sum(d.profiles),
                  sum(d.events), total(d.value)
           FROM rollup_entity_days d JOIN rollup_entities e
             ON e.kind = d.kind AND e.entity_id = d.entity_id
           WHERE d.kind = 'message' GROUP BY 1, 2, 3, 4"""
    )


def _rebuild_entities(
    db: sqlite_utils.Database, kind: str, dirty_kind: str | None, days: LocalDays
) -> tuple[int, int]:
    """Recompute the rollups of the dirty messages/forms (all of them when dirty_kind is None).

    An entity whose change is recent and after its first day is recomputed from that day
    on (cost: the events since then); any other is recomputed from all its events.
    """
    if dirty_kind is None:
        _recompute_whole(db, kind, "IS NOT NULL", days)
        return _finish_entities(db, kind, "IS NOT NULL"), 0
    dirty = dict(db.execute("SELECT key, day FROM temp._dirty WHERE kind = ?", [dirty_kind]))
    if not dirty:
        return 0, 0
    known = dict(
        db.execute(
            "SELECT entity_id, first_day FROM rollup_entities WHERE kind = ? AND entity_id IN"
            " (SELECT key FROM temp._dirty WHERE kind = ?)",
            [kind, dirty_kind],
        )
    )
    last = db.execute("SELECT max(datetime) FROM events").fetchone()[0] or ""
    recent = (
        (dt.date.fromisoformat(days.day_of(last)) - dt.timedelta(days=RECENT_DAYS)).isoformat()
        if last
        else ""
    )
    partial = {
        e: d for e, d in dirty.items() if e in known and d and known[e] and d > known[e] and d >= recent
    }
    db.execute("DROP TABLE IF EXISTS temp._ents")
    db.execute("CREATE TEMP TABLE _ents (key TEXT PRIMARY KEY, day TEXT)")
    db.conn.executemany("INSERT INTO temp._ents VALUES (?, NULL)", [(e,) for e in dirty if e not in partial])
    only = "IN (SELECT key FROM temp._ents WHERE day IS NULL)"
    for table in ("rollup_entity_days", "rollup_entities"):
        db.execute(f"DELETE FROM {table} WHERE kind = ? AND entity_id {only}", [kind])
    _recompute_whole(db, kind, only, days)
    if partial:
        db.conn.executemany("INSERT INTO temp._ents VALUES (?, ?)", partial.items())
        _recompute_from(db, kind, partial, days)
    everything = "IN (SELECT key FROM temp._ents)"
    db.execute(f"DELETE FROM rollup_entity_totals WHERE kind = ? AND entity_id {everything}", [kind])
    return _finish_entities(db, kind, everything), len(partial)


# Changes older than this (before the newest event) recompute an entity's whole history:
# a day-by-day recompute reads every event since the change, and old changes are rare.
RECENT_DAYS = 14


def _role_map(db: sqlite_utils.Database, kind: str) -> dict[str, list[tuple[str, str | None]]]:
    out: dict[str, list[tuple[str, str | None]]] = {}
    for metric_id, role, channel in db.execute(
        "SELECT metric_id, role, channel FROM temp._roles WHERE kind = ?", [kind]
    ):
        out.setdefault(metric_id, []).append((role, channel))
    return out


def _store_days(db: sqlite_utils.Database, kind: str, rows, start_prev=None) -> None:
    """Turn (entity, role, profile, day, events, value) rows sorted by the first four into
    rollup_entity_days rows; `start_prev` gives a profile's day before the rows begin."""
    sums: dict[tuple[str, str, str, str], list] = {}
    last_key, last_day = None, ""
    for entity_id, role, profile_id, day, events, value in rows:
        key = (entity_id, role, profile_id)
        if profile_id == "":
            prev = ""
        elif key == last_key:
            prev = last_day
        else:
            prev = start_prev.get(key, "") if start_prev else ""
        last_key, last_day = key, day
        entry = sums.get((entity_id, role, day, prev))
        if entry is None:
            sums[(entity_id, role, day, prev)] = [int(profile_id != ""), events, value or 0.0]
        else:
            entry[0] += profile_id != ""
            entry[1] += events
            entry[2] += value or 0.0
    db.conn.executemany(
        "INSERT INTO rollup_entity_days VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ((kind, e, r, d, p, n, ev, v) for (e, r, d, p), (n, ev, v) in sums.items()),
    )


def _recompute_whole(db: sqlite_utils.Database, kind: str, only: str, days: LocalDays) -> None:
    """Every day of the entities matching `only`, from all their events."""
    db.execute("DROP TABLE IF EXISTS temp._pd")
    # Keyed in the order the pass below reads it, so it needs no sort; '' = no profile.
    db.execute(
        """CREATE TEMP TABLE _pd (entity_id TEXT NOT NULL, role TEXT NOT NULL, channel TEXT,
           flow_id TEXT, profile_id TEXT NOT NULL, day TEXT NOT NULL, events INTEGER, value REAL,
           PRIMARY KEY (entity_id, role, profile_id, day)) WITHOUT ROWID"""
    )
    key = "message_id" if kind == "message" else "form_id"
    # A kind without roles (no metric of it synced, as `sync events` alone leaves it) skips
    # its join: it reads every event with the key and matches none (~0.07 s at 200,000).
    with_roles = {k for (k,) in db.execute("SELECT DISTINCT kind FROM temp._roles")}
    day = days.day_sql("e.datetime")
    if kind in with_roles:
        db.execute(
            f"""INSERT INTO temp._pd
                SELECT e.{key}, {ROLE}, max(r.channel), max(e.flow_id), coalesce(e.profile_id, ''),
                       {day}, count(*), total(e.value)
                FROM events e JOIN temp._roles r ON r.metric_id = e.metric_id AND r.kind = ?
                WHERE e.{key} {only} AND e.deleted_at IS NULL AND e.datetime IS NOT NULL
                GROUP BY e.{key}, {ROLE}, coalesce(e.profile_id, ''), {day}""",
            [kind],
        )
    if kind == "message" and "conversion" in with_roles:
        # Conversions: events of the conversion metric credited to the message.
        db.execute(
            f"""INSERT INTO temp._pd
                SELECT e.attributed_message_id, 'conversion', NULL, max(e.attributed_flow_id),
                       coalesce(e.profile_id, ''), {day}, count(*),
                       total(e.value)
                FROM events e JOIN temp._roles r
                  ON r.metric_id = e.metric_id AND r.kind = 'conversion'
                WHERE e.attributed_message_id {only} AND e.deleted_at IS NULL
                  AND e.datetime IS NOT NULL
                GROUP BY e.attributed_message_id, coalesce(e.profile_id, ''),
                         {day}"""
        )
    _store_days(
        db,
        kind,
        db.conn.execute(
            "SELECT entity_id, role, profile_id, day, events, value FROM temp._pd"
            " ORDER BY entity_id, role, profile_id, day"
        ),
    )
    db.execute(
        """INSERT INTO rollup_entities
           SELECT ?, entity_id, max(channel), max(flow_id), min(day), max(day)
           FROM temp._pd GROUP BY entity_id""",
        [kind],
    )


def _recompute_from(db: sqlite_utils.Database, kind: str, start: dict[str, str], days: LocalDays) -> None:
    """Rows from each entity's first changed day on; earlier rows stay as they are."""
    key = "message_id" if kind == "message" else "form_id"
    db.conn.executemany(
        "DELETE FROM rollup_entity_days WHERE kind = ? AND entity_id = ? AND day >= ?",
        [(kind, e, d) for e, d in start.items()],
    )
    roles = _role_map(db, kind)
    conversions = {m for m, rs in _role_map(db, "conversion").items()} if kind == "message" else set()
    cells: dict[tuple[str, str, str, str], list] = {}
    flows: dict[str, str] = {}
    channels: dict[str, str] = {}
    columns = [(key, "flow_id", roles)]
    if kind == "message":
        columns.append(
            ("attributed_message_id", "attributed_flow_id", {m: [("conversion", None)] for m in conversions})
        )
    first = min(start.values())
    clicks = "(SELECT metric_id FROM temp._roles WHERE role = 'clicked')"
    bot = f"CASE WHEN metric_id IN {clicks} THEN {BOT_CLICK.format(a='attributes')} ELSE 0 END"
    for column, flow_column, role_map in columns:
        # The unary + keeps SQLite on the datetime index: the entity index would read the
        # entities' whole history, which is what this path avoids.
        for entity_id, metric_id, profile_id, day, value, flow_id, is_bot in db.conn.execute(
            f"SELECT {column}, metric_id, coalesce(profile_id, ''), {days.day_sql()},"
            f" value, {flow_column}, {bot} FROM events WHERE datetime >= ? AND deleted_at IS NULL"
            f" AND +{column} IN (SELECT key FROM temp._ents WHERE day IS NOT NULL)",
            [_since(days, first)],
        ):
            if day < start[entity_id]:
                continue
            for role, channel in _bot_roles(role_map.get(metric_id, ()), is_bot):
                cell = cells.get((entity_id, role, profile_id, day))
                if cell is None:
                    cells[(entity_id, role, profile_id, day)] = [1, value or 0.0]
                else:
                    cell[0] += 1
                    cell[1] += value or 0.0
                if flow_id:
                    flows[entity_id] = max(flows.get(entity_id, ""), flow_id)
                if channel:
                    channels[entity_id] = max(channels.get(entity_id, ""), channel)
    # Each (entity, profile)'s last day before the recomputed ones, per role, through the
    # (profile_id, datetime) index: a profile has few events, an entity may have millions.
    previous: dict[tuple[str, str, str], str] = {}
    for entity_id, profile_id in {(e, p) for e, _r, p, _d in cells if p}:
        for column, role_map in [(key, roles)] + (
            [("attributed_message_id", {m: [("conversion", None)] for m in conversions})]
            if kind == "message"
            else []
        ):
            for metric_id, is_bot, last in db.conn.execute(
                # The unary + steers SQLite to the (profile_id, datetime) index.
                f"SELECT metric_id, {bot}, max(datetime) FROM events WHERE profile_id = ? AND datetime < ?"
                f" AND deleted_at IS NULL AND +{column} = ? GROUP BY 1, 2",
                [profile_id, _since(days, start[entity_id]), entity_id],
            ):
                for role, _channel in _bot_roles(role_map.get(metric_id, ()), is_bot):
                    k = (entity_id, role, profile_id)
                    previous[k] = max(previous.get(k, ""), days.day_of(last))
    _store_days(db, kind, ((e, r, p, d, n, v) for (e, r, p, d), (n, v) in sorted(cells.items())), previous)
    # Keep each entity's channel and flow; widen its first/last day from the stored rows.
    for entity_id in start:
        db.execute(
            """UPDATE rollup_entities SET
                 channel = coalesce(channel, ?), flow_id = coalesce(flow_id, ?),
                 first_day = (SELECT min(day) FROM rollup_entity_days WHERE kind = ?
                              AND entity_id = ?),
                 last_day = (SELECT max(day) FROM rollup_entity_days WHERE kind = ?
                             AND entity_id = ?)
               WHERE kind = ? AND entity_id = ?""",
            [
                channels.get(entity_id),
                flows.get(entity_id) or None,
                kind,
                entity_id,
                kind,
                entity_id,
                kind,
                entity_id,
            ],
        )


def _click_ids(db: sqlite_utils.Database, channel: str | None) -> list[str]:
    """The ids of the synced click metrics (of `channel`, if given)."""
    names = [n for n in CLICK_METRICS if channel is None or MESSAGE_ROLES[n][0] == channel]
    return [
        metric_id
        for (metric_id,) in db.execute(
            f"SELECT id FROM metrics WHERE deleted_at IS NULL AND name IN ({','.join('?' * len(names))})",
            names,
        )
    ]


def _days_between(days: LocalDays, lo: str | None, hi: str | None) -> tuple[str, list[str]]:
    """SQL (and its parameters) keeping the events on the account's days [lo, hi)."""
    where, params = "", []
    if lo is not None:
        where += f" AND {days.day_sql()} >= ?"
        params.append(lo)
    if hi is not None:
        where += f" AND {days.day_sql()} < ?"
        params.append(hi)
    return where, params


# Whether a pair's clicks (grouped) hold both a person's and a bot's.
_BOTH = (
    f"max(coalesce({BOT_CLICK.format(a='attributes')}, 0)) = 1"
    f" AND min(coalesce({BOT_CLICK.format(a='attributes')}, 0)) = 0"
)


def clickers_of_both(
    db: sqlite_utils.Database,
    entity_ids: Sequence[str] | None,
    lo: str | None = None,
    hi: str | None = None,
    *,
    channel: str | None = None,
) -> dict[str, int]:
    """Per message: the profiles with both a person's and a bot's click on it on the account's
    days [lo, hi) (None: all time). The rollups count 'clicked' and 'bot_clicked' profiles
    apart, so a report that counts bots' clicks as clicks (`[reports] exclude_bot_clicks`)
    takes these off their sum to get the distinct clickers, with no rollup rebuild.
    `entity_ids` None: every message (of `channel`, if given)."""
    clicks = _click_ids(db, channel)
    if entity_ids is not None and not entity_ids or not clicks:
        return {}
    where, params = _days_between(local_days(db), lo, hi)
    out: dict[str, int] = {}
    chunks = (
        [list(entity_ids[start : start + 500]) for start in range(0, len(entity_ids), 500)]
        if entity_ids is not None
        else [None]
    )
    for chunk in chunks:
        which = "IS NOT NULL" if chunk is None else f"IN ({','.join('?' * len(chunk))})"
        for entity_id, both in db.execute(
            f"""SELECT message_id, count(*) FROM (
                  SELECT message_id, coalesce(profile_id, '') FROM events
                  WHERE message_id {which}
                    AND metric_id IN ({",".join("?" * len(clicks))})
                    AND deleted_at IS NULL AND datetime IS NOT NULL{where}
                  GROUP BY 1, 2 HAVING {_BOTH})
                GROUP BY 1""",
            [*(chunk or []), *clicks, *params],
        ):
            out[entity_id] = both
    return out


def click_days_of_both(
    db: sqlite_utils.Database, lo: str | None, hi: str | None, *, channel: str
) -> list[tuple[str, str, str, bool, bool]]:
    """(day, message, profile, a person clicked that day, a bot clicked that day) for every
    (message, profile) pair of `channel` with both kinds of click on the account's days
    [lo, hi). A chart that counts bots' clicks as clicks folds these per bucket to find the
    pairs that bucket's 'clicked' and 'bot_clicked' both hold (`clickers_of_both` per bucket,
    in one pass over the clicks)."""
    clicks = _click_ids(db, channel)
    if not clicks:
        return []
    days = local_days(db)
    where, params = _days_between(days, lo, hi)
    bot = f"coalesce({BOT_CLICK.format(a='attributes')}, 0)"
    rows = db.execute(
        f"""WITH pairs AS (
              SELECT message_id, coalesce(profile_id, '') AS profile FROM events
              WHERE message_id IS NOT NULL AND metric_id IN ({",".join("?" * len(clicks))})
                AND deleted_at IS NULL AND datetime IS NOT NULL{where}
              GROUP BY 1, 2 HAVING {_BOTH})
            SELECT {days.day_sql()}, e.message_id, p.profile, min({bot}) = 0, max({bot}) = 1
            FROM events e JOIN pairs p
              ON e.message_id = p.message_id AND coalesce(e.profile_id, '') = p.profile
            WHERE e.metric_id IN ({",".join("?" * len(clicks))})
              AND e.deleted_at IS NULL AND e.datetime IS NOT NULL{where}
            GROUP BY 1, 2, 3""",
        [*clicks, *params, *clicks, *params],
    )
    return [(day, message, profile, bool(person), bool(bots)) for day, message, profile, person, bots in rows]


def _bot_roles(roles: Sequence[tuple[str, str | None]], is_bot: object) -> Sequence[tuple[str, str | None]]:
    """A metric's (role, channel) pairs for one event: a bot's click is 'bot_clicked' (`ROLE`)."""
    if not is_bot:
        return roles
    return [("bot_clicked" if role == "clicked" else role, channel) for role, channel in roles]


def _finish_entities(db: sqlite_utils.Database, kind: str, only: str) -> int:
    """Totals over all days for the entities matching `only`; returns how many there are."""
    db.execute(
        f"""INSERT INTO rollup_entity_totals
            SELECT kind, entity_id, role, sum(CASE WHEN prev_day = '' THEN profiles ELSE 0 END),
                   sum(events), total(value), min(day), max(day)
            FROM rollup_entity_days WHERE kind = ? AND entity_id {only}
            GROUP BY entity_id, role""",
        [kind],
    )
    return db.execute(
        "SELECT count(*) FROM rollup_entities WHERE kind = ? AND entity_id " + only, [kind]
    ).fetchone()[0]
