"""Helpers for the sandbox tests: the spec's response schemas as JSON Schema, and page walks."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

import httpx
from jsonschema import Draft202012Validator

REVISION = "2026-07-15"


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
