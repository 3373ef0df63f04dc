"""The per-endpoint API contract (page sizes, rate-limit tiers, filters) from Klaviyo's spec digest.

Loaded from the vendored `spec/endpoints.json` so the client, streams and sandbox all read
one source of truth instead of repeating numbers.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

from pydantic import BaseModel

from klaviyo_etl import REVISION

__all__ = ["REVISION", "Contract", "Endpoint", "RateLimit", "ReportEndpoint", "contract"]


class RateLimit(BaseModel):
    burst_per_s: float
    steady_per_min: float
    tier: str
    daily: int | None = None


class Endpoint(BaseModel):
    resource: str
    method: str
    path: str
    page_size_param: str | None = None
    page_size_default: int | None = None
    page_size_max: int | None = None
    rate_limit: RateLimit
    incremental_filter_field: str | None = None
    incremental_filter_operators: list[str] | None = None
    required_filter: str | None = None
    sort_fields: list[str] | None = None
    filter_fields: dict[str, list[str]] | None = None
    include: list[str] | None = None
    additional_fields: dict[str, list[str]] | None = None
    scopes: list[str] = []  # the API key scopes a request needs (403 without them)

    @property
    def key(self) -> str:
        """A stable name for limiter buckets: method plus templated path."""
        return f"{self.method} {self.path}"

    def matches(self, method: str, path: str) -> bool:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", self.path) + "/?$"
        return self.method == method.upper() and re.match(pattern, path) is not None


class ReportEndpoint(BaseModel):
    method: str
    path: str
    type: str
    rate_limit: RateLimit
    statistics: list[str] | None = None
    group_by: list[str] | None = None
    timeframe_keys: list[str] | None = None
    scopes: list[str] = []

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


class Contract(BaseModel):
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


@cache
def contract() -> Contract:
    raw = json.loads(resources.files("klaviyo_etl").joinpath("spec/endpoints.json").read_text())
    raw["rate_limit_tiers"] = {k: v for k, v in raw["rate_limit_tiers"].items() if k != "_note"}
    return Contract.model_validate(raw)
