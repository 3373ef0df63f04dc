"""What a report's money is in: the currencies of the orders behind its figures.

Klaviyo adds order values as they are: an order's `$value` is in the currency its
integration sent (`$currency_code` on a Placed Order), and no report of Klaviyo's but its
Benchmarks converts one currency into another (LIVE_BEHAVIOUR.md §7). So a figure here is in
the currency of its orders, and when they carry several, it adds amounts of different
currencies. The reports say which: the money columns' headers name the currency ("Revenue
(USD)", or "Revenue (EUR+USD)"), JSON carries `currency` and `currencies`, CSV a `currency`
column, and a note gives each currency's orders and value when there are several.

Orders that name no currency Klaviyo counts in the account's preferred currency. When the
account is synced (the `accounts` stream), so do we: they join that currency's orders, and
the note says how many of them name none. Without it they stay unnamed, and the note says
that Klaviyo counts them in a currency not synced.

Read from `rollup_currency_days` (a few rows per day), never from the events; the account
is one row, read only when some orders name no currency.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from klaviyo_etl.db.account import synced_account
from klaviyo_etl.db.conversion import ConversionMetric
from klaviyo_etl.reports.periods import Period
from klaviyo_etl.wording import counted


def currencies(
    db: sqlite_utils.Database, metric_ids: list[str], period: Period | None
) -> list[dict[str, Any]]:
    """The orders of `metric_ids` in `period` (None: all time) by currency, the largest value
    first: `{"code": "USD", "orders": 1971, "value": 227086.0}`; code None for orders that
    name no currency."""
    if not metric_ids:
        return []
    lo, hi = (period.lo[:10], period.hi[:10]) if period else ("", "9999")
    rows = db.execute(
        f"SELECT currency, sum(events), total(value) FROM rollup_currency_days"
        f" WHERE metric_id IN ({','.join('?' * len(metric_ids))}) AND day >= ? AND day < ?"
        f" GROUP BY 1 ORDER BY 3 DESC, 1",
        [*metric_ids, lo, hi],
    ).fetchall()
    listed = [
        {"code": code or None, "orders": orders, "value": round(value, 2)} for code, orders, value in rows
    ]
    if any(c["code"] is None for c in listed):
        account = synced_account(db)
        if account is not None and account.preferred_currency:
            return in_preferred(listed, account.preferred_currency)
    return listed


def in_preferred(listed: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    """`listed` with the orders that name no currency counted in `code`, the account's
    preferred currency, as Klaviyo counts them; that entry's `unnamed_orders` says how many."""
    unnamed = next(c for c in listed if c["code"] is None)
    out = [dict(c) for c in listed if c["code"] is not None]
    into = next((c for c in out if c["code"] == code), None)
    if into is None:
        into = {"code": code, "orders": 0, "value": 0.0}
        out.append(into)
    into["orders"] += unnamed["orders"]
    into["value"] = round(into["value"] + unnamed["value"], 2)
    into["unnamed_orders"] = into.get("unnamed_orders", 0) + unnamed["orders"]
    return sorted(out, key=lambda c: (-c["value"], c["code"]))


def of_conversions(
    db: sqlite_utils.Database, metric: ConversionMetric | None, period: Period | None
) -> list[dict[str, Any]]:
    """The currencies of the conversion metric's orders in `period`."""
    return currencies(db, [metric.id], period) if metric else []


def label(listed: list[dict[str, Any]]) -> str | None:
    """ "USD"; "EUR+USD" when the orders carry several (their amounts add up unconverted);
    None when none names a currency."""
    codes = [c["code"] for c in listed if c["code"]]
    return "+".join(codes) or None


def note(listed: list[dict[str, Any]]) -> str | None:
    """The line under a report whose orders do not all carry the one currency: each
    currency's orders and value, and what the figures then are."""
    named = [c for c in listed if c["code"]]
    unnamed = sum(c["orders"] for c in listed if not c["code"])
    preferred = next((c for c in named if c.get("unnamed_orders")), None)
    if len(named) > 1:
        each = ", ".join(
            f"{c['code']} {c['value']:,.2f} in {counted(c['orders'], 'order', grouped=True)}" for c in named
        )
        line = (
            f"Orders in {len(named)} currencies: {each}. The revenue figures add their amounts"
            " unconverted, as Klaviyo's own reports do: compare them within one currency"
            " (JSON `currencies`)."
        )
    elif named and (unnamed or preferred):
        line = f"Money in {named[0]['code']}; "
    else:
        return None
    space = " " if len(named) > 1 else ""
    if unnamed:
        line += (
            f"{space}{_naming_none(unnamed)} (Klaviyo counts them in the account's preferred"
            " currency, which is not synced)."
        )
    if preferred:
        line += (
            f"{space}{_naming_none(preferred['unnamed_orders'])}: counted in {preferred['code']},"
            " the account's preferred currency, as Klaviyo counts them."
        )
    return line


def _naming_none(orders: int) -> str:
    """ "1 order names no currency", "2 orders name no currency"."""
    return f"{counted(orders, 'order', grouped=True)} {'names' if orders == 1 else 'name'} no currency"
