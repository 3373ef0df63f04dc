"""Numbers as people read them, in the terminal table and on the HTML page alike."""

from __future__ import annotations

from typing import Any

from klaviyo_etl.reports.messages import OPEN_RATES
from klaviyo_etl.reports.model import Column

# Figures that are None because they do not apply (SMS has no opens), not because unknown.
NOT_APPLICABLE = "n/a"


def format_value(value: Any, kind: str) -> str:
    """A number as people read it: 1,234 / 1,234.50 / 12.3% / +4.1%; a missing rate (one
    that does not apply, such as an SMS open rate) is "n/a", any other missing value "–"."""
    if value is None:
        return "n/a" if kind == "rate" else "–"
    if kind == "bool":
        return "yes" if value else ""
    if kind == "int":
        return f"{int(round(value)):,}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "float":
        return f"{value:,.2f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "pct":
        return f"{value:+.1f}%"
    if kind == "datetime" and isinstance(value, str):
        return value[:16].replace("T", " ")
    return str(value)


def cell(row: dict[str, Any], column: Column) -> str:
    """One table cell; a field the row lacks (a cohort's months to come) is "–"."""
    if column.key not in row:
        return "–"
    kind = column.kind
    if kind == "kpi":  # the overview's value columns take the kind of their row
        kind = row.get("kind", "float")
    value = row.get(column.key)
    if value is None and column.key in OPEN_RATES and row.get("recipients") is not None:
        # A rate with figures beside it but no value: the channel has no opens (SMS).
        return NOT_APPLICABLE
    return format_value(value, kind)
