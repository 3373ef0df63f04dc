"""The per-endpoint API contract (page sizes, rate-limit tiers, filters) from Klaviyo's spec digest.

Loaded from the vendored `spec/endpoints.json` so the client, streams and sandbox all read
one source of truth instead of repeating numbers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from klaviyo_etl import REVISION

__all__ = ["REVISION", "Contract", "Endpoint", "RateLimit", "ReportEndpoint", "contract"]

# Plain dataclasses, read from the digest by `_read`: pydantic models here cost every sync
# ~0.08 s of imports and schema building before its first request (issue 12: start-up),
# and the digest is ours, vendored and checked by tests/test_endpoints.py.


@dataclass
class RateLimit:
    burst_per_s: float
    steady_per_min: float
    tier: str
    daily: int | None = None

    def __post_init__(self) -> None:
        self.burst_per_s = float(self.burst_per_s)
        self.steady_per_min = float(self.steady_per_min)


@dataclass
class Endpoint:
    resource: str
    method: str
    path: str
    rate_limit: RateLimit
    page_size_param: str | None = None
    page_size_default: int | None = None
    page_size_max: int | None = None
    incremental_filter_field: str | None = None
    incremental_filter_operators: list[str] | None = None
    required_filter: str | None = None
    sort_fields: list[str] | None = None
    filter_fields: dict[str, list[str]] | None = None
    include: list[str] | None = None
    additional_fields: dict[str, list[str]] | None = None
    scopes: list[str] = field(default_factory=list)  # the API key scopes a request needs (403 without them)

    @property
    def key(self) -> str:
        """A stable name for limiter buckets: method plus templated path."""
        return f"{self.method} {self.path}"

    def matches(self, method: str, path: str) -> bool:
        return self.method == method.upper() and _pattern(self.path).match(path) is not None


@cache
def _pattern(templated: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", templated) + "/?$")


@dataclass
class ReportEndpoint:
    method: str
    path: str
    type: str
    rate_limit: RateLimit
    statistics: list[str] | None = None
    group_by: list[str] | None = None
    timeframe_keys: list[str] | None = None
    scopes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Contract:
    rate_limit_tiers: dict[str, list[float]]
    list_endpoints: list[Endpoint]
    reporting_endpoints: list[ReportEndpoint]

    def endpoint(self, method: str, path: str) -> Endpoint | ReportEndpoint | None:
        """The endpoint serving a concrete request path (ids filled in), or None."""
        for e in self.list_endpoints:
            if e.matches(method, path):
                return e
        for r in self.reporting_endpoints:
            if r.method == method.upper() and r.path == path.rstrip("/"):
                return r
        return None

    def by_path(self, path: str, method: str = "GET") -> Endpoint:
        for e in self.list_endpoints:
            if e.path == path and e.method == method:
                return e
        raise KeyError(path)

    def report(self, path: str) -> ReportEndpoint:
        for r in self.reporting_endpoints:
            if r.path == path:
                return r
        raise KeyError(path)


def _read(cls: type, raw: dict[str, Any]) -> Any:
    """`cls` from the digest's object `raw`: the fields `cls` declares (others are notes for
    people, such as `operation_id`), its rate limit as a `RateLimit`."""
    values = {f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw}
    if "rate_limit" in values:
        values["rate_limit"] = _read(RateLimit, values["rate_limit"])
    return cls(**values)


@cache
def contract() -> Contract:
    raw = json.loads(resources.files("klaviyo_etl").joinpath("spec/endpoints.json").read_text())
    return Contract(
        rate_limit_tiers={
            tier: [float(n) for n in limits]
            for tier, limits in raw["rate_limit_tiers"].items()
            if tier != "_note"
        },
        list_endpoints=[_read(Endpoint, e) for e in raw["list_endpoints"]],
        reporting_endpoints=[_read(ReportEndpoint, r) for r in raw["reporting_endpoints"]],
    )
