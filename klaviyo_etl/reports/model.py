"""What every report function returns: columns, plain-dict rows and the period they cover.

One `Report` feeds every output format (Rich table, JSON, CSV, HTML), so the formats
cannot disagree about a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from klaviyo_etl.conventions import PLACED_ORDER
from klaviyo_etl.db.conversion import ConversionMetric
from klaviyo_etl.db.local_days import UTC, days_in
from klaviyo_etl.errors import UsageError, refuse_blank
from klaviyo_etl.reports import currency
from klaviyo_etl.reports.periods import Period
from klaviyo_etl.timeutil import parse_time

# Column kinds decide formatting only: int, float, money, rate (a fraction shown as %),
# pct (already a percentage), text, date, datetime, bool.
NUMERIC_KINDS = {"int", "float", "money", "rate", "pct"}

# What a terminal too narrow for the whole table keeps (`reports/render.py` fits it): the
# IDENTITY column (the campaign, flow, form... a row is about) is never hidden, KEY
# columns go only when nothing else is left to hide, then USEFUL, then the rest (OTHER),
# the rightmost first among equals.
IDENTITY, KEY, USEFUL, OTHER = 0, 1, 2, 3


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"
    priority: int = OTHER
    # The narrowest a text column gets before its cells end in "…" (the identity column
    # defaults to 20); numbers are never narrower than their widest cell.
    min_width: int | None = None
    short: str | None = None  # the header in a terminal too narrow for `label`

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_KINDS


@dataclass
class Report:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    period: Period | None = None
    compare: Period | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # extra top-level JSON fields
    notes: list[str] = field(default_factory=list)  # lines for humans under the table
    # Rows the table shows last, set apart (the totals of several accounts); not in JSON/CSV
    # rows, whose figures are in `meta`.
    footer: list[dict[str, Any]] = field(default_factory=list)
    # The keys of a row, in order, for the CSV header of a report without rows (None: the
    # columns' keys); with rows, the header is the rows' own keys.
    fields: list[str] | None = None
    # The compare period's rows (campaigns, flows), so that several accounts' compared totals
    # are recomputed from their counts (`reports.accounts.combine`); not in JSON or CSV.
    previous_rows: list[dict[str, Any]] | None = None

    def set_conversion(self, metric: ConversionMetric | None) -> Report:
        """Name the conversion metric the figures count: `meta.conversion_metric` (null when
        none is synced) and the caption line `Conversions: Placed Order (Shopify, id XYZ)`."""
        self.meta["conversion_metric"] = metric.to_json() if metric else None
        return self

    def set_currency(self, listed: list[dict[str, Any]], *, note: bool = True) -> Report:
        """Say what the money figures are in (`listed`: `reports.currency.currencies`):
        `meta.currency`, the one currency of the orders (null when they name none, or
        several), `meta.currencies`, each currency's orders and value, and a note when the
        orders do not all carry the one currency."""
        named = [c["code"] for c in listed if c["code"]]
        self.meta["currency"] = named[0] if len(named) == 1 else None
        self.meta["currencies"] = listed
        line = currency.note(listed) if note else None
        if line:
            self.notes.append(line)
        return self

    @property
    def currency_label(self) -> str | None:
        """What the money figures are in, for headers: "USD", "EUR+USD", or None (unknown)."""
        return currency.label(self.meta.get("currencies") or [])

    def with_currency_headers(self) -> Report:
        """The report as shown: each money column's header names the currency, "Revenue
        (USD)" (the same report when the currency is unknown). Keys and figures unchanged."""
        code = self.currency_label
        if not code or not any(c.kind == "money" for c in self.columns):
            return self
        columns = [
            replace(c, label=f"{c.label} ({code})", short=f"{c.short} ({code})" if c.short else None)
            if c.kind == "money"
            else c
            for c in self.columns
        ]
        return replace(self, columns=columns)

    def with_local_times(self) -> Report:
        """The report as shown: its date-time cells (a campaign's send time) on the clock of
        the timezone whose days it counts, so a send shows on the day it is counted in. JSON
        and CSV keep the stored UTC times (with their offset)."""
        zone = self.timezone
        keys = [c.key for c in self.columns if c.kind == "datetime"]
        if not keys or zone is None or zone == UTC:
            return self
        days = days_in(zone)

        def local(value: Any) -> Any:
            if not isinstance(value, str) or len(value) < 16:
                return value
            try:
                return days.wall_clock(parse_time(value)).isoformat()
            except ValueError:
                return value

        rows = [{**row, **{k: local(row[k]) for k in keys if k in row}} for row in self.rows]
        return replace(self, rows=rows)

    def card_label(self, row: dict[str, Any]) -> str:
        """An overview card's title: a money figure's names its currency ("Revenue (USD)")."""
        code = self.currency_label
        return f"{row['label']} ({code})" if code and row.get("kind") == "money" else row["label"]

    @property
    def timezone(self) -> str | None:
        """The timezone whose days the report counts: the account's, as Klaviyo counts them
        ("UTC" also when no account is synced; None: no period, or accounts in several)."""
        if "timezone" in self.meta:  # several accounts' (`reports.accounts.combine`)
            return self.meta["timezone"]
        return self.period.zone if self.period else None

    @property
    def timezone_caption(self) -> str | None:
        """The caption line naming the timezone whose days are counted, when it is not UTC."""
        zone = self.timezone
        if zone is None or zone == UTC:
            return None
        return f"Days in {zone}, the account's timezone (as Klaviyo counts them)"

    @property
    def conversion_caption(self) -> str | None:
        """The caption line naming the conversion metric, and why it was picked when there was
        a choice (several metrics of that name), or that there is none to count, so that zero
        revenue is not read as no sales."""
        if "conversion_metric" not in self.meta or "accounts" in self.meta:
            return None  # several accounts' report: each one's caption is among its notes
        picked = self.meta["conversion_metric"]
        if not picked:
            return (
                f"Conversions: no {PLACED_ORDER!r} metric synced, revenue and orders read 0"
                " (count another: [reports] conversion_metric)"
            )
        metric = ConversionMetric(**picked)
        line = metric.caption()
        if not metric.reason.startswith("the only"):
            line += f": {metric.reason}"
        return line

    def to_json(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "period": self.period.to_json() if self.period else None,
            "compare": self.compare.to_json() if self.compare else None,
            "timezone": self.timezone,
            **self.meta,
            "rows": self.rows,
            "notes": self.notes,
        }


def sort_rows(
    rows: list[dict], columns: list[Column], sort: str | None, default: str | None = None
) -> list[dict]:
    """Sort by `KEY`, `KEY:asc` or `KEY:desc`; numbers sort high-first and text A-Z unless
    told otherwise, and missing values always go last."""
    by_key = {c.key: c for c in columns}
    refuse_blank("--sort", sort, f"a column (choose from {', '.join(by_key)})")
    spec = sort or default
    if not spec:
        return rows
    key, _, direction = spec.partition(":")
    key = key.strip().replace("-", "_")
    if key not in by_key:
        raise UsageError(f"--sort {key!r} is not a column (choose from {', '.join(by_key)})")
    direction = direction.strip().lower()
    if direction not in ("", "asc", "desc"):
        raise UsageError(f"--sort direction {direction!r} must be asc or desc")
    descending = direction == "desc" or (direction == "" and by_key[key].numeric)
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    present.sort(key=lambda r: r[key], reverse=descending)
    return present + missing
