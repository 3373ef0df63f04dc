"""The vendored digest (`spec/endpoints.json`) read into the contract: every value of the type
its field declares (the dataclasses do not check; this test does, for the file we ship)."""

from __future__ import annotations

import dataclasses
import types
import typing

from klaviyo_etl.endpoints import Contract, Endpoint, RateLimit, ReportEndpoint, contract


def _conforms(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_conforms(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _conforms(k, key) and _conforms(v, item) for k, v in value.items()
        )
    if hint is float:
        return type(value) is float
    if hint is int:
        return type(value) is int
    return isinstance(value, hint)


def _problems(obj) -> list[str]:
    hints = typing.get_type_hints(type(obj))
    return [
        f"{type(obj).__name__}.{f.name} = {getattr(obj, f.name)!r}"
        for f in dataclasses.fields(obj)
        if not _conforms(getattr(obj, f.name), hints[f.name])
    ]


def test_every_value_of_the_digest_has_the_type_its_field_declares():
    c = contract()
    assert len(c.list_endpoints) > 10 and len(c.reporting_endpoints) > 3  # the probe reads something
    problems = _problems(c)
    for endpoint in [*c.list_endpoints, *c.reporting_endpoints]:
        problems += _problems(endpoint) + _problems(endpoint.rate_limit)
    assert problems == []
    assert set(c.rate_limit_tiers) == {"XS", "S", "M", "L", "XL"}  # the digest's note is not a tier


def test_the_contract_reads_the_fields_it_declares_and_rates_as_floats():
    events = contract().by_path("/api/events")
    assert isinstance(events, Endpoint) and isinstance(events.rate_limit, RateLimit)
    assert events.rate_limit == RateLimit(burst_per_s=350, steady_per_min=3500, tier="XL")
    assert type(RateLimit(burst_per_s=1, steady_per_min=15, tier="XS").burst_per_s) is float
    assert events.page_size_max == 1000 and "datetime" in events.filter_fields
    assert not hasattr(events, "operation_id")  # a note for people, not a field
    assert isinstance(contract().report("/api/metric-aggregates"), ReportEndpoint)
    assert isinstance(contract(), Contract)


def test_a_templated_path_matches_its_concrete_paths_only():
    c = contract()
    assert c.endpoint("get", "/api/lists/abc/profiles").path == "/api/lists/{id}/profiles"
    assert c.endpoint("GET", "/api/lists/abc/profiles/").path == "/api/lists/{id}/profiles"
    assert c.endpoint("GET", "/api/lists/abc/def/profiles") is None
    assert c.endpoint("POST", "/api/metric-aggregates/").path == "/api/metric-aggregates"
