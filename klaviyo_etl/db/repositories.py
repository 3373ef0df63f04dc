"""Repositories: turn API resources into rows of the public tables and write them.

Each table's typed columns are derived here, in one place, from the raw attributes
(which are kept whole in `attributes`). Writes are idempotent upserts on the primary key,
so re-reading a page (lookback windows, resumed runs) can never duplicate a row.

Two ways from a resource to a row, which must store the same values (a test compares every
column): the general one (`resource_rows`: a `Row` dict per resource, any table) and, for
the two bulk tables, a lean one (`event_batch`, `profile_batch`) that reads the Structs
msgspec decodes a page into (`EventResource`, `ProfileResource`) straight into the value
tuples `executemany` takes, with no dict per row (issue 12). The lean one stores
`attributes` as the JSON text Klaviyo sent, the general one as orjson writes it again: the
same JSON, and the same text when Klaviyo writes compact JSON as orjson does. Nothing
compares that text (upserts overwrite it; readers parse it: `json_extract`, the export).
"""

from __future__ import annotations

import functools
import math
import operator
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import orjson
import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.timeutil import stored_time, utcnow_iso

if TYPE_CHECKING:
    from klaviyo_etl.models import Resource

Row = dict[str, Any]
Fill = Callable[["Resource"], Row]  # columns the API leaves off a resource (parent id, channel)


def _dump(value: Any) -> str:
    # orjson: the same compact JSON as json.dumps, ~30x faster on the per-row hot path.
    return orjson.dumps(value).decode()


def _bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _consent(subs: dict | None, channel: str) -> str | None:
    marketing = ((subs or {}).get(channel) or {}).get("marketing") or {}
    return marketing.get("consent")


def metric_row(r: Resource) -> Row:
    a = r.attributes
    integration = a.get("integration") or {}
    return {
        "name": a.get("name"),
        "integration_name": integration.get("name"),
        "integration_category": integration.get("category"),
        "created": a.get("created"),
        "updated": a.get("updated"),
    }


def event_value(value: Any) -> float | None:
    """`$value` as a number: a number, or text that reads as one (`"12.50"`); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def unreadable_values(resources: Iterable[Resource]) -> int:
    """Events whose `$value` is there but is not a number: `value` stays NULL, the raw value
    is kept in `attributes`, and the run counts each one as a warning."""
    return sum(
        1
        for r in resources
        if r.type == "event"
        and (raw := (r.attributes.get("event_properties") or {}).get(kc.PROP_VALUE)) not in (None, "")
        and event_value(raw) is None
    )


def _related_id(relationships: dict | None, name: str) -> str | None:
    """`Resource.related_id` without the method call, for the per-event hot path."""
    data = ((relationships or {}).get(name) or {}).get("data")
    return data.get("id") if isinstance(data, dict) else None


def event_row(r: Resource) -> Row:
    a = r.attributes
    props = a.get("event_properties") or {}
    rels = r.relationships
    return {
        "metric_id": _related_id(rels, "metric"),
        "profile_id": _related_id(rels, "profile"),
        "datetime": stored_time(a.get("datetime")),
        "timestamp": a.get("timestamp"),
        "uuid": a.get("uuid"),
        "value": event_value(props.get(kc.PROP_VALUE)),
        "message_id": props.get(kc.PROP_MESSAGE),
        "flow_id": props.get(kc.PROP_FLOW),
        "attributed_message_id": props.get(kc.PROP_ATTRIBUTED_MESSAGE),
        "attributed_flow_id": props.get(kc.PROP_ATTRIBUTED_FLOW),
        "form_id": props.get(kc.PROP_FORM_ID),
    }


# The profile attributes stored as they come (both row paths read these).
PROFILE_FIELDS = (
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "created",
    "updated",
    "last_event_date",
)


def profile_row(r: Resource) -> Row:
    a = r.attributes
    loc = a.get("location") or {}
    pa = a.get("predictive_analytics") or {}
    row = {key: a.get(key) for key in PROFILE_FIELDS}
    row.update(city=loc.get("city"), region=loc.get("region"), country=loc.get("country"))
    if "subscriptions" in a:
        row.update(
            email_consent=_consent(a["subscriptions"], "email"),
            sms_consent=_consent(a["subscriptions"], "sms"),
        )
    if "predictive_analytics" in a:
        row.update(predicted_clv=pa.get("predicted_clv"), churn_probability=pa.get("churn_probability"))
    return row


def _pick(*keys: str, bools: tuple[str, ...] = ()) -> Callable[[Resource], Row]:
    def to_row(r: Resource) -> Row:
        row = {k: r.attributes.get(k) for k in keys}
        row.update({k: _bool(r.attributes.get(k)) for k in bools})
        return row

    return to_row


def campaign_row(r: Resource) -> Row:
    a = r.attributes
    row = _pick(
        "name", "status", "send_time", "scheduled_at", "created_at", "updated_at", bools=("archived",)
    )(r)
    send_strategy = a.get("send_strategy") or {}
    row["send_time"] = a.get("send_time") or send_strategy.get("datetime")
    return row


def campaign_message_row(r: Resource) -> Row:
    a = r.attributes
    definition = a.get("definition") or {}
    content = definition.get("content") or {}
    send_times = a.get("send_times") or []
    return {
        "campaign_id": r.related_id("campaign"),
        "channel": definition.get("channel"),
        "label": definition.get("label"),
        "subject": content.get("subject"),
        "from_email": content.get("from_email"),
        "template_id": r.related_id("template"),
        "send_time": (send_times[0] or {}).get("datetime") if send_times else None,
        "created_at": a.get("created_at"),
        "updated_at": a.get("updated_at"),
    }


def flow_action_row(r: Resource) -> Row:
    # Revision 2026-07-15 keeps the kind and status inside the action's definition.
    definition = r.attributes.get("definition") or {}
    return {
        "flow_id": r.related_id("flow"),
        "action_type": definition.get("type") or r.attributes.get("action_type"),
        "status": (definition.get("data") or {}).get("status") or r.attributes.get("status"),
        "created": r.attributes.get("created"),
        "updated": r.attributes.get("updated"),
    }


def flow_message_row(r: Resource) -> Row:
    a = r.attributes
    definition = a.get("definition") or {}
    return {
        "flow_action_id": r.related_id("flow-action"),
        "name": definition.get("name") or a.get("name"),
        "channel": definition.get("channel") or a.get("channel"),
        "created": a.get("created"),
        "updated": a.get("updated"),
    }


def tag_row(r: Resource) -> Row:
    return {"name": r.attributes.get("name"), "tag_group_id": r.related_id("tag-group")}


def account_row(r: Resource) -> Row:
    row = _pick(
        "timezone", "preferred_currency", "locale", "industry", "public_api_key", bools=("test_account",)
    )(r)
    row["organization_name"] = (r.attributes.get("contact_information") or {}).get("organization_name")
    return row


@dataclass(frozen=True)
class Batch:
    """One table's rows as value tuples in `columns` order: what `executemany` takes."""

    columns: tuple[str, ...]
    values: list[tuple]
    warnings: int = 0  # values stored raw because they could not be read (events' `$value`)


EVENT_COLUMNS = (
    "id",
    "metric_id",
    "profile_id",
    "datetime",
    "timestamp",
    "uuid",
    "value",
    "message_id",
    "flow_id",
    "attributed_message_id",
    "attributed_flow_id",
    "form_id",
    "attributes",
    "synced_at",
    "deleted_at",
)


# -- the lean path: a page's JSON straight into the tuples -----------------------------------
#
# msgspec decodes a page of events or profiles into these Structs, which name only the fields
# the rows read: the rest of each resource is skipped without a Python object being built (a
# 1,000-event page is ~10,000 dicts from orjson). `attributes` stays the JSON text as sent
# (`msgspec.Raw`): it is what the `attributes` column stores, and it is decoded a second time
# into the few fields the row reads. Each field takes the JSON types orjson reads the same
# way (`_Scalar`); anything else (an object where a value is stored, a list for an object,
# an integer beyond 64 bits, which orjson reads as a float) fails the decode, and the page
# takes the general path (`resource_rows`), which stores what it always did or rejects the
# page with the models' clear error. No Struct is tracked by the cycle collector (`gc=False`):
# JSON holds no cycles.

# orjson reads an integer beyond 64 bits as a float, msgspec as an int: such a value fails
# the decode and goes the general way (as does one in 2**63..2**64, which SQLite refuses).
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Scalar = str | _Int64 | float | bool | None


class _Wire(msgspec.Struct, gc=False):
    """A JSON object of which only the fields named are read (any object: others are skipped)."""


class _Ref(_Wire):
    id: _Scalar = None


class _ToOne(_Wire):
    data: _Ref | None = None


class _EventRelationships(_Wire):
    metric: _ToOne | None = None
    profile: _ToOne | None = None


# SQL NULL in the value tuples of a page of events, where most events have no such property.
# sqlite3 binds a None through its adapter registry (a key tuple built, a dict lookup, a
# call), a float straight with `sqlite3_bind_double`, and SQLite stores a NaN as NULL (pinned
# by tests/db/test_repositories.py): ~5 such columns an event, 5.3 -> 4.7 µs an event written
# (issue 12). Only where nothing reads the tuple but the writer; `value` stays None (the
# rollups' fold sums it).
NULL = math.nan


class _EventProperties(_Wire):
    # Any JSON value: `event_value` reads it, and counts an object or a list as unreadable.
    value: _Scalar | dict[str, Any] | list[Any] = msgspec.field(default=None, name=kc.PROP_VALUE)
    message: _Scalar = msgspec.field(default=NULL, name=kc.PROP_MESSAGE)
    flow: _Scalar = msgspec.field(default=NULL, name=kc.PROP_FLOW)
    attributed_message: _Scalar = msgspec.field(default=NULL, name=kc.PROP_ATTRIBUTED_MESSAGE)
    attributed_flow: _Scalar = msgspec.field(default=NULL, name=kc.PROP_ATTRIBUTED_FLOW)
    form_id: _Scalar = msgspec.field(default=NULL, name=kc.PROP_FORM_ID)


class _EventAttributes(_Wire):
    datetime: _Scalar = None
    timestamp: _Scalar = None
    uuid: _Scalar = None
    event_properties: _EventProperties | None = None


class EventResource(_Wire, tag_field="type", tag="event"):
    """An event as the lean path reads it (`type` must be "event")."""

    id: str
    attributes: msgspec.Raw = msgspec.Raw(b"{}")
    relationships: _EventRelationships | None = None


class ProfileResource(_Wire, tag_field="type", tag="profile"):
    """A profile as the lean path reads it (`type` must be "profile"); its relationships are
    links only, checked for being an object and skipped."""

    id: str
    attributes: msgspec.Raw = msgspec.Raw(b"{}")
    relationships: _Wire | None = None


class _Location(_Wire):
    city: _Scalar = None
    region: _Scalar = None
    country: _Scalar = None


class _Marketing(_Wire):
    consent: _Scalar = None


class _Channel(_Wire):
    marketing: _Marketing | None = None


class _Subscriptions(_Wire):
    email: _Channel | None = None
    sms: _Channel | None = None


class _Predictions(_Wire):
    predicted_clv: _Scalar = None
    churn_probability: _Scalar = None


# UNSET: the field is not there at all (the columns a page writes depend on it, see
# `profile_batch`), unlike one sent as null.
_ProfileAttributes = msgspec.defstruct(
    "_ProfileAttributes",
    [(name, _Scalar, None) for name in PROFILE_FIELDS]
    + [
        ("location", _Location | None, None),
        ("subscriptions", _Subscriptions | None | msgspec.UnsetType, msgspec.UNSET),
        ("predictive_analytics", _Predictions | None | msgspec.UnsetType, msgspec.UNSET),
    ],
    bases=(_Wire,),
)

_EVENT_ATTRIBUTES = msgspec.json.Decoder(_EventAttributes)
_PROFILE_ATTRIBUTES = msgspec.json.Decoder(_ProfileAttributes)
_NO_PROPERTIES = _EventProperties()

# What the lean path raises for a page it does not read (`msgspec.ValidationError` is a
# DecodeError; text that is not UTF-8 inside a skipped value; nesting too deep): the caller
# then takes the general path.
NOT_LEAN = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def event_batch(resources: list[EventResource], now: str) -> Batch:
    """`resource_rows` and `unreadable_values` of a page of events in one pass, from the
    Structs msgspec decoded (raises one of `NOT_LEAN` for attributes of another shape).
    `event_row` in the same loop, inlined: this runs for every event."""
    values: list[tuple] = []
    append = values.append
    warnings = 0
    decode = _EVENT_ATTRIBUTES.decode
    isfinite = math.isfinite
    for r in resources:
        raw = r.attributes
        a = decode(raw)
        props = a.event_properties or _NO_PROPERTIES
        sent = props.value
        if sent is None or (type(sent) is float and isfinite(sent)):
            value = sent
        else:
            value = event_value(sent)
            if value is None and sent != "":
                warnings += 1
        rels = r.relationships
        metric = profile = None
        if rels is not None:
            if rels.metric is not None and rels.metric.data is not None:
                metric = rels.metric.data.id
            if rels.profile is not None and rels.profile.data is not None:
                profile = rels.profile.data.id
        append(
            (
                r.id,
                metric,
                profile,
                stored_time(a.datetime),
                a.timestamp,
                a.uuid,
                value,
                props.message,
                props.flow,
                props.attributed_message,
                props.attributed_flow,
                props.form_id,
                str(raw, "utf-8"),  # the JSON text as sent (see `_Wire`)
                now,
                NULL,  # deleted_at
            )
        )
    return Batch(EVENT_COLUMNS, values, warnings)


def _channel_consent(channel: _Channel | None) -> Any:
    """`_consent` of one channel of the Structs."""
    return None if channel is None or channel.marketing is None else channel.marketing.consent


def profile_batch(resources: list[ProfileResource], now: str) -> Batch:
    """`resource_rows` of a page of profiles as value tuples (raises as `event_batch` does).

    As `profile_row` does, the consent columns are written only if a profile of the page
    has `subscriptions` (the predictive ones, `predictive_analytics`); a profile of such a
    page without them gets NULLs, as the general path's union of columns gives it."""
    decode = _PROFILE_ATTRIBUTES.decode
    plain = [(r.id, r.attributes, decode(r.attributes)) for r in resources]
    unset = msgspec.UNSET
    consent = any(a.subscriptions is not unset for _, _, a in plain)
    predictive = any(a.predictive_analytics is not unset for _, _, a in plain)
    columns = (
        ("id", *PROFILE_FIELDS, "city", "region", "country")
        + (("email_consent", "sms_consent") if consent else ())
        + (("predicted_clv", "churn_probability") if predictive else ())
        + ("attributes", "synced_at", "deleted_at")
    )
    fields = operator.attrgetter(*PROFILE_FIELDS)
    values = []
    for id_, raw, a in plain:
        loc = a.location
        row = [id_, *fields(a)]
        row += (loc.city, loc.region, loc.country) if loc is not None else (None, None, None)
        if consent:
            subs = a.subscriptions
            if subs is unset or subs is None:
                row += (None, None)
            else:
                row += (_channel_consent(subs.email), _channel_consent(subs.sms))
        if predictive:
            pa = a.predictive_analytics
            row += (None, None) if pa is unset or pa is None else (pa.predicted_clv, pa.churn_probability)
        row += (str(raw, "utf-8"), now, None)
        values.append(tuple(row))
    return Batch(columns, values)


# The tables whose pages take the lean path, by the Struct their resources decode into.
BATCHES: dict[type, tuple[str, Callable[[list[Any], str], Batch]]] = {
    EventResource: ("events", event_batch),
    ProfileResource: ("profiles", profile_batch),
}


@functools.cache
def _upsert_sql(
    table: str, columns: tuple[str, ...], pks: tuple[str, ...], update: bool = True, rows: int = 1
) -> str:
    """The upsert of `rows` rows; with `update` False, an insert that leaves a row already
    there as it is."""
    cols = ", ".join(f"[{c}]" for c in columns)
    marks = ", ".join(["(" + ", ".join("?" for _ in columns) + ")"] * rows)
    updates = ", ".join(f"[{c}] = excluded.[{c}]" for c in columns if c not in pks) if update else ""
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    conflict = ", ".join(f"[{c}]" for c in pks)
    return f"INSERT INTO [{table}] ({cols}) VALUES {marks} ON CONFLICT({conflict}) {action}"


# Rows an upsert statement writes. Each statement run costs its binding calls, its start and
# its end (cursors opened and closed) whatever its rows: writing 200,000 events a row a
# statement took 4.3 us an event, 10 rows 2.9 us, 50 rows 2.8 us (more: no faster; issue 12).
# The values go in flat (`itertools.chain`, in C), not one by one as sqlite-utils'
# multi-row inserts build them.
ROWS_A_STATEMENT = 50


def _upsert(
    conn: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    pks: tuple[str, ...],
    values: list[tuple],
    update: bool,
) -> int:
    """Run `_upsert_sql` over `values`, `ROWS_A_STATEMENT` rows a statement (fewer where
    SQLite takes fewer variables); the rows it changed."""
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    size = max(1, min(ROWS_A_STATEMENT, limit // max(len(columns), 1)))
    whole = len(values) - len(values) % size
    changed = 0
    if whole:
        groups = [tuple(chain.from_iterable(values[i : i + size])) for i in range(0, whole, size)]
        changed += conn.executemany(_upsert_sql(table, columns, pks, update, size), groups).rowcount
    if whole < len(values):
        changed += conn.executemany(_upsert_sql(table, columns, pks, update), values[whole:]).rowcount
    return changed


def row_values(rows: list[Row]) -> tuple[tuple[str, ...], Iterable[tuple]]:
    """The batch's columns and each row's values in their order (None where a row lacks one).

    The columns are the union of the rows', in first-seen order: a column only some rows
    have (`email_consent`) must not be dropped because the first row lacks it. Rows that
    all have the same keys (every event page) take the C path: `itemgetter`, no per-value
    Python loop (a few microseconds an event; issue 12)."""
    keys = dict.fromkeys(rows[0])
    uniform = True
    for row in rows:
        if row.keys() != keys.keys():
            uniform = False
            keys.update(dict.fromkeys(row))
    columns = tuple(keys)
    if uniform:
        getter = operator.itemgetter(*columns)
        if len(columns) == 1:
            return columns, ((getter(row),) for row in rows)
        return columns, map(getter, rows)
    return columns, [tuple(row.get(c) for c in columns) for row in rows]


@dataclass(frozen=True)
class Table:
    """How one JSON:API type lands in one table."""

    name: str
    to_row: Callable[[Resource], Row]
    raw_attributes: bool = True


TABLES: dict[str, Table] = {
    "metric": Table("metrics", metric_row),
    "event": Table("events", event_row),
    "profile": Table("profiles", profile_row),
    "list": Table("lists", _pick("name", "opt_in_process", "created", "updated")),
    "segment": Table(
        "segments", _pick("name", "created", "updated", bools=("is_active", "is_processing", "is_starred"))
    ),
    "campaign": Table("campaigns", campaign_row),
    "campaign-message": Table("campaign_messages", campaign_message_row),
    "flow": Table(
        "flows", _pick("name", "status", "trigger_type", "created", "updated", bools=("archived",))
    ),
    "flow-action": Table("flow_actions", flow_action_row),
    "flow-message": Table("flow_messages", flow_message_row),
    "form": Table("forms", _pick("name", "status", "created_at", "updated_at", bools=("ab_test",))),
    "template": Table("templates", _pick("name", "editor_type", "created", "updated")),
    "tag": Table("tags", tag_row),
    "account": Table("accounts", account_row),
}


def resource_rows(resources: Iterable[Resource], fill: Fill | None = None) -> dict[str, list[Row]]:
    """Group resources by destination table, converted to rows (pure: no database needed)."""
    now = utcnow_iso()
    out: dict[str, list[Row]] = {}
    for r in resources:
        table = TABLES.get(r.type)
        if table is None:
            continue
        row = {
            "id": r.id,
            **table.to_row(r),
            "attributes": _dump(r.attributes),
            "synced_at": now,
            "deleted_at": None,
        }
        if fill:
            row.update({k: v for k, v in fill(r).items() if row.get(k) is None})
        out.setdefault(table.name, []).append(row)
    return out


# What the `reports` stream asks Klaviyo's figures for (`?` is the start of the timeframe): sent
# campaigns only (conventions.SENT_STATUSES; a draft, scheduled, queued or cancelled campaign
# would only spend the Reporting API's daily budget), archived ones included; flows that are
# not drafts, or drafts updated since (a flow turned off or archived in the timeframe sent
# until then: an archived flow shows status draft, LIVE_BEHAVIOUR.md §2).
_SENT = ", ".join(f"'{s.lower()}'" for s in kc.SENT_STATUSES)
REPORTABLE = {
    "campaigns": "SELECT id FROM campaigns WHERE deleted_at IS NULL AND send_time >= ?"
    f" AND lower(coalesce(status, '')) IN ({_SENT}) ORDER BY id",
    "flows": "SELECT id FROM flows WHERE deleted_at IS NULL"
    " AND (lower(coalesce(status, '')) != 'draft' OR coalesce(updated, '') >= ?) ORDER BY id",
}


# The column a bulk load of each table arrives in order of: the windows read ascending by it
# (`klaviyo_etl.sync.streams`), so an index on it alone takes each page's rows at the end of
# a few windows' ranges, a few pages touched per commit while the writer waits for the next
# page, instead of a sort of every row after the last one (issue 12: the time from the last
# page to the end of the sync is spent on nothing else).
LOAD_ORDER = {"events": "datetime", "profiles": "updated"}

# The deferred indexes of a table that a bulk load builds before its last burst of pages
# (`WindowedStream.fetch`), not after it: cheap to keep up for those pages, each of which adds
# its rows at a few places (a few metrics, in the window's time order: ~1 us an event, where
# the index on the profiles, random, costs several).
EARLY_INDEXES = {"events": ("idx_events_metric_id_datetime",)}


class Repository:
    """Writes rows for all tables through one connection (the single writer)."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def write_rows(self, rows: Mapping[str, list[Row] | Batch], *, bulk: str | None = None) -> int:
        """Write rows already grouped by table (see `resource_rows`, `event_batch`); those of
        `bulk`, a table loaded in bulk (empty when the load began), as rows expected new."""
        return sum(
            self.upsert_batch(table, table_rows, new=table == bulk)
            if isinstance(table_rows, Batch)
            else self.upsert(table, table_rows, new=table == bulk)
            for table, table_rows in rows.items()
        )

    def upsert(
        self, table: str, rows: list[Row], pk: str | tuple[str, ...] = "id", *, new: bool = False
    ) -> int:
        """Idempotent upsert on the primary key; the caller owns the transaction.

        This is the hot path (a thousand events a page, tens of thousands a second), so it
        runs prepared `INSERT ... ON CONFLICT DO UPDATE` statements of `ROWS_A_STATEMENT`
        rows through `executemany`: sqlite-utils' `upsert_all` builds its multi-row
        statements value by value and measured several times slower per row here (see
        `make bench`). The schema itself stays with sqlite-utils in the migrations.
        """
        if not rows:
            return 0
        pks = (pk,) if isinstance(pk, str) else pk
        columns, values = row_values(rows)
        self._store(table, columns, values, pks, new)
        return len(rows)

    def upsert_batch(self, table: str, batch: Batch, pk: str = "id", *, new: bool = False) -> int:
        """`upsert` of rows already in tuples (see `Batch`)."""
        if batch.values:
            self._store(table, batch.columns, batch.values, (pk,), new)
        return len(batch.values)

    def _store(
        self, table: str, columns: tuple[str, ...], values: Iterable[tuple], pks: tuple[str, ...], new: bool
    ) -> None:
        """The upsert's `executemany`. Rows expected `new` (a bulk load's) go in as inserts
        first, and are upserted only if some were stored already (a page read twice, where
        windows meet): they end as the upsert alone leaves them.

        An upsert's update path costs a statement journal for every row where the table has
        an update trigger (the events' `events_rollup_update`), whether it runs or not:
        writing 200,000 events 4.4 -> 3.8 us an event (issue 12)."""
        conn, rows = self.db.conn, values if isinstance(values, list) else list(values)
        if new and _upsert(conn, table, columns, pks, rows, update=False) == len(rows):
            return
        _upsert(conn, table, columns, pks, rows, update=True)

    def replace_report_values(self, report: str, entity_ids: list[str], rows: list[Row]) -> int:
        """Klaviyo's newest answer about `entity_ids` in place of every older one: a message
        it no longer reports (no events left in the timeframe) keeps no figures of an older
        timeframe, which would be compared with our events as if current."""
        marks = ", ".join("?" * len(entity_ids))
        self.db.conn.execute(
            f"DELETE FROM report_values WHERE report = ? AND entity_id IN ({marks})", [report, *entity_ids]
        )
        return self.upsert("report_values", rows)

    def write_resources(self, resources: Iterable[Resource], fill: Fill | None = None) -> int:
        return self.write_rows(resource_rows(resources, fill))

    def write_members(
        self, table: str, parent_col: str, parent_id: str, resources: Iterable[Resource]
    ) -> int:
        now = utcnow_iso()
        rows = [
            {
                parent_col: parent_id,
                "profile_id": r.id,
                "joined_group_at": r.attributes.get("joined_group_at"),
                "email": r.attributes.get("email"),
                "synced_at": now,
                "deleted_at": None,
            }
            for r in resources
        ]
        return self.upsert(table, rows, pk=(parent_col, "profile_id"))

    def write_tag_links(self, resource_type: str, links: Iterable[tuple[str, str]]) -> None:
        rows = [{"tag_id": t, "resource_type": resource_type, "resource_id": rid} for rid, t in links]
        self.upsert("tag_links", rows, pk=("tag_id", "resource_type", "resource_id"))

    def replace_tag_links(self, resource_type: str, tagged: dict[str, list[str]]) -> None:
        """Each resource's tags as a page says now: links to tags it no longer has go."""
        ids = list(tagged)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            self.db.execute(
                f"DELETE FROM tag_links WHERE resource_type = ? AND resource_id IN ({marks})",
                [resource_type, *chunk],
            )
        self.write_tag_links(resource_type, [(rid, t) for rid, tags in tagged.items() for t in tags])

    def drop_links_to_deleted_tags(self) -> int:
        """Remove the links to tags flagged deleted (a removed tag tags nothing)."""
        cursor = self.db.execute(
            "DELETE FROM tag_links WHERE tag_id IN (SELECT id FROM tags WHERE deleted_at IS NOT NULL)"
        )
        return cursor.rowcount

    def mark_rows_deleted(self, table: str, where: str, params: tuple, now: str) -> int:
        """Flag the live rows of `table` matching `where` as gone (a parent answered 404)."""
        cursor = self.db.execute(
            f"UPDATE [{table}] SET deleted_at = ? WHERE deleted_at IS NULL AND {where}", (now, *params)
        )
        return cursor.rowcount

    def mark_deleted(self, table: str, scan_started_at: str, *, where: str = "", params: tuple = ()) -> int:
        """After a complete scan, flag rows it did not touch as gone from Klaviyo.

        Every upsert stamps `synced_at` and clears `deleted_at`, so rows seen by the scan
        are newer than its start and rows that came back are revived for free.
        """
        now = utcnow_iso()
        clause = f" AND {where}" if where else ""
        cursor = self.db.execute(
            f"UPDATE [{table}] SET deleted_at = ? "
            f"WHERE deleted_at IS NULL AND (synced_at IS NULL OR synced_at < ?){clause}",
            (now, scan_started_at, *params),
        )
        return cursor.rowcount

    def mark_orphans_deleted(self, table: str, parent_col: str, parent_table: str, now: str) -> int:
        """Flag the live rows of `table` whose parent (`parent_col` in `parent_table`) is flagged."""
        cursor = self.db.execute(
            f"UPDATE [{table}] SET deleted_at = ? WHERE deleted_at IS NULL AND "
            f"[{parent_col}] IN (SELECT id FROM [{parent_table}] WHERE deleted_at IS NOT NULL)",
            [now],
        )
        return cursor.rowcount

    # -- reads the streams need (run on the writer thread) ---------------------------------

    def live_rows(self, table: str) -> list[Row]:
        """Every row of `table` not flagged deleted."""
        return self._rows(f"SELECT * FROM [{table}] WHERE deleted_at IS NULL")

    def sending_flow_actions(self) -> list[Row]:
        """Live flow actions that send messages (or whose kind is unknown)."""
        return self._rows(
            "SELECT * FROM [flow_actions] WHERE deleted_at IS NULL AND (action_type IS NULL OR "
            "action_type IN ('send-email', 'send-sms', 'send-mobile-push', 'send-whatsapp'))"
        )

    def is_empty(self, table: str) -> bool:
        return not self.db.execute(f"SELECT 1 FROM [{table}] LIMIT 1").fetchall()

    def count_between(self, table: str, column: str, lo: str, hi: str, *, cap: int) -> int:
        """Rows with `lo <= column < hi`, counted up to `cap` (through the column's index: a
        run's window plan needs no more than it can use)."""
        return self.db.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM [{table}] WHERE [{column}] >= ? AND [{column}] < ?"
            " LIMIT ?)",
            [lo, hi, cap],
        ).fetchone()[0]

    def reportable_ids(self, table: str, since: str) -> list[str]:
        """Campaigns sent since `since` (a sent status), or flows that can have Reporting API
        figures since then (not drafts, or drafts updated since), by id."""
        return [r["id"] for r in self._rows(REPORTABLE[table], [since])]

    def _rows(self, sql: str, params: Any = ()) -> list[Row]:
        cursor = self.db.execute(sql, params)
        cols = [c[0] for c in cursor.description]
        return [dict(zip(cols, row, strict=True)) for row in cursor.fetchall()]

    # -- bulk loads ------------------------------------------------------------------------

    def defer_indexes(self, table: str) -> int:
        """Drop `table`'s secondary indexes for a bulk load, remembering how to rebuild them.

        Partial indexes on `col IS NOT NULL` stay: they hold the few rows that have `col`,
        cheap to keep up while loading, while each rebuild scans the whole table at the end
        (200k events: the tail's index builds 0.67 -> 0.51 s CPU, the load's inserts the same).
        So does the index on the column the load arrives in order of (`LOAD_ORDER`).
        """
        in_order = LOAD_ORDER.get(table)
        indexes = [
            (name, sql)
            for name, sql in self.db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
                " AND sql IS NOT NULL AND sql NOT LIKE '%WHERE % IS NOT NULL'",
                [table],
            ).fetchall()
            if [row[2] for row in self.db.execute(f"PRAGMA index_info([{name}])")] != [in_order]
        ]
        for name, sql in indexes:
            self.db["_deferred_indexes"].upsert({"name": name, "table_name": table, "sql": sql}, pk="name")
            self.db.execute(f"DROP INDEX [{name}]")
        return len(indexes)

    def restore_indexes(self, table: str, names: tuple[str, ...] | None = None) -> int:
        """Build again the indexes `defer_indexes` dropped (sorting once beats inserting):
        all, or those of `names`; how many were built."""
        pending = list(self.db["_deferred_indexes"].rows_where("table_name = ?", [table]))
        chosen = pending if names is None else [row for row in pending if row["name"] in names]
        for row in chosen:
            self.db.execute(row["sql"].replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
            self.db["_deferred_indexes"].delete(row["name"])
        return len(chosen)
