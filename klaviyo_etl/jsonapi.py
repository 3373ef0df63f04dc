"""A JSON:API resource read as plain JSON: its shape, and its relationships' ids.

The readers that need no pydantic (`klaviyo_etl.sync.parsing.plain_page`,
`klaviyo_etl.sync.first_row`) check a resource's shape here as the models would; the
models (`klaviyo_etl.models.Resource`) and the lean `RawResource` read relationships here.
"""

from __future__ import annotations

from typing import Any


def related_id(relationships: dict[str, Any] | None, name: str) -> str | None:
    """The id of a to-one relationship (`relationships.<name>.data.id`), if present."""
    rel = (relationships or {}).get(name) or {}
    data = rel.get("data")
    return data.get("id") if isinstance(data, dict) else None


def related_ids(relationships: dict[str, Any] | None, name: str) -> list[str]:
    """The ids of a to-many relationship (`relationships.<name>.data[].id`)."""
    rel = (relationships or {}).get(name) or {}
    data = rel.get("data")
    return [d["id"] for d in data] if isinstance(data, list) else []


def is_resource(r: Any) -> bool:
    """A resource as the models accept one: an object with text `type` and `id`, and object
    `attributes` and `relationships` where present (other members allowed)."""
    return (
        isinstance(r, dict)
        and isinstance(r.get("type"), str)
        and isinstance(r.get("id"), str)
        and isinstance(r.get("attributes", {}), dict)
        and isinstance(r.get("relationships"), dict | None)
    )
