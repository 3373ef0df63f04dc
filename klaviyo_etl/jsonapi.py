"""What the rows read from a JSON:API resource's relationships, as plain functions.

Both readers of a resource share them: the models (`klaviyo_etl.models.Resource`) and the
sync's lean one that needs no pydantic (`klaviyo_etl.sync.parsing.RawResource`).
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
