"""The oldest row's request and its lean read: no server, no database."""

from __future__ import annotations

import json

import pytest

from klaviyo_etl.models import Page
from klaviyo_etl.sync.first_row import FIRST_ROW_PATHS, first_attributes
from klaviyo_etl.sync.streams import WindowedStream, build_streams


def test_the_engine_knows_every_windowed_stream_by_the_path_it_reads():
    windowed = {s.name: s.endpoint.path for s in build_streams().values() if isinstance(s, WindowedStream)}
    assert FIRST_ROW_PATHS == windowed


@pytest.mark.parametrize(
    "doc,first",
    [
        (
            {
                "data": [
                    {"type": "event", "id": "e1", "attributes": {"datetime": "2026-05-01T00:00:00+00:00"}}
                ]
            },
            0,
        ),
        ({"data": {"type": "event", "id": "e1", "attributes": {"datetime": "x"}, "relationships": {}}}, 0),
        ({"data": [{"type": "event", "id": "e1"}], "links": {"next": None}, "meta": {}}, 0),
        ({"data": []}, None),
    ],
)
def test_the_first_resources_attributes_are_those_the_models_read(doc, first):
    page = Page.parse(doc)
    expected = page.data[first].attributes if first is not None else None
    assert first_attributes(json.dumps(doc).encode()) == expected


@pytest.mark.parametrize(
    "doc",
    [
        {"errors": []},
        {"data": None},
        {"data": "event"},
        {"data": [{"id": "e1", "attributes": {}}]},
        {"data": [{"type": "event", "id": 1, "attributes": {}}]},
        {"data": [{"type": "event", "id": "e1", "attributes": []}]},
        {"data": [{"type": "event", "id": "e1", "relationships": []}]},
        {"data": [{"type": "event", "id": "e1"}, "e2"]},
        [],
    ],
)
def test_a_body_the_models_reject_is_rejected_as_they_reject_it(doc):
    body = json.dumps(doc).encode()
    with pytest.raises(ValueError):
        Page.parse_json(body)
    with pytest.raises(ValueError):
        first_attributes(body)


def test_a_body_cut_short_is_rejected():
    with pytest.raises(ValueError):
        first_attributes(b'{"data": [{"type": "event"')
