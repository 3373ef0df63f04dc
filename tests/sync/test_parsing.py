"""Parsing a page into rows: plain pages straight from orjson, other shapes through the models."""

from __future__ import annotations

import orjson
import pytest

from klaviyo_etl.db.repositories import resource_rows
from klaviyo_etl.models import Page
from klaviyo_etl.sandbox.api import Api
from klaviyo_etl.sandbox.config import SandboxConfig
from klaviyo_etl.sandbox.data import SandboxData
from klaviyo_etl.sandbox.wire import Request
from klaviyo_etl.sync.parsing import RawResource, parse_rows, plain_page


@pytest.fixture(scope="module")
def api() -> Api:
    return Api(SandboxData.generate(SandboxConfig(events=400, profiles=60)))


def _body(api: Api, path: str, query: dict[str, list[str]]) -> bytes:
    status, payload = api.handle(Request("GET", path, query, b"", "http://sandbox"))
    assert status == 200
    return orjson.dumps(payload)


def _without_stamp(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {t: [{k: v for k, v in r.items() if k != "synced_at"} for r in rs] for t, rs in rows.items()}


@pytest.mark.parametrize(
    "path, query, field",
    [
        ("/api/events", {"page[size]": ["200"], "sort": ["datetime"]}, "datetime"),
        ("/api/profiles", {"additional-fields[profile]": ["subscriptions"]}, "updated"),
    ],
)
def test_a_plain_page_gives_the_rows_the_models_give(api, path, query, field):
    body = _body(api, path, query)
    page = Page.parse_json(body)
    parsed = parse_rows(body, field)
    assert _without_stamp(parsed.rows) == _without_stamp(resource_rows(page.data))
    assert parsed.count == len(page.data) > 0
    assert parsed.last == page.data[-1].attributes.get(field)
    assert parsed.links.next == page.links.next
    resources, nxt = plain_page(orjson.loads(body))
    assert all(isinstance(r, RawResource) for r in resources) and nxt == page.links.next


def test_a_single_resource_page_goes_through_the_models():
    body = orjson.dumps({"data": {"type": "metric", "id": "m1", "attributes": {"name": "Opened Email"}}})
    assert plain_page(orjson.loads(body)) is None
    parsed = parse_rows(body, "updated")
    assert parsed.count == 1 and parsed.rows["metrics"][0]["name"] == "Opened Email"


@pytest.mark.parametrize(
    "data",
    [
        [{"type": "event", "attributes": {}}],  # no id
        [{"type": "event", "id": "e1", "attributes": None}],
        ["not a resource"],
    ],
)
def test_a_malformed_page_is_still_rejected(data):
    body = orjson.dumps({"data": data, "links": {"next": None}})
    with pytest.raises(ValueError):
        parse_rows(body, "datetime")
