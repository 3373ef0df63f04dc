"""Forms, segments and lists: who signs up, and how the audiences grow.

Forms are counted from their events in the period (views and submissions, each as events
and as distinct profiles). Segment and list growth comes from membership rows: a member
joined at `joined_group_at` and, when reconciliation found them gone, left at `deleted_at`,
so the members on any past day and the joins and departures of any period are known.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from klaviyo_etl.db.rollups import ensure_rollups
from klaviyo_etl.reports.messages import role_sums
from klaviyo_etl.reports.model import IDENTITY, KEY, USEFUL, Column, Report, sort_rows
from klaviyo_etl.reports.periods import Period, account_periods, change_pct

FORM_COLUMNS = [
    Column("name", "Form", priority=IDENTITY),
    Column("status", "Status", priority=USEFUL),
    Column("views", "Views", "int", KEY),
    Column("viewers", "Viewers", "int", USEFUL),
    Column("submissions", "Submissions", "int", KEY),
    Column("submitters", "Submitters", "int", USEFUL),
    Column("submit_rate", "Submit rate", "rate", KEY),
]


def _form_figures(roles: dict[str, dict[str, float]]) -> dict[str, Any]:
    viewed, submitted = roles.get("viewed", {}), roles.get("submitted", {})
    viewers = viewed.get("profiles", 0)
    submitters = submitted.get("profiles", 0)
    return {
        "views": viewed.get("events", 0),
        "viewers": viewers,
        "submissions": submitted.get("events", 0),
        "submitters": submitters,
        "submit_rate": round(submitters / viewers, 6) if viewers else 0.0,
    }


def _add_changes(
    rows: list[dict], previous: dict[str, dict], key: str, figures: tuple[str, ...], columns: list[Column]
) -> list[Column]:
    """Give each row `<figure>_previous` and `<figure>_change_pct` from the compare period."""
    for row in rows:
        before = previous.get(row[key], {})
        for figure in figures:
            row[f"{figure}_previous"] = before.get(figure, 0)
            row[f"{figure}_change_pct"] = change_pct(row.get(figure), before.get(figure, 0))
    return columns + [Column(f"{f}_change_pct", f"Δ {f.replace('_', ' ')}", "pct") for f in figures]


def form_report(
    db: sqlite_utils.Database,
    period: Period,
    compare: Period | None = None,
    *,
    sort: str | None = None,
    limit: int | None = None,
    conversion: str | None = None,
) -> Report:
    """Views, submissions and submit rate per form for the period (`conversion`: the
    `[reports] conversion_metric` setting, which the shared rollups are built with)."""
    fresh = ensure_rollups(db, conversion=conversion)
    period, compare = account_periods(db, period, compare)
    forms = {
        fid: {"name": name, "status": status}
        for fid, name, status in db.execute(
            "SELECT id, name, status FROM forms WHERE deleted_at IS NULL"
        ).fetchall()
    }
    deleted = {r[0] for r in db.execute("SELECT id FROM forms WHERE deleted_at IS NOT NULL")}
    sums = role_sums(db, "form", period)
    ids = [*forms, *(f for f in sums if f not in forms and f not in deleted)]
    rows = [
        {"form_id": fid, **forms.get(fid, {"name": None, "status": None}), **_form_figures(sums.get(fid, {}))}
        for fid in ids
    ]
    columns = list(FORM_COLUMNS)
    if compare:
        before = role_sums(db, "form", compare)
        previous = {fid: _form_figures(before.get(fid, {})) for fid in ids}
        columns = _add_changes(rows, previous, "form_id", ("submissions", "submit_rate"), columns)
    all_columns = [Column("form_id", "Form id"), *columns]
    rows = sort_rows(rows, all_columns, sort, default="submissions")
    if limit is not None:
        rows = rows[:limit]
    notes = [*fresh.notes, *([] if rows else ["No forms in the database."])]
    return Report("forms", "Forms", columns, rows, period, compare, notes=notes)


GROUP_COLUMNS = [
    Column("name", "Name", priority=IDENTITY),
    Column("members", "Members", "int", KEY),
    Column("members_at_start", "At start", "int", USEFUL),
    Column("joined", "Joined", "int", KEY),
    Column("left", "Left", "int", KEY),
    Column("net_growth", "Net growth", "int", KEY),
    Column("growth_rate", "Growth", "rate", USEFUL),
]


def _membership(
    db: sqlite_utils.Database, member_table: str, key: str, period: Period
) -> dict[str, dict[str, int]]:
    """Members at the period's start and end, joins and departures inside it, per group.

    A member without joined_group_at is taken to have been there from the start.
    """
    sql = f"""
        SELECT {key},
          sum(coalesce(joined_group_at, '') < :lo
              AND (deleted_at IS NULL OR deleted_at >= :lo)),
          sum(coalesce(joined_group_at, '') < :hi
              AND (deleted_at IS NULL OR deleted_at >= :hi)),
          sum(coalesce(joined_group_at, '') >= :lo AND coalesce(joined_group_at, '') < :hi),
          sum(deleted_at IS NOT NULL AND deleted_at >= :lo AND deleted_at < :hi)
        FROM {member_table} GROUP BY {key}"""
    out = {}
    for group, at_start, at_end, joined, left in db.execute(
        sql, {"lo": period.utc_lo, "hi": period.utc_hi}
    ).fetchall():
        net = joined - left
        out[group] = {
            "members_at_start": at_start,
            "members": at_end,
            "joined": joined,
            "left": left,
            "net_growth": net,
            "growth_rate": round(net / at_start, 6) if at_start else None,
        }
    return out


def _group_report(
    db: sqlite_utils.Database,
    kind: str,
    period: Period,
    compare: Period | None,
    sort: str | None,
    limit: int | None,
) -> Report:
    table, member_table, key = (
        ("segments", "segment_members", "segment_id")
        if kind == "segment"
        else ("lists", "list_members", "list_id")
    )
    period, compare = account_periods(db, period, compare)
    extra = "is_active" if kind == "segment" else "opt_in_process"
    groups = db.execute(f"SELECT id, name, {extra}, created FROM {table} WHERE deleted_at IS NULL").fetchall()
    members = _membership(db, member_table, key, period)
    zero = {"members_at_start": 0, "members": 0, "joined": 0, "left": 0, "net_growth": 0, "growth_rate": None}
    rows = [
        {f"{kind}_id": gid, "name": name, extra: flag, "created": created, **members.get(gid, zero)}
        for gid, name, flag, created in groups
    ]
    columns = list(GROUP_COLUMNS)
    if compare:
        previous = _membership(db, member_table, key, compare)
        columns = _add_changes(rows, previous, f"{kind}_id", ("net_growth",), columns)
    all_columns = [Column(f"{kind}_id", "Id"), Column(extra, extra), Column("created", "Created"), *columns]
    rows = sort_rows(rows, all_columns, sort, default="members")
    if limit is not None:
        rows = rows[:limit]
    notes = [] if rows else [f"No {table} in the database."]
    if rows and not db.execute(f"SELECT 1 FROM {member_table} LIMIT 1").fetchone():
        notes.append(f"No {kind} members synced yet: run `klaviyo-etl sync {member_table}`.")
    return Report(table, table.title(), columns, rows, period, compare, notes=notes)


def segment_report(
    db: sqlite_utils.Database,
    period: Period,
    compare: Period | None = None,
    *,
    sort: str | None = None,
    limit: int | None = None,
) -> Report:
    """Members now (at the period's end) and growth within the period, per segment."""
    return _group_report(db, "segment", period, compare, sort, limit)


def list_report(
    db: sqlite_utils.Database,
    period: Period,
    compare: Period | None = None,
    *,
    sort: str | None = None,
    limit: int | None = None,
) -> Report:
    """Members (at the period's end) and growth within the period, per list."""
    return _group_report(db, "list", period, compare, sort, limit)
