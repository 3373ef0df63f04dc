"""Klaviyo's filter syntax: `op(field,value)` terms, optionally wrapped in `and(...)`.

    equals(messages.channel,'email')
    and(greater-or-equal(datetime,2026-01-01T00:00:00Z),equals(metric_id,"AbC123"))
    any(id,["a","b"])   has(profile)

Values are quoted strings, unquoted ISO datetimes, numbers, booleans, null or lists. A
comma-separated list of terms at the top level means "and", as in Klaviyo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from klaviyo_etl.timeutil import iso_to_epoch


class FilterError(ValueError):
    """The filter is malformed or uses a field/operator the endpoint does not allow."""


@dataclass(frozen=True)
class Term:
    op: str
    field: str
    value: Any = None  # None for one-argument operators such as has(...)


_TOKEN = re.compile(r"""\s*(?:(?P<str>'[^']*'|"[^"]*")|(?P<punct>[(),\[\]])|(?P<atom>[^\s(),\[\]'"]+))""")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_SPACED_OFFSET = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"cannot parse filter near {text[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("unexpected end of filter")
        if expected is not None and token[1] != expected:
            raise FilterError(f"expected {expected!r}, found {token[1]!r}")
        self.i += 1
        return token

    def terms(self) -> list[Term]:
        found = self.expression()
        while self.peek() is not None:
            self.take(",")
            found += self.expression()
        return found

    def expression(self) -> list[Term]:
        kind, op = self.take()
        if kind != "atom":
            raise FilterError(f"expected an operator, found {op!r}")
        self.take("(")
        if op == "and":
            found = self.expression()
            while self.peek() and self.peek()[1] == ",":
                self.take(",")
                found += self.expression()
            self.take(")")
            return found
        if op in ("or", "not"):
            raise FilterError(f"'{op}' is not supported for this endpoint; combine terms with and()")
        kind, field = self.take()
        if kind != "atom":
            raise FilterError(f"expected a field name in {op}(), found {field!r}")
        if self.peek() and self.peek()[1] == ")":
            self.take(")")
            return [Term(op, field)]
        self.take(",")
        value = self.value()
        self.take(")")
        return [Term(op, field, value)]

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return text[1:-1]
        if text == "[":
            items = []
            if self.peek() and self.peek()[1] == "]":
                self.take("]")
                return items
            items.append(self.value())
            while self.peek() and self.peek()[1] == ",":
                self.take(",")
                items.append(self.value())
            self.take("]")
            return items
        if kind != "atom":
            raise FilterError(f"expected a value, found {text!r}")
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if _DATETIME.match(text.replace(" ", "+")):
            return DateTime(text)
        if _NUMBER.match(text):
            return float(text) if "." in text else int(text)
        raise FilterError(f"invalid value {text!r}: quote strings")


@dataclass(frozen=True)
class DateTime:
    """An unquoted ISO datetime in a filter."""

    text: str

    @property
    def epoch(self) -> float:
        try:
            return iso_to_epoch(self.text)
        except ValueError as exc:
            raise FilterError(f"invalid datetime {self.text!r}") from exc


def parse_filter(text: str) -> list[Term]:
    """The conjunction of terms in `text`."""
    if not text or not text.strip():
        raise FilterError("empty filter")
    # A '+' offset sent unescaped in a query string arrives as a space.
    text = _SPACED_OFFSET.sub(r"\1+\2", text)
    return _Parser(text).terms()


def validate(terms: list[Term], allowed: dict[str, list[str]] | None) -> None:
    """Reject fields and operators the endpoint does not support, as Klaviyo does (400)."""
    allowed = allowed or {}
    for term in terms:
        if term.field not in allowed:
            raise FilterError(f"'{term.field}' is not a valid filter field for this resource")
        if term.op not in allowed[term.field]:
            raise FilterError(
                f"'{term.op}' is not a valid operator for '{term.field}'; "
                f"allowed: {', '.join(allowed[term.field])}"
            )
        if term.op in ("any", "contains-any", "contains-all") and not isinstance(term.value, list):
            raise FilterError(f"'{term.op}' needs a list value, e.g. {term.op}({term.field},[\"a\"])")


def as_epoch(value: Any) -> float:
    """A filter value or stored attribute as epoch seconds, for datetime comparisons."""
    if isinstance(value, DateTime):
        return value.epoch
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return iso_to_epoch(value)
        except ValueError as exc:
            raise FilterError(f"invalid datetime {value!r}") from exc
    raise FilterError(f"expected a datetime, got {value!r}")


def _plain(value: Any) -> Any:
    return value.text if isinstance(value, DateTime) else value


def matches(term: Term, actual: Any, *, datetime_field: bool = False) -> bool:
    """Whether a stored value satisfies one term."""
    op = term.op
    if op == "has":
        return actual is not None
    if datetime_field and op in ("greater-than", "greater-or-equal", "less-than", "less-or-equal", "equals"):
        if actual is None:
            return False
        a, b = as_epoch(actual), as_epoch(term.value)
        return {
            "greater-than": a > b,
            "greater-or-equal": a >= b,
            "less-than": a < b,
            "less-or-equal": a <= b,
            "equals": a == b,
        }[op]
    value = _plain(term.value)
    if op == "equals":
        return actual == value
    if op == "any":
        return actual in [_plain(v) for v in value]
    if op in ("greater-than", "greater-or-equal", "less-than", "less-or-equal"):
        if actual is None:
            return False
        return {
            "greater-than": actual > value,
            "greater-or-equal": actual >= value,
            "less-than": actual < value,
            "less-or-equal": actual <= value,
        }[op]
    if op == "contains":
        return isinstance(actual, str) and str(value).lower() in actual.lower()
    if op == "starts-with":
        return isinstance(actual, str) and actual.lower().startswith(str(value).lower())
    if op == "ends-with":
        return isinstance(actual, str) and actual.lower().endswith(str(value).lower())
    if op == "contains-any":
        items = actual if isinstance(actual, list) else [actual]
        return any(v in items for v in value)
    if op == "contains-all":
        items = actual if isinstance(actual, list) else [actual]
        return all(v in items for v in value)
    raise FilterError(f"unsupported operator {op!r}")
