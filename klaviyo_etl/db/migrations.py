"""Versioned schema migrations, applied in order and recorded in `_migrations`.

Table and column names here are a public contract: analysts query them directly.
Add a new migration function for every change; never edit one that has shipped.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3

import sqlite_utils
from sqlite_utils.migrations import Migrations

from klaviyo_etl.db.privacy import install_erasure
from klaviyo_etl.errors import DatabaseError
from klaviyo_etl.timeutil import stored_time


class NumberedMigrations(Migrations):
    """sqlite-utils' `Migrations`, recording each applied one in `_migrations` with its number.

    The library registers the functions, finds the pending ones and runs each in a
    transaction together with its record. Only the record differs: sqlite-utils writes
    `_sqlite_migrations` (set, name, applied_at), while every database this tool has
    written records `_migrations` (version, name, applied_at), and the version is what
    the refusal of a file from a newer klaviyo-etl reads. So the record stays where and
    as it was, and existing files open unchanged.
    """

    migrations_table = "_migrations"

    def names(self) -> list[str]:
        """Every registered migration, in order: the version of each is its place + 1."""
        return [m.name for m in self._migrations]

    def applied(self, db: sqlite_utils.Database) -> list[Migrations._AppliedMigration]:
        if self.migrations_table not in db.table_names():
            return []
        return [
            self._AppliedMigration(name=row["name"], applied_at=row["applied_at"])
            for row in db[self.migrations_table].rows_where(order_by="version")
        ]

    def newest_version(self, db: sqlite_utils.Database) -> int:
        if self.migrations_table not in db.table_names():
            return 0
        return db.execute(f"SELECT coalesce(max(version), 0) FROM {self.migrations_table}").fetchone()[0]

    def ensure_migrations_table(self, db: sqlite_utils.Database) -> None:
        db[self.migrations_table].create(  # type: ignore[union-attr]
            {"version": int, "name": str, "applied_at": str}, pk="version", if_not_exists=True
        )

    def _record_applied(self, db: sqlite_utils.Database, name: str) -> None:
        db[self.migrations_table].insert(  # type: ignore[union-attr]
            {
                "version": self.names().index(name) + 1,
                "name": name,
                "applied_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        )


MIGRATIONS = NumberedMigrations("klaviyo_etl")
# `@migration` registers a function under its own name (m00N_...); the order is the version.
migration = MIGRATIONS()

# Columns every synced resource table carries besides its typed ones.
COMMON = {"attributes": str, "synced_at": str, "deleted_at": str}


def _resource(db: sqlite_utils.Database, name: str, columns: dict, indexes=()) -> None:
    db[name].create({"id": str, **columns, **COMMON}, pk="id", if_not_exists=True)
    for cols in indexes:
        db[name].create_index(list(cols), if_not_exists=True)


@migration
def m001_resources(db: sqlite_utils.Database) -> None:
    _resource(
        db,
        "metrics",
        {"name": str, "integration_name": str, "integration_category": str, "created": str, "updated": str},
        [("name",)],
    )
    _resource(
        db,
        "events",
        {
            "metric_id": str,
            "profile_id": str,
            "datetime": str,
            "timestamp": int,
            "uuid": str,
            "value": float,
            "message_id": str,
            "flow_id": str,
            "attributed_message_id": str,
            "attributed_flow_id": str,
            "form_id": str,
        },
        # Every index costs ingest time (measured: eight indexes made inserts ~6x slower than
        # none), so events carry only what reports and rollups look up; sparse keys get
        # partial indexes.
        [("metric_id", "datetime"), ("datetime",)],
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_events_message ON events (message_id, metric_id)"
        " WHERE message_id IS NOT NULL"
    )
    _resource(
        db,
        "profiles",
        {
            "email": str,
            "phone_number": str,
            "external_id": str,
            "first_name": str,
            "last_name": str,
            "organization": str,
            "locale": str,
            "city": str,
            "region": str,
            "country": str,
            "created": str,
            "updated": str,
            "last_event_date": str,
            "email_consent": str,
            "sms_consent": str,
            "predicted_clv": float,
            "churn_probability": float,
        },
        [("email",), ("updated",), ("created",)],
    )
    _resource(db, "lists", {"name": str, "opt_in_process": str, "created": str, "updated": str})
    _resource(
        db,
        "segments",
        {
            "name": str,
            "is_active": int,
            "is_processing": int,
            "is_starred": int,
            "created": str,
            "updated": str,
        },
    )
    _resource(
        db,
        "campaigns",
        {
            "name": str,
            "channel": str,
            "status": str,
            "archived": int,
            "send_time": str,
            "scheduled_at": str,
            "created_at": str,
            "updated_at": str,
        },
        [("send_time",), ("channel",)],
    )
    _resource(
        db,
        "campaign_messages",
        {
            "campaign_id": str,
            "channel": str,
            "label": str,
            "subject": str,
            "from_email": str,
            "template_id": str,
            "send_time": str,
            "created_at": str,
            "updated_at": str,
        },
        [("campaign_id",)],
    )
    _resource(
        db,
        "flows",
        {"name": str, "status": str, "archived": int, "trigger_type": str, "created": str, "updated": str},
    )
    _resource(
        db,
        "flow_actions",
        {"flow_id": str, "action_type": str, "status": str, "created": str, "updated": str},
        [("flow_id",)],
    )
    _resource(
        db,
        "flow_messages",
        {"flow_id": str, "flow_action_id": str, "name": str, "channel": str, "created": str, "updated": str},
        [("flow_id",), ("flow_action_id",)],
    )
    _resource(
        db,
        "forms",
        {"name": str, "status": str, "ab_test": int, "created_at": str, "updated_at": str},
    )
    _resource(
        db,
        "templates",
        {"name": str, "editor_type": str, "created": str, "updated": str},
    )
    _resource(db, "tags", {"name": str, "tag_group_id": str})
    for name, parent in (("list_members", "list_id"), ("segment_members", "segment_id")):
        db[name].create(
            {
                parent: str,
                "profile_id": str,
                "joined_group_at": str,
                "email": str,
                "synced_at": str,
                "deleted_at": str,
            },
            pk=(parent, "profile_id"),
            if_not_exists=True,
        )
        db[name].create_index(["profile_id"], if_not_exists=True)
    # Which tags are on which campaign/flow/list/segment.
    db["tag_links"].create(
        {"tag_id": str, "resource_type": str, "resource_id": str},
        pk=("tag_id", "resource_type", "resource_id"),
        if_not_exists=True,
    )
    db["tag_links"].create_index(["resource_type", "resource_id"], if_not_exists=True)


@migration
def m002_sync_bookkeeping(db: sqlite_utils.Database) -> None:
    db["sync_state"].create(
        {
            "stream": str,
            "watermark": str,
            "last_success_at": str,
            "last_attempt_at": str,
            "last_reconcile_at": str,
            "last_error": str,
            "rows_total": int,
            "extra": str,
        },
        pk="stream",
        if_not_exists=True,
    )
    db["sync_runs"].create(
        {
            "id": int,
            "run_id": str,
            "stream": str,
            "started_at": str,
            "ended_at": str,
            "status": str,
            "rows": int,
            "pages": int,
            "requests": int,
            "retries": int,
            "throttled": int,
            "error": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db["sync_runs"].create_index(["stream", "started_at"], if_not_exists=True)
    db["sync_runs"].create_index(["run_id"], if_not_exists=True)


@migration
def m003_reporting_api(db: sqlite_utils.Database) -> None:
    # Klaviyo's own Reporting API figures, one row per (report, entity, message, channel, period).
    db["report_values"].create(
        {
            "id": str,
            "report": str,
            "entity_id": str,
            "message_id": str,
            "channel": str,
            "timeframe_start": str,
            "timeframe_end": str,
            "conversion_metric_id": str,
            "statistics": str,
            "fetched_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db["report_values"].create_index(["report", "entity_id"], if_not_exists=True)


# The keys an event's change makes the rollups recompute: its day, its messages and its form
# ({r}: OLD or NEW, in a trigger).
_DAY = "substr({r}.datetime, 1, 10)"
_DIRTY_KEYS = (
    "INSERT INTO rollup_dirty (kind, key, day) SELECT k, v, d FROM ("
    f"SELECT 'day' k, {_DAY} v, {_DAY} d"
    f" UNION ALL SELECT 'message', {{r}}.message_id, {_DAY}"
    f" UNION ALL SELECT 'message', {{r}}.attributed_message_id, {_DAY}"
    f" UNION ALL SELECT 'form', {{r}}.form_id, {_DAY}) WHERE v IS NOT NULL;"
)

# The event columns whose change m004's update trigger marks dirty.
_COUNTED = (
    "deleted_at",
    "datetime",
    "metric_id",
    "profile_id",
    "value",
    "message_id",
    "flow_id",
    "attributed_message_id",
    "form_id",
)


def _any_changed(columns: tuple[str, ...]) -> str:
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)


@migration
def m004_report_rollups(db: sqlite_utils.Database) -> None:
    """Rollup tables that keep `report campaigns` and `report overview` fast on big databases.

    They are derived data, rebuilt by `klaviyo_etl.db.rollups.refresh_rollups`. Inserted
    events are found by rowid (past the stored watermark), so ingest pays nothing; the triggers
    only catch the rare update that changes what an event counts for (deleted_at set by
    reconciliation, a moved message id) and hard deletes.
    """
    # Per message (or form), role and day; `prev_day` is the profile's previous day with the
    # same role on the same message, which makes distinct profiles in any day range summable.
    db.execute(
        """CREATE TABLE IF NOT EXISTS rollup_entity_days (
            kind TEXT NOT NULL, entity_id TEXT NOT NULL, role TEXT NOT NULL, day TEXT NOT NULL,
            prev_day TEXT NOT NULL, profiles INTEGER, events INTEGER, value REAL,
            PRIMARY KEY (kind, entity_id, role, day, prev_day)) WITHOUT ROWID"""
    )
    # Covering: the reports' "rows of these days" reads never touch the table.
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_rollup_entity_days_day ON rollup_entity_days"
        " (kind, day, entity_id, role, prev_day, profiles, events, value)"
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS rollup_entity_totals (
            kind TEXT NOT NULL, entity_id TEXT NOT NULL, role TEXT NOT NULL,
            profiles INTEGER, events INTEGER, value REAL, first_day TEXT, last_day TEXT,
            PRIMARY KEY (kind, entity_id, role)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS rollup_entities (
            kind TEXT NOT NULL, entity_id TEXT NOT NULL, channel TEXT, flow_id TEXT,
            first_day TEXT, last_day TEXT, PRIMARY KEY (kind, entity_id)) WITHOUT ROWID"""
    )
    # rollup_entity_days summed over the messages of each channel; exact for the same reason.
    db.execute(
        """CREATE TABLE IF NOT EXISTS rollup_channel_days (
            channel TEXT NOT NULL, role TEXT NOT NULL, day TEXT NOT NULL, prev_day TEXT NOT NULL,
            profiles INTEGER, events INTEGER, value REAL,
            PRIMARY KEY (channel, role, day, prev_day)) WITHOUT ROWID"""
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_rollup_channel_days_day ON rollup_channel_days"
        " (day, prev_day, channel, role, profiles)"
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS rollup_metric_hours (
            metric_id TEXT NOT NULL, hour TEXT NOT NULL, events INTEGER, value REAL,
            PRIMARY KEY (metric_id, hour)) WITHOUT ROWID"""
    )
    # Profiles active per day, keyed by each profile's previous active day (same trick).
    db.execute(
        """CREATE TABLE IF NOT EXISTS rollup_activity_days (
            day TEXT NOT NULL, prev_day TEXT NOT NULL, profiles INTEGER,
            PRIMARY KEY (day, prev_day)) WITHOUT ROWID"""
    )
    db.execute("CREATE TABLE IF NOT EXISTS rollup_state (key TEXT PRIMARY KEY, value TEXT)")
    # No unique key on purpose: a trigger's OR IGNORE is overridden by the conflict policy of
    # the statement that fired it (an upsert), so duplicates are allowed and read with DISTINCT.
    # `day` is the changed event's day, so a long-lived flow is recomputed from the change on,
    # not over its whole history.
    db.execute("CREATE TABLE IF NOT EXISTS rollup_dirty (kind TEXT NOT NULL, key TEXT NOT NULL, day TEXT)")
    # Lookups the incremental refresh needs and the base schema lacks.
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_events_attributed_message ON events (attributed_message_id)"
        " WHERE attributed_message_id IS NOT NULL"
    )
    db.execute("CREATE INDEX IF NOT EXISTS idx_events_form ON events (form_id) WHERE form_id IS NOT NULL")
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_events_profile_datetime ON events (profile_id, datetime)"
        " WHERE deleted_at IS NULL"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_profiles_created_live ON profiles (created) WHERE deleted_at IS NULL"
    )
    changed = _any_changed(_COUNTED)
    db.execute(
        f"""CREATE TRIGGER IF NOT EXISTS events_rollup_update AFTER UPDATE ON events
            WHEN {changed} BEGIN {_DIRTY_KEYS.format(r="OLD")} {_DIRTY_KEYS.format(r="NEW")} END"""
    )
    db.execute(
        f"""CREATE TRIGGER IF NOT EXISTS events_rollup_delete AFTER DELETE ON events BEGIN
            {_DIRTY_KEYS.format(r="OLD")}
            INSERT INTO rollup_dirty (kind, key) VALUES ('rowid', OLD.rowid); END"""
    )


@migration
def m005_deferred_indexes(db: sqlite_utils.Database) -> None:
    """Secondary indexes dropped for a bulk load, kept here until they are built again.

    A first sync of millions of events inserts several times faster without them (measured
    in `make bench`); if that sync dies, the next successful one rebuilds what is listed.
    """
    db["_deferred_indexes"].create(
        {"name": str, "table_name": str, "sql": str}, pk="name", if_not_exists=True
    )


@migration
def m006_sync_run_warnings(db: sqlite_utils.Database) -> None:
    """Values a run stored raw because they could not be read (a `$value` of "n/a")."""
    if "warnings" not in db["sync_runs"].columns_dict:
        db["sync_runs"].add_column("warnings", int, not_null_default=0)


@migration
def m007_privacy_erasure(db: sqlite_utils.Database) -> None:
    """A profile flagged deleted loses its personal data, events and memberships at once
    (see `klaviyo_etl.db.privacy`)."""
    install_erasure(db)


@migration
def m008_exports(db: sqlite_utils.Database) -> None:
    """What `export parquet` last wrote into each folder: one row per file (a table's snapshot,
    or one day of events), with the change marker it was written at (see
    `klaviyo_etl.export.parquet`). A file whose marker still matches is not written again."""
    db["_exports"].create(
        {"target": str, "item": str, "marker": str, "rows": int, "exported_at": str},
        pk=("target", "item"),
        if_not_exists=True,
    )


@migration
def m009_deleted_events_index(db: sqlite_utils.Database) -> None:
    """The deleted events by metric, so that a metric's live events are counted from indexes
    (`klaviyo_etl.db.conversion`). Small: only privacy deletions flag events."""
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_events_deleted_metric ON events (metric_id)"
        " WHERE deleted_at IS NOT NULL"
    )


@migration
def m010_rollup_currency_days(db: sqlite_utils.Database) -> None:
    """Orders and their value per currency and day, for the metrics named as the conversion
    metric is: what the reports say their money is in (see `klaviyo_etl.db.rollups`)."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS rollup_currency_days (
            metric_id TEXT NOT NULL, day TEXT NOT NULL, currency TEXT NOT NULL,
            events INTEGER, value REAL, PRIMARY KEY (metric_id, day, currency)) WITHOUT ROWID"""
    )


@migration
def m011_accounts(db: sqlite_utils.Database) -> None:
    """The Klaviyo account the key belongs to (`GET /api/accounts`: one row): its timezone,
    in which Klaviyo counts a Reporting API timeframe's days, and its preferred currency, in
    which it counts orders that name none (see `klaviyo_etl.db.account`)."""
    _resource(
        db,
        "accounts",
        {
            "organization_name": str,
            "timezone": str,
            "preferred_currency": str,
            "locale": str,
            "industry": str,
            "public_api_key": str,
            "test_account": int,
        },
    )


@migration
def m012_rollup_dirty_currency(db: sqlite_utils.Database) -> None:
    """An update that changes an order's currency (`$currency_code` in `attributes`, read by
    `rollup_currency_days`) or a conversion's `attributed_flow_id` (read by `rollup_entities`)
    marks its day and messages dirty too; m004's trigger ignored both.

    The currency is compared only when the stored `attributes` text differs: a re-synced
    event Klaviyo sends unchanged (the lookback window's, every run) costs one string
    comparison, and only a changed body pays for parsing its JSON. Upgrading replaces the
    trigger: no row is read.
    """
    currency = (
        "CASE WHEN json_valid({r}.attributes) THEN"
        " json_extract({r}.attributes, '$.event_properties.\"$currency_code\"') END"
    )
    changed = _any_changed((*_COUNTED, "attributed_flow_id"))
    changed += (
        f" OR (OLD.attributes IS NOT NEW.attributes"
        f" AND {currency.format(r='OLD')} IS NOT {currency.format(r='NEW')})"
    )
    db.execute("DROP TRIGGER IF EXISTS events_rollup_update")
    db.execute(
        f"""CREATE TRIGGER events_rollup_update AFTER UPDATE ON events
            WHEN {changed} BEGIN {_DIRTY_KEYS.format(r="OLD")} {_DIRTY_KEYS.format(r="NEW")} END"""
    )


# What m013 tests first: a datetime in the shape `stored_time` writes, to the second, is left.
_OTHER_SHAPE = (
    "NOT (length(datetime) = 25 AND substr(datetime, 11, 1) = 'T' AND substr(datetime, 20) = '+00:00')"
)


@migration
def m013_events_datetime_in_one_shape(db: sqlite_utils.Database) -> None:
    """Events stored before `stored_time` with a `datetime` in another shape (Klaviyo sends
    some space-separated, LIVE_BEHAVIOUR.md §9) are rewritten in the one the reports compare
    with, and the rollups are rebuilt from them at their next refresh. The rollups' update
    trigger is set aside meanwhile: the rebuild recounts everything, so marking each row
    dirty would only cost time. Many rows to rewrite: the indexes on `datetime` are built
    again after, not kept up row by row (500,000 of 1,000,000 events: 31.6 -> 5.3 s)."""
    db.conn.create_function("stored_time", 1, stored_time, deterministic=True)
    todo = db.execute(f"SELECT count(*) FROM events WHERE {_OTHER_SHAPE}").fetchone()[0]
    if not todo:
        return
    saved = [
        (name, sql)
        for name, sql in db.execute(
            "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL"
            " AND (type = 'trigger' AND name = 'events_rollup_update' OR type = 'index')"
        ).fetchall()
        if name == "events_rollup_update"
        or (todo > 10_000 and "datetime" in [r[2] for r in db.execute(f"PRAGMA index_info([{name}])")])
    ]
    for name, _sql in saved:
        db.execute(f"DROP {'TRIGGER' if name == 'events_rollup_update' else 'INDEX'} [{name}]")
    changed = db.execute(
        f"UPDATE events SET datetime = stored_time(datetime) WHERE {_OTHER_SHAPE}"
        " AND datetime IS NOT stored_time(datetime)"
    ).rowcount
    for _, sql in saved:
        db.execute(sql)
    if changed and "rollup_state" in db.table_names():
        db.execute("DELETE FROM rollup_state WHERE key = 'watermark'")


def _property_changed(*names: str) -> str:
    """An update trigger's test that one of the event properties `names` changed: compared
    only when the stored `attributes` text differs, so that a re-synced event Klaviyo sends
    unchanged costs one string comparison and only a changed body pays for its JSON."""
    tests = []
    for name in names:
        value = (
            "CASE WHEN json_valid({r}.attributes) THEN"
            f" json_extract({{r}}.attributes, '$.event_properties.\"{name}\"') END"
        )
        tests.append(f"{value.format(r='OLD')} IS NOT {value.format(r='NEW')}")
    return f" OR (OLD.attributes IS NOT NEW.attributes AND ({' OR '.join(tests)}))"


@migration
def m014_rollup_dirty_bot_click(db: sqlite_utils.Database) -> None:
    """An update that changes a click's `Bot Click` (in `attributes`) marks its day and messages
    dirty too: the rollups count a bot's click apart from the others (LIVE_BEHAVIOUR.md §12;
    `klaviyo_etl.db.rollups.ROLE`), and Klaviyo may send a click again with another verdict.
    Upgrading replaces the trigger: no row is read (the rollups rebuild once, for their new
    version)."""
    changed = _any_changed((*_COUNTED, "attributed_flow_id"))
    changed += _property_changed("$currency_code", "Bot Click")
    db.execute("DROP TRIGGER IF EXISTS events_rollup_update")
    db.execute(
        f"""CREATE TRIGGER events_rollup_update AFTER UPDATE ON events
            WHEN {changed} BEGIN {_DIRTY_KEYS.format(r="OLD")} {_DIRTY_KEYS.format(r="NEW")} END"""
    )


SCHEMA_VERSION = len(MIGRATIONS.names())

# Bookkeeping that is not for analysts: the migration and export records, the derived rollups.
INTERNAL_TABLE = re.compile(r"^(_|rollup_)")


def public_tables(db: sqlite_utils.Database) -> list[str]:
    """The tables analysts query (and `export parquet` writes), in creation order."""
    return [name for name in db.table_names() if not INTERNAL_TABLE.match(name)]


def foreign_tables(db: sqlite_utils.Database) -> list[str]:
    """The tables of a database another program made (none for a new file or one of ours).

    Ours records its first migration in `_migrations`; a file with tables and no such record
    belongs to someone else, and neither a migration nor a sync may add to it.
    """
    tables = [name for name in db.table_names() if not name.startswith("sqlite_")]
    if not tables:
        return []
    try:
        first = db.execute(
            f"SELECT 1 FROM {MIGRATIONS.migrations_table} WHERE name = ?", [MIGRATIONS.names()[0]]
        ).fetchone()
    except sqlite3.OperationalError:  # no such table, or one of that name with other columns
        first = None
    return [] if first else tables


def migration_status(db: sqlite_utils.Database) -> list[dict]:
    """Every known migration and whether (and when) it was applied to this file."""
    applied = {m.name: m.applied_at for m in MIGRATIONS.applied(db)}
    known = MIGRATIONS.names()
    rows = [
        {"version": i, "name": name, "applied_at": applied.get(name)} for i, name in enumerate(known, start=1)
    ]
    # A newer klaviyo-etl's own migrations too: the list ended at this build's last one, and a
    # file every other command refuses as newer looked up to date.
    if MIGRATIONS.newest_version(db) > SCHEMA_VERSION:
        rows += [
            {"version": version, "name": name, "applied_at": at}
            for version, name, at in db.execute(
                f"SELECT version, name, applied_at FROM {MIGRATIONS.migrations_table} WHERE version > ?"
                " ORDER BY version",
                [SCHEMA_VERSION],
            )
        ]
    return rows


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations in one transaction; return the names applied.

    Refuses a file written by a newer klaviyo-etl rather than guessing at its schema.

    After an upgrade, the cron's sync and a report typed meanwhile may open the file at once.
    Each would apply the same migrations: the second then recorded a version twice, or, its
    read snapshot overtaken by the first's commit, failed at once with "database is locked"
    (SQLite does not make a reader that turns writer wait). So the pending list is read again
    once this connection holds the write lock (`BEGIN IMMEDIATE` waits out the other, within
    the busy timeout), and a migration another process applied meanwhile is not run again.
    """
    if not _pending(db):
        return []
    db.execute("BEGIN IMMEDIATE")
    try:
        pending = _pending(db)
        MIGRATIONS.apply(db)  # each migration's own transaction nests as a savepoint
        db.execute("COMMIT")
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    return pending


def _pending(db: sqlite_utils.Database) -> list[str]:
    newest = MIGRATIONS.newest_version(db)
    if newest > SCHEMA_VERSION:
        raise DatabaseError(
            f"database schema version {newest} is newer than this klaviyo-etl "
            f"(knows {SCHEMA_VERSION}); upgrade klaviyo-etl"
        )
    return [m.name for m in MIGRATIONS.pending(db)]
