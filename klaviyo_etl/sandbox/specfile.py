"""Vendor the response schemas the sandbox must honour from Klaviyo's OpenAPI spec.

CI runs without the 3 MB upstream spec, so the conformance tests read a trimmed copy:
for each endpoint the sandbox serves, the success and error response schemas plus every
component they reference, transitively. Regenerate with

    python -m klaviyo_etl.sandbox.specfile /path/to/stable.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# (method, path) for every route the sandbox answers.
ENDPOINTS: list[tuple[str, str]] = [
    ("get", "/api/accounts"),
    ("get", "/api/metrics"),
    ("get", "/api/events"),
    ("get", "/api/profiles"),
    ("get", "/api/lists"),
    ("get", "/api/lists/{id}"),
    ("get", "/api/lists/{id}/profiles"),
    ("get", "/api/segments"),
    ("get", "/api/segments/{id}"),
    ("get", "/api/segments/{id}/profiles"),
    ("get", "/api/campaigns"),
    ("get", "/api/campaigns/{id}/campaign-messages"),
    ("get", "/api/flows"),
    ("get", "/api/flows/{id}/flow-actions"),
    ("get", "/api/flow-actions/{id}/flow-messages"),
    ("get", "/api/forms"),
    ("get", "/api/templates"),
    ("get", "/api/tags"),
    ("get", "/api/tag-groups"),
    ("post", "/api/campaign-values-reports"),
    ("post", "/api/flow-values-reports"),
    ("post", "/api/metric-aggregates"),
]

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "spec" / "schemas.json"
JSONAPI = "application/vnd.api+json"


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _lookup(spec: dict, ref: str) -> Any:
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _parameter_enums(operation: dict) -> dict[str, list[str]]:
    """Allowed values of the enumerated query parameters (fields[...], include, sort, ...)."""
    enums: dict[str, list[str]] = {}
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        schema = parameter.get("schema", {})
        values = schema.get("enum") or schema.get("items", {}).get("enum")
        if values:
            enums[parameter["name"]] = values
    return enums


def extract(spec: dict) -> dict:
    """The trimmed document: `responses` maps "METHOD path" -> {status: schema}, `parameters`
    maps "METHOD path" -> {query parameter: allowed values}, plus the referenced components."""
    responses: dict[str, dict[str, Any]] = {}
    parameters: dict[str, dict[str, list[str]]] = {}
    pending: set[str] = set()
    for method, path in ENDPOINTS:
        operation = spec["paths"][path][method]
        by_status: dict[str, Any] = {}
        for status, response in operation["responses"].items():
            if "$ref" in response:
                response = _lookup(spec, response["$ref"])
            schema = response.get("content", {}).get(JSONAPI, {}).get("schema")
            if schema is not None:
                by_status[status] = schema
                pending |= _refs(schema)
        responses[f"{method.upper()} {path}"] = by_status
        parameters[f"{method.upper()} {path}"] = _parameter_enums(operation)

    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        pending |= _refs(_lookup(spec, ref)) - seen

    components: dict[str, dict[str, Any]] = {}
    for ref in sorted(seen):
        _, section, name = ref.removeprefix("#/").split("/")
        components.setdefault(section, {})[name] = _lookup(spec, ref)
    return {
        "openapi": spec.get("openapi"),
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "responses": responses,
        "parameters": parameters,
        "components": components,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="Klaviyo's openapi/stable.json")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    trimmed = extract(json.loads(args.spec.read_text()))
    args.output.write_text(json.dumps(trimmed, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.output} ({len(trimmed['components'].get('schemas', {}))} schemas)")


if __name__ == "__main__":
    main()
