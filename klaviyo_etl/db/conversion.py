"""Which metric counts as a conversion: one answer for the rollups, the Reporting API and the reports.

Accounts often have more than one "Placed Order" metric (Shopify plus an API or
WooCommerce integration, say). Counting both would double every order; picking one by
chance would change figures from one sync to the next. So the choice is made here, once:

- `[reports] conversion_metric` in the config file (a metric id, or a name) wins; a setting
  that matches no synced metric is a `ConfigError`;
- otherwise, among the metrics named "Placed Order", the one with the most live events in
  the local events table (a deleted profile's orders no longer count); ties go to the
  earliest created, then the smallest id.

The rollups count only this metric's events as conversions (its id is part of their
signature, so a change rebuilds them), the `reports` stream sends its id to the Reporting
API, and every report names it in its header and in `meta.conversion_metric`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from klaviyo_etl import conventions as kc
from klaviyo_etl.errors import ConfigError


@dataclass(frozen=True)
class ConversionMetric:
    id: str
    name: str
    integration: str | None
    reason: str  # why this one: "configured", "the only ...", "most events of N ..."

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "integration": self.integration, "reason": self.reason}

    def caption(self) -> str:
        """The caption line: `Conversions: Placed Order (Shopify, id XYZ)`."""
        source = f"{self.integration}, " if self.integration else ""
        return f"Conversions: {self.name} ({source}id {self.id})"


def _candidates(db: sqlite_utils.Database, where: str, params: list[Any]) -> list[tuple]:
    """(id, name, integration, created) of the live metrics matching `where`."""
    return db.execute(
        f"SELECT id, name, integration_name, created FROM metrics WHERE deleted_at IS NULL AND {where}",
        params,
    ).fetchall()


def _event_count(db: sqlite_utils.Database, metric_id: str) -> int:
    """The metric's live events: all of them (a range of the (metric_id, datetime) index) less
    the deleted ones (the partial index of m008), two index counts and not a table scan."""
    return db.execute(
        "SELECT (SELECT count(*) FROM events WHERE metric_id = :m)"
        " - (SELECT count(*) FROM events WHERE metric_id = :m AND deleted_at IS NOT NULL)",
        {"m": metric_id},
    ).fetchone()[0]


def _pick(db: sqlite_utils.Database, rows: list[tuple], what: str) -> ConversionMetric:
    if len(rows) == 1:
        mid, name, integration, _created = rows[0]
        return ConversionMetric(mid, name, integration, f"the only {what}")
    counted = [(_event_count(db, r[0]), r) for r in rows]
    # Most events first; ties: earliest created (missing dates last), then smallest id.
    counted.sort(key=lambda c: (-c[0], c[1][3] is None, c[1][3] or "", c[1][0]))
    (events, (mid, name, integration, _created)), runner_up = counted[0], counted[1][0]
    why = "tie on events broken by earliest created, then id" if events == runner_up else "most events"
    others = ", ".join(f"{r[2] or '?'} {r[0]} ({n:,})" for n, r in counted[1:])
    return ConversionMetric(
        mid, name, integration, f"{why} ({events:,}) of {len(rows)} {what} metrics; not {others}"
    )


# The last pick per open database, with what it was picked from: the setting, and the
# connection's own changes and other connections' commits (`PRAGMA data_version`) then.
_PICKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def conversion_metric(db: sqlite_utils.Database, setting: str | None = None) -> ConversionMetric | None:
    """The conversion metric for `setting` (an id or a name; None = the default rule).

    None when nothing can be chosen yet (no metric synced at all, or no "Placed Order" metric
    and no setting). Raises ConfigError when a setting matches none of the synced metrics.

    A report asks several times (the rollups' freshness, the report, its header), and with
    several "Placed Order" metrics each answer counts their events, which grows with the
    database (issue 12); so the answer is kept until the database changes.
    """
    key = (setting, db.conn.total_changes, db.execute("PRAGMA data_version").fetchone()[0])
    cached = _PICKED.get(db)
    if cached is not None and cached[0] == key:
        return cached[1]
    picked = _pick_for(db, setting)
    _PICKED[db] = (key, picked)
    return picked


def _pick_for(db: sqlite_utils.Database, setting: str | None) -> ConversionMetric | None:
    if setting is not None and setting.strip():
        setting = setting.strip()
        by_id = _candidates(db, "id = ?", [setting])
        if by_id:
            mid, name, integration, _created = by_id[0]
            return ConversionMetric(mid, name, integration, f"configured: conversion_metric = {setting!r}")
        by_name = _candidates(db, "name = ?", [setting])
        if by_name:
            picked = _pick(db, by_name, repr(setting))
            return ConversionMetric(
                picked.id,
                picked.name,
                picked.integration,
                f"configured: conversion_metric = {setting!r}; {picked.reason}",
            )
        if not db.execute("SELECT 1 FROM metrics LIMIT 1").fetchone():
            return None  # nothing synced yet: no way to tell a typo from a metric to come
        raise ConfigError(
            f"[reports] conversion_metric {setting!r} matches no metric id or name in the database"
            " (`klaviyo-etl sync metrics`, then check the name)"
        )
    rows = _candidates(db, "name = ?", [kc.PLACED_ORDER])
    if not rows:
        return None
    return _pick(db, rows, repr(kc.PLACED_ORDER))


def conversion_meta(db: sqlite_utils.Database, setting: str | None = None) -> dict[str, Any] | None:
    """What a report puts in `meta.conversion_metric` ({id, name, integration, reason} or None)."""
    picked = conversion_metric(db, setting)
    return picked.to_json() if picked else None
