"""Pydantic models of Klaviyo's JSON:API envelopes: the typed boundary between HTTP and streams."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from klaviyo_etl import jsonapi


class Resource(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    id: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    relationships: dict[str, Any] | None = None

    def related_id(self, name: str) -> str | None:
        """The id of a to-one relationship (`relationships.<name>.data.id`), if present."""
        return jsonapi.related_id(self.relationships, name)

    def related_ids(self, name: str) -> list[str]:
        return jsonapi.related_ids(self.relationships, name)


class Links(BaseModel):
    model_config = ConfigDict(extra="allow")

    self: str | None = None
    next: str | None = None
    prev: str | None = None


class Page(BaseModel):
    """One page of a collection. `data` may be a single resource on id routes."""

    model_config = ConfigDict(extra="allow")

    data: list[Resource]
    included: list[Resource] = Field(default_factory=list)
    links: Links = Field(default_factory=Links)

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Page:
        return cls.model_validate(body)

    @classmethod
    def parse_json(cls, body: bytes) -> Page:
        # orjson.loads + model_validate measured ~2x faster than model_validate_json on
        # 1,000-event pages: attributes are free-form dicts either way.
        return cls.model_validate(orjson.loads(body))
