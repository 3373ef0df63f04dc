"""The sandbox as the tests start it (presets, the sandbox tests' fixed account, a client), the
spec's response schemas as JSON Schema, and page walks.

`tests/conftest.py: sandbox_factory` starts a sandbox from these presets.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from klaviyo_etl.sandbox import SandboxConfig, SandboxData, SandboxServer

REVISION = "2026-07-15"

# Account sizes; a test overrides only the fields its assertions depend on.
PRESETS: dict[str, dict[str, Any]] = {
    # Small on purpose: every page lands in a committed cassette. `make cassettes` records the
    # contract cassettes against this preset, so changing it changes them when re-recorded.
    "tiny": dict(
        seed=11,
        profiles=30,
        events=300,
        campaigns=8,  # enough for an archived, an A/B, a sending and two not-sent campaigns
        flows=3,  # two live, one archived
        lists=2,
        segments=2,
        forms=2,
        templates=3,
        tags=3,
        days=30,
    ),
    # Enough for every stream to page and for both campaign channels to appear.
    "small": dict(
        seed=11,
        profiles=150,
        events=2500,
        campaigns=8,
        flows=3,
        lists=3,
        segments=2,
        forms=2,
        templates=5,
        tags=4,
        days=60,
    ),
    # SandboxConfig's own defaults: what `klaviyo-etl sandbox serve` generates.
    "default": {},
}

# The sandbox tests' account is anchored here, so its figures never depend on the clock.
NOW = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)


def sandbox_config(preset: str = "small", **overrides: Any) -> SandboxConfig:
    """A preset with overrides; `now` defaults to the current second, like a live account."""
    values = {**PRESETS[preset], **overrides}
    values.setdefault("now", datetime.now(UTC).replace(microsecond=0))
    return SandboxConfig(**values)


# The sandbox tests' account: the default size with more profiles and events (so that the campaigns'
# audiences produce attributed orders to compare), seed 11, anchored at `NOW`.
ACCOUNT: dict[str, Any] = {"seed": 11, "now": NOW, "profiles": 800, "events": 5000}


def make_config(**overrides: Any) -> SandboxConfig:
    """The sandbox tests' account (`ACCOUNT`), with overrides."""
    return sandbox_config("default", **{**ACCOUNT, **overrides})


@dataclass
class Sandbox:
    """A running sandbox: the server, the data it serves and the config it was made from."""

    server: SandboxServer
    data: SandboxData
    config: SandboxConfig


def make_client(server: SandboxServer, **headers: str) -> httpx.Client:
    """An httpx client sending the key, revision and accept header the sandbox expects."""
    base = {
        "Authorization": f"Klaviyo-API-Key {server.config.api_key}",
        "revision": REVISION,
        "accept": "application/vnd.api+json",
    }
    return httpx.Client(base_url=server.url, headers={**base, **headers}, timeout=30)


def convert(node: Any, *, sparse: bool = False) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema 2020-12.

    `nullable: true` becomes a null alternative. `oneOf` becomes `anyOf`: the spec's
    alternatives overlap (EmailSendOptions, SMSSendOptions and PushSendOptions are the same
    object), so a real Klaviyo payload would fail `oneOf` for matching more than one branch.
    """
    if isinstance(node, list):
        return [convert(item, sparse=sparse) for item in node]
    if not isinstance(node, dict):
        return node
    dropped = ("nullable", "example", "description", "writeOnly", "readOnly", "discriminator")
    out = {
        k: convert(v, sparse=sparse)
        for k, v in node.items()
        if k not in dropped and not (sparse and k == "required")
    }
    if "oneOf" in out:
        out["anyOf"] = out.pop("oneOf")
    if node.get("nullable"):
        if "type" in out and not any(k in out for k in ("$ref", "anyOf", "allOf")):
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def spec() -> dict:
    return json.loads(resources.files("klaviyo_etl").joinpath("spec/schemas.json").read_text())


@cache
def _components(sparse: bool) -> dict:
    return convert(spec()["components"], sparse=sparse)


def validator(route: str, status: str = "200", *, sparse: bool = False) -> Draft202012Validator:
    """Validator for the response of `route` ("GET /api/events") with `status`.

    `sparse` drops `required`: with a sparse fieldset Klaviyo itself omits required attributes.
    """
    schema = copy.deepcopy(convert(spec()["responses"][route][status], sparse=sparse))
    schema["components"] = _components(sparse)
    return Draft202012Validator(schema)


def errors_of(route: str, body: dict, status: str = "200", *, sparse: bool = False) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in validator(route, status, sparse=sparse).iter_errors(body)
    ]


def documented_attributes(route: str) -> set[str]:
    """Attribute names the spec documents for the primary data of `route`."""
    schemas = spec()["components"]["schemas"]

    def deref(node: dict) -> dict:
        while "$ref" in node:
            node = schemas[node["$ref"].rsplit("/", 1)[1]]
        return node

    def attribute_names(node: dict) -> set[str]:
        node = deref(node)
        names: set[str] = set()
        for part in node.get("allOf", []):
            names |= attribute_names(part)
        attrs = node.get("properties", {}).get("attributes")
        if attrs:
            attrs = deref(attrs)
            names |= set(attrs.get("properties", {}))
            for part in attrs.get("allOf", []):
                names |= set(deref(part).get("properties", {}))
        return names

    data = deref(spec()["responses"][route]["200"])["properties"]["data"]
    data = deref(data)
    if data.get("type") == "array":
        data = data["items"]
    return attribute_names(data)


def walk(client: httpx.Client, path: str, params: dict | None = None) -> tuple[list[dict], int]:
    """Every item of a paginated collection by following links.next; (items, pages)."""
    items: list[dict] = []
    pages = 0
    url: str | None = path
    while url:
        response = client.get(url, params=params if url == path else None)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["data"]
        pages += 1
        url = body["links"].get("next")
        assert pages < 10_000
    return items, pages


@contextlib.contextmanager
def scopes_missing(config: SandboxConfig, *scopes: str) -> Iterator[None]:
    """The sandbox answers 403 for `scopes` while inside, as to a key made without them."""
    config.missing_scopes = frozenset(scopes)
    try:
        yield
    finally:
        config.missing_scopes = frozenset()
