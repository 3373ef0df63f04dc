"""One report over several accounts: each account's report built as usual, then merged here.

`combine({name: report, ...})` puts every row under an `account` column (JSON carries
`account` on every row), and recomputes the totals from the summed counts of every row,
never by averaging the accounts' rates. The totals go to `meta.totals` and, for the table,
to a last bold row (`Report.footer`), which JSON and CSV rows leave out. Each account's own
meta (its totals, its conversion metric, its comparison) stays under `meta.accounts`. With
`--compare`, the compare period's totals are recomputed the same way from every account's
rows of that period (`meta.previous_totals`, and `meta.change_pct` as one account has it).

The accounts' reports must be built without `--limit`, so the totals count every row;
`combine` applies the sort and the limit to the merged rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from klaviyo_etl.errors import UsageError
from klaviyo_etl.reports import currency, messages
from klaviyo_etl.reports.model import IDENTITY, KEY, Column, Report, sort_rows
from klaviyo_etl.reports.periods import change_pct

ACCOUNT_COLUMN = Column("account", "Account", priority=KEY)

# Reports whose figures add up, and how their totals are recomputed from the rows.
TOTALS: dict[str, Callable[[list[dict[str, Any]]], dict[str, Any]]] = {
    "campaigns": lambda rows: {"campaigns": len(rows), **messages.figure_totals(rows)},
    "flows": lambda rows: {"rows": len(rows), **messages.figure_totals(rows)},
}
# The order the merged rows take when no --sort is given (else: account by account).
DEFAULT_SORT = {"campaigns": "send_time:desc"}


def combine(reports: dict[str, Report], *, sort: str | None = None, limit: int | None = None) -> Report:
    """The accounts' reports (same kind, by account name) as one report with an account column."""
    if not reports:
        raise UsageError("no accounts to report on")
    first = next(iter(reports.values()))
    if first.name in ("overview", "metric") and len(reports) == 1:
        return first  # `--account NAME`: that account's cards, or its chart and summary
    if first.name == "overview":
        raise UsageError(
            "report overview shows one account's cards: give one --account (campaigns, flows and"
            " the other tables take several)"
        )
    columns = [ACCOUNT_COLUMN, *(c for c in first.columns if c.key != "account")]
    rows = [{"account": name, **row} for name, report in reports.items() for row in report.rows]
    meta: dict[str, Any] = {
        "accounts": {name: {k: v for k, v in r.meta.items()} for name, r in reports.items()},
        "conversion_metric": None,  # each account has its own: see meta.accounts
    }
    zones = {r.timezone for r in reports.values()}
    if len(zones) > 1:  # each account's days are its own: see meta.accounts and the notes
        meta["timezone"] = None
        for name, report in reports.items():
            meta["accounts"][name]["timezone"] = report.timezone
    footer: list[dict[str, Any]] = []
    total = TOTALS.get(first.name)
    if total is not None:
        meta["totals"] = total(rows)
        identity = next((c.key for c in first.columns if c.priority == IDENTITY), None)
        label = {"account": f"{len(reports)} accounts"}
        if identity:
            label[identity] = "Total"
        footer.append({**meta["totals"], **label})
        before = [r.previous_rows for r in reports.values()]
        if first.compare is not None and all(rows is not None for rows in before):
            meta["previous_totals"] = total([row for rows in before for row in rows or ()])
            meta["change_pct"] = {
                key: change_pct(value, meta["previous_totals"].get(key))
                for key, value in meta["totals"].items()
            }
    if sort or first.name in DEFAULT_SORT:
        rows = sort_rows(rows, columns, sort, default=DEFAULT_SORT.get(first.name))
    if limit is not None:
        rows = rows[:limit]
    notes = []
    for name, report in reports.items():
        for caption in (report.timezone_caption if len(zones) > 1 else None, report.conversion_caption):
            if caption:
                notes.append(f"{name}: {caption}")
        notes += [f"{name}: {note}" for note in report.notes]
    if len(zones) > 1 and any(c.kind == "datetime" for c in columns):
        notes.append("All accounts: times are shown in UTC (the accounts' timezones differ)")
    listed = _merged_currencies(reports)
    labels = {r.currency_label for r in reports.values() if r.currency_label}
    if len(labels) > 1:  # the accounts' money is in different currencies: the totals add them
        notes.append(f"All accounts: {currency.note(listed)}")
    combined = Report(
        first.name,
        f"{first.title} ({len(reports)} accounts)",
        columns,
        rows,
        first.period,
        first.compare,
        meta=meta,
        notes=notes,
        footer=footer,
    )
    if any("currencies" in r.meta for r in reports.values()):
        combined.set_currency(listed, note=False)  # each account's note is among the notes
    return combined


def _merged_currencies(reports: dict[str, Report]) -> list[dict[str, Any]]:
    """Every account's orders by currency, summed (a total over accounts adds them)."""
    merged: dict[str | None, dict[str, Any]] = {}
    for report in reports.values():
        for entry in report.meta.get("currencies") or []:
            into = merged.setdefault(entry["code"], {"code": entry["code"], "orders": 0, "value": 0.0})
            into["orders"] += entry["orders"]
            into["value"] = round(into["value"] + entry["value"], 2)
            if entry.get("unnamed_orders"):  # counted in that account's preferred currency
                into["unnamed_orders"] = into.get("unnamed_orders", 0) + entry["unnamed_orders"]
    return sorted(merged.values(), key=lambda c: (-c["value"], c["code"] or ""))
