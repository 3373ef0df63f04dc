"""The Arrow schema of every public table as `export parquet` writes it: one place, typed.

The SQLite tables keep what the API sent as text; the export gives each column the type an
analyst's engine needs, the same on every run so that files written months apart read as one
table:

- ids, names and labels: `string`;
- times (`created`, `datetime`, `synced_at`, `deleted_at`, ...): `timestamp[us, tz=UTC]`,
  read from the stored ISO 8601 text (a value without a zone is UTC, as everywhere here);
- money and scores (`events.value`, `profiles.predicted_clv`, ...): `double`, as SQLite stores
  them (a REAL): Klaviyo sends `$value` as a JSON number, so a decimal would promise a
  precision the source never had;
- flags stored as 0/1 (`archived`, `is_active`, `ab_test`, ...): `bool`;
- counters and `events.timestamp` (Unix seconds, as Klaviyo sends it): `int64`;
- JSON kept whole (`attributes`, `report_values.statistics`, `sync_state.extra`): Arrow's
  `json` (Parquet's JSON logical type over UTF-8 text), so DuckDB reads a `JSON` column
  (`attributes->>'$.event_properties.$value'` without a cast), and Spark (its Parquet
  reader maps JSON to StringType since SPARK-11692) and pyarrow read the text as a string.
  A folder written before this type is rewritten whole by its next export (the schema
  digest is in every file's marker). DuckDB refuses a whole file over one malformed value, so the
  export checks each one (SQLite's `json_valid`, in the query) and stops on one that is
  not JSON, as on an unreadable time.

Several accounts (`--account`/`--all-accounts`) put each account's files under an
`account=NAME` folder in every table's folder: engines read that hive partition as an `account`
column. The files themselves do not repeat it: BigQuery refuses a partition key that is also
a column of the files, and Spark and DataFusion stumble on one.
`tests/export/test_schema.py` fails when a public table or column has no type here, so a new
column is never dropped from the export in silence; the export itself refuses one too.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

ID = pa.string()
TEXT = pa.string()
JSON = pa.json_()
TIME = pa.timestamp("us", tz="UTC")
MONEY = pa.float64()
NUMBER = pa.float64()
FLAG = pa.bool_()
COUNT = pa.int64()

# The hive partition key of several accounts' files (never a column of a table: see above).
ACCOUNT_PARTITION = "account"

# The columns every synced resource table ends with (db/migrations.py: COMMON).
_COMMON = {"attributes": JSON, "synced_at": TIME, "deleted_at": TIME}
_MEMBERS = {"profile_id": ID, "joined_group_at": TIME, "email": TEXT, "synced_at": TIME, "deleted_at": TIME}

COLUMNS: dict[str, dict[str, pa.DataType]] = {
    "metrics": {
        "id": ID,
        "name": TEXT,
        "integration_name": TEXT,
        "integration_category": TEXT,
        "created": TIME,
        "updated": TIME,
        **_COMMON,
    },
    "events": {
        "id": ID,
        "metric_id": ID,
        "profile_id": ID,
        "datetime": TIME,
        "timestamp": COUNT,
        "uuid": ID,
        "value": MONEY,
        "message_id": ID,
        "flow_id": ID,
        "attributed_message_id": ID,
        "attributed_flow_id": ID,
        "form_id": ID,
        **_COMMON,
    },
    "profiles": {
        "id": ID,
        "email": TEXT,
        "phone_number": TEXT,
        "external_id": ID,
        "first_name": TEXT,
        "last_name": TEXT,
        "organization": TEXT,
        "locale": TEXT,
        "city": TEXT,
        "region": TEXT,
        "country": TEXT,
        "created": TIME,
        "updated": TIME,
        "last_event_date": TIME,
        "email_consent": TEXT,
        "sms_consent": TEXT,
        "predicted_clv": MONEY,
        "churn_probability": NUMBER,
        **_COMMON,
    },
    "lists": {"id": ID, "name": TEXT, "opt_in_process": TEXT, "created": TIME, "updated": TIME, **_COMMON},
    "segments": {
        "id": ID,
        "name": TEXT,
        "is_active": FLAG,
        "is_processing": FLAG,
        "is_starred": FLAG,
        "created": TIME,
        "updated": TIME,
        **_COMMON,
    },
    "campaigns": {
        "id": ID,
        "name": TEXT,
        "channel": TEXT,
        "status": TEXT,
        "archived": FLAG,
        "send_time": TIME,
        "scheduled_at": TIME,
        "created_at": TIME,
        "updated_at": TIME,
        **_COMMON,
    },
    "campaign_messages": {
        "id": ID,
        "campaign_id": ID,
        "channel": TEXT,
        "label": TEXT,
        "subject": TEXT,
        "from_email": TEXT,
        "template_id": ID,
        "send_time": TIME,
        "created_at": TIME,
        "updated_at": TIME,
        **_COMMON,
    },
    "flows": {
        "id": ID,
        "name": TEXT,
        "status": TEXT,
        "archived": FLAG,
        "trigger_type": TEXT,
        "created": TIME,
        "updated": TIME,
        **_COMMON,
    },
    "flow_actions": {
        "id": ID,
        "flow_id": ID,
        "action_type": TEXT,
        "status": TEXT,
        "created": TIME,
        "updated": TIME,
        **_COMMON,
    },
    "flow_messages": {
        "id": ID,
        "flow_id": ID,
        "flow_action_id": ID,
        "name": TEXT,
        "channel": TEXT,
        "created": TIME,
        "updated": TIME,
        **_COMMON,
    },
    "forms": {
        "id": ID,
        "name": TEXT,
        "status": TEXT,
        "ab_test": FLAG,
        "created_at": TIME,
        "updated_at": TIME,
        **_COMMON,
    },
    "templates": {"id": ID, "name": TEXT, "editor_type": TEXT, "created": TIME, "updated": TIME, **_COMMON},
    "tags": {"id": ID, "name": TEXT, "tag_group_id": ID, **_COMMON},
    "list_members": {"list_id": ID, **_MEMBERS},
    "segment_members": {"segment_id": ID, **_MEMBERS},
    "tag_links": {"tag_id": ID, "resource_type": TEXT, "resource_id": ID},
    "sync_state": {
        "stream": TEXT,
        "watermark": TIME,
        "last_success_at": TIME,
        "last_attempt_at": TIME,
        "last_reconcile_at": TIME,
        "last_error": TEXT,
        "rows_total": COUNT,
        "extra": JSON,
    },
    "sync_runs": {
        "id": COUNT,
        "run_id": ID,
        "stream": TEXT,
        "started_at": TIME,
        "ended_at": TIME,
        "status": TEXT,
        "rows": COUNT,
        "pages": COUNT,
        "requests": COUNT,
        "retries": COUNT,
        "throttled": COUNT,
        "error": TEXT,
        "warnings": COUNT,
    },
    "report_values": {
        "id": ID,
        "report": TEXT,
        "entity_id": ID,
        "message_id": ID,
        "channel": TEXT,
        "timeframe_start": TEXT,  # the timeframe's first instant as requested (older rows: its key)
        "timeframe_end": TIME,
        "conversion_metric_id": ID,
        "statistics": JSON,
        "fetched_at": TIME,
    },
    "accounts": {
        "id": ID,
        "organization_name": TEXT,
        "timezone": TEXT,
        "preferred_currency": TEXT,
        "locale": TEXT,
        "industry": TEXT,
        "public_api_key": TEXT,
        "test_account": FLAG,
        **_COMMON,
    },
}

# Each table's file is ordered by its key, so two exports of the same rows are the same file.
ORDER_BY: dict[str, tuple[str, ...]] = {
    "list_members": ("list_id", "profile_id"),
    "segment_members": ("segment_id", "profile_id"),
    "tag_links": ("tag_id", "resource_type", "resource_id"),
    "sync_state": ("stream",),
    "events": ("datetime", "id"),
}


def table_schema(table: str) -> pa.Schema:
    """The Arrow schema of `table`'s export files."""
    return pa.schema([pa.field(name, kind) for name, kind in COLUMNS[table].items()])


def schema_fingerprint(table: str) -> str:
    """A short digest of the schema: part of each file's change marker, so a new column or
    type (a new klaviyo-etl) rewrites the files written under the old one."""
    return hashlib.sha1(table_schema(table).to_string().encode()).hexdigest()[:12]
