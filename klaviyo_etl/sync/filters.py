"""Klaviyo filter expressions (`op(field,value)`, `and(...)`), built within each endpoint's rules."""

from __future__ import annotations

import datetime as dt

from klaviyo_etl.endpoints import Endpoint

ONE_SECOND = dt.timedelta(seconds=1)


def fmt_time(value: dt.datetime) -> str:
    """Klaviyo filter datetimes are unquoted ISO 8601 in UTC, the year in four digits
    (strftime's %Y wrote year 999 as "999", which no server reads as a date)."""
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def quote(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


def and_(*parts: str | None) -> str | None:
    """The parts and-ed; an `and(...)` part is spliced in, so the result is one flat `and`."""
    kept = [p for p in parts if p]
    if len(kept) <= 1:
        return kept[0] if kept else None
    flat = [p[4:-1] if p.startswith("and(") and p.endswith(")") else p for p in kept]
    return f"and({','.join(flat)})"


def time_range(
    endpoint: Endpoint, lo: dt.datetime | None, hi: dt.datetime | None, field: str | None = None
) -> str | None:
    """A filter selecting `lo <= field < hi` with the operators this endpoint accepts.

    Where only strict `greater-than` exists (profiles, lists, segments) we ask for
    `> lo - 1s`: the overlap is re-read and the idempotent upsert absorbs it.
    """
    field = field or endpoint.incremental_filter_field
    ops = set((endpoint.filter_fields or {}).get(field) or endpoint.incremental_filter_operators or [])
    parts: list[str] = []
    if lo is not None:
        if "greater-or-equal" in ops:
            parts.append(f"greater-or-equal({field},{fmt_time(lo)})")
        elif "greater-than" in ops:
            parts.append(f"greater-than({field},{fmt_time(lo - ONE_SECOND)})")
        else:
            raise ValueError(f"{endpoint.path} cannot filter {field} from below")
    if hi is not None:
        if "less-than" in ops:
            parts.append(f"less-than({field},{fmt_time(hi)})")
        elif "less-or-equal" in ops:
            parts.append(f"less-or-equal({field},{fmt_time(hi - ONE_SECOND)})")
        else:
            raise ValueError(f"{endpoint.path} cannot filter {field} from above")
    return and_(*parts)
