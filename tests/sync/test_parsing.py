"""Parsing a page into rows: events and profiles with msgspec, others from orjson or the models.

Events and profiles take the lean path (`batch_page`: msgspec Structs into value tuples, no
dict per row); every test of it compares what it stores, column by column, with the general
path's rows. The lean path stores `attributes` as the JSON text sent, the general path as
orjson writes it again: the same text for the compact JSON orjson (and the sandbox) write,
which is what most tests send; the tests of other text say so and compare it as JSON."""

from __future__ import annotations

import gc
import json
import math
import threading
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from klaviyo_etl.db import open_database
from klaviyo_etl.db.repositories import (
    Batch,
    Repository,
    resource_rows,
    row_values,
    unreadable_values,
)
from klaviyo_etl.models import Page
from klaviyo_etl.sandbox.api import Api
from klaviyo_etl.sandbox.config import SandboxConfig
from klaviyo_etl.sandbox.data import SandboxData
from klaviyo_etl.sandbox.wire import Request
from klaviyo_etl.sync.parsing import (
    ParsedPage,
    RawResource,
    batch_page,
    gc_paused,
    parse_rows,
    plain_page,
    resource_page,
)


@pytest.fixture(scope="module")
def api() -> Api:
    return Api(SandboxData.generate(SandboxConfig(events=400, profiles=60)))


def _body(api: Api, path: str, query: dict[str, list[str]]) -> bytes:
    status, payload = api.handle(Request("GET", path, query, b"", "http://sandbox"))
    assert status == 200
    return orjson.dumps(payload)


def _bound(value):
    """A value as SQLite stores it: NaN (the lean path's `NULL`) is NULL."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _without_stamp(rows: dict[str, list[dict] | Batch]) -> dict[str, list[dict]]:
    """Each table's rows as the writer binds them (a column some rows lack is None in
    them, as is a NaN), as dicts without `synced_at`."""
    out = {}
    for table, table_rows in rows.items():
        if isinstance(table_rows, Batch):
            columns, values = table_rows.columns, table_rows.values
        else:
            columns, values = row_values(table_rows) if table_rows else ((), [])
        out[table] = [
            {c: _bound(v) for c, v in zip(columns, row, strict=True) if c != "synced_at"} for row in values
        ]
    return out


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


# -- the lean path stores what the general path stores -------------------------------------


def _pages(api: Api, path: str, query: dict[str, list[str]]) -> list[bytes]:
    """Every page of a sandbox collection, following the next links."""
    bodies = []
    while True:
        status, payload = api.handle(Request("GET", path, query, b"", "http://sandbox"))
        assert status == 200
        bodies.append(orjson.dumps(payload))
        nxt = (payload.get("links") or {}).get("next")
        if not nxt:
            return bodies
        split = urlsplit(nxt)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)


def _stored(tmp_path, name: str, pages: list[ParsedPage]) -> dict[str, list[dict]]:
    """Every column of every row the pages leave in a fresh database, one transaction each
    (`synced_at` checked for being set, then left out: it is the clock's)."""
    db = open_database(tmp_path / f"{name}.db")
    repo = Repository(db)
    for page in pages:
        with db.atomic():
            repo.write_rows(page.rows)
    out = {}
    for table in ("events", "profiles", "metrics"):
        rows = [dict(r) for r in db.query(f"SELECT * FROM [{table}] ORDER BY id")]
        assert all(r["synced_at"] for r in rows)
        out[table] = [{k: v for k, v in r.items() if k != "synced_at"} for r in rows]
    db.close()
    return out


def _both_ways(tmp_path, bodies: list[bytes], field: str) -> dict[str, list[dict]]:
    """Parse `bodies` the lean way and the general way, check the pages agree, store both,
    and check every stored column of every row is the same; the stored rows."""
    lean, general = [], []
    for body in bodies:
        fast = batch_page(body, field)
        assert fast is not None, "the page did not take the lean path"
        slow = resource_page(orjson.loads(body), field)
        assert (fast.count, fast.last, fast.links.next, fast.warnings) == (
            slow.count,
            slow.last,
            slow.links.next,
            slow.warnings,
        )
        assert _without_stamp(fast.rows) == _without_stamp(slow.rows)
        assert parse_rows(body, field).rows.keys() == fast.rows.keys()
        lean.append(fast)
        general.append(slow)
    stored = _stored(tmp_path, "lean", lean)
    assert stored == _stored(tmp_path, "general", general)
    return stored


def _event(i: str, props=None, *, rels="both", **attributes) -> dict:
    relationships = {
        "both": {
            "metric": {"data": {"type": "metric", "id": "m1"}},
            "profile": {"data": {"type": "profile", "id": f"p{i}"}},
        },
        "metric": {"metric": {"data": {"type": "metric", "id": "m1"}}},
        "null profile": {"metric": {"data": {"type": "metric", "id": "m1"}}, "profile": {"data": None}},
        "empty": {},
        "none": None,
        "missing": None,
    }[rels]
    attrs = {"datetime": f"2026-05-01T10:00:{int(i) % 60:02d}+00:00", "timestamp": 1777629600, **attributes}
    if props is not None:
        attrs["event_properties"] = props
    resource = {"type": "event", "id": f"e{i}", "attributes": attrs}
    if rels != "missing":
        resource["relationships"] = relationships
    return resource


ODD_VALUES = [
    12.5,
    3,
    0,
    -4.25,
    2**63 - 1,
    1e300,
    "12.50",
    " 7 ",
    "n/a",
    "",
    "nan",
    "inf",
    "1e999",
    True,
    False,
    None,
    {"amount": 1},
    [1, 2],
]


def test_events_with_odd_values_and_relationships_store_the_same_both_ways(tmp_path):
    data = [
        _event(str(i), {"$value": v, "$message": f"m{i}", "form_id": "f"}) for i, v in enumerate(ODD_VALUES)
    ]
    n = len(data)
    data += [
        _event(str(n), {"$flow": "fl", "$attributed_flow": "af", "$attributed_message": "am"}),
        _event(str(n + 1), {}),  # no $value at all
        _event(str(n + 2)),  # no event_properties
        _event(str(n + 3), None, event_properties=None),
        _event(str(n + 4), {"$value": 5}, rels="metric"),  # no profile relationship
        _event(str(n + 5), {"$value": 5}, rels="null profile"),
        _event(str(n + 6), {"$value": 5}, rels="empty"),
        _event(str(n + 7), {"$value": 5}, rels="none"),
        _event(str(n + 8), {"$value": 5}, rels="missing"),
        _event(str(n + 9), {"$value": "9"}, uuid="u-1", extra={"nested": [1, {"a": None}]}),
        {"type": "event", "id": f"e{n + 10}"},  # no attributes
    ]
    body = orjson.dumps({"data": data, "links": {"self": "x", "next": "http://sandbox/api/events?page=2"}})
    stored = _both_ways(tmp_path, [body], "datetime")
    assert len(stored["events"]) == len(data)
    page = parse_rows(body, "datetime")
    # unreadable: "n/a", "nan", "inf", "1e999", True, False, {..}, [..]; "" and None are no value
    assert page.warnings == 8
    assert page.last is None  # the last event has no attributes


def test_nan_and_infinite_values_read_as_no_value_and_warn_both_ways():
    # JSON has no NaN, but a float that is not finite must not reach the column either way.
    data = [_event(str(i), {"$value": v}) for i, v in enumerate([math.nan, math.inf, -math.inf, 1.5])]
    resources = plain_page({"data": data})[0]  # type: ignore[index]
    general = resource_rows(resources)["events"]
    assert [r["value"] for r in general] == [None, None, None, 1.5]
    assert unreadable_values(resources) == 3  # type: ignore[arg-type]
    # The lean path reads JSON text, where such a number can only be spelled out of range:
    # the page is refused both ways, as orjson always refused it; as text it is unreadable.
    body = orjson.dumps({"data": [_event("1", {"$value": 1.5})]}).replace(b"1.5", b"1e999")
    assert batch_page(body, "datetime") is None
    with pytest.raises(orjson.JSONDecodeError):
        parse_rows(body, "datetime")
    page = parse_rows(
        orjson.dumps(
            {"data": [_event(str(i), {"$value": v}) for i, v in enumerate(["nan", "inf", "-inf", "1e999"])]}
        ),
        "datetime",
    )
    assert [r[6] for r in page.rows["events"].values] == [None] * 4 and page.warnings == 4  # type: ignore[union-attr]


def test_sandbox_event_pages_store_the_same_both_ways(api, tmp_path):
    bodies = _pages(api, "/api/events", {"page[size]": ["150"], "sort": ["datetime"]})
    assert len(bodies) > 1
    stored = _both_ways(tmp_path, bodies, "datetime")
    assert len(stored["events"]) == 400


def _assert_the_same_page(tmp_path, parsed, expected) -> None:
    """`parsed` holds and stores what the general path (`expected`) does."""
    assert _without_stamp(parsed.rows) == _without_stamp(expected.rows)
    assert (parsed.count, parsed.last, parsed.links.next, parsed.warnings) == (
        expected.count,
        expected.last,
        expected.links.next,
        expected.warnings,
    )
    assert _stored(tmp_path, "parsed", [parsed]) == _stored(tmp_path, "general", [expected])


@pytest.mark.parametrize("fields", [None, "subscriptions", "subscriptions,predictive_analytics"])
def test_sandbox_profile_pages_store_the_same_both_ways(api, tmp_path, fields):
    query = {"page[size]": ["25"], "sort": ["updated"]}
    if fields:
        query["additional-fields[profile]"] = [fields]
    bodies = _pages(api, "/api/profiles", query)
    assert len(bodies) > 1
    stored = _both_ways(tmp_path, bodies, "updated")
    assert len(stored["profiles"]) == 60
    consent = [r["email_consent"] for r in stored["profiles"]]
    clv = [r["predicted_clv"] for r in stored["profiles"]]
    assert any(consent) == bool(fields)
    assert any(v is not None for v in clv) == ("predictive" in (fields or ""))


def _profile(i: int, **attributes) -> dict:
    return {
        "type": "profile",
        "id": f"p{i}",
        "attributes": {"email": f"p{i}@example.com", "updated": f"2026-05-0{i % 9 + 1}", **attributes},
        "relationships": {"lists": {"links": {}}},
    }


def test_profiles_with_and_without_subscriptions_and_predictions_store_the_same_both_ways(tmp_path):
    subs = {"email": {"marketing": {"consent": "SUBSCRIBED"}}, "sms": {"marketing": {"consent": "NEVER"}}}
    first = [
        _profile(1, subscriptions=subs, location={"city": "Oslo", "country": "NO"}),
        _profile(2, subscriptions={"email": None}, predictive_analytics={"predicted_clv": 3.5}),
        _profile(3, location=None, predictive_analytics=None),
        _profile(4),
    ]
    # The same profiles again, now without the extra fields (and one with them first on
    # the page, one without): columns a page does not write keep what is stored.
    second = [
        _profile(4, subscriptions=subs, predictive_analytics={"churn_probability": 0.25}),
        _profile(1, first_name="Ada"),
        _profile(2, subscriptions=subs),
        _profile(5, phone_number="+4712345678"),
    ]
    bodies = [orjson.dumps({"data": page, "links": {"next": None}}) for page in (first, second, first[3:])]
    stored = {r["id"]: r for r in _both_ways(tmp_path, bodies, "updated")["profiles"]}
    # A page writes the consent (predictive) columns of all its profiles if one has them,
    # and leaves them alone if none has: the last page (p4 alone) keeps p4's.
    assert (stored["p4"]["email_consent"], stored["p4"]["churn_probability"]) == ("SUBSCRIBED", 0.25)
    assert (stored["p1"]["email_consent"], stored["p1"]["first_name"]) == (None, "Ada")
    assert (stored["p2"]["sms_consent"], stored["p2"]["predicted_clv"]) == ("NEVER", None)
    assert stored["p1"]["city"] is None and stored["p5"]["phone_number"] == "+4712345678"


def test_pages_with_more_than_the_rows_read_take_the_lean_path_and_store_the_same(tmp_path):
    # `included`, `meta`, a resource's own links, `type` after the other members, unicode and
    # escapes in the values read, ids and relationship ids that are not text: all read straight.
    events = [
        {
            "id": 'e"1\\',
            "attributes": {"datetime": "2026-05-01T10:00:00+00:00", "uuid": "ü-1"},
            "type": "event",
        },
        _event("2", {"$value": "12,50 €", "$message": "caf\u00e9 \u2603 \U0001f600", "form_id": 12}),
        _event("3", {"$value": 2**63 - 1, "$flow": -(2**63)}, timestamp=-(2**63)),
        {**_event("4", {"$value": 0.1}), "links": {"self": "http://sandbox/api/events/e4/"}},
        _event("5", {"$value": -0.0}, rels="both")
        | {"relationships": {"metric": {"data": {"type": "metric", "id": 7}}}},
    ]
    body = orjson.dumps(
        {
            "data": events,
            "included": [{"type": "metric", "id": "m1", "attributes": {"name": "Placed Order"}}],
            "meta": {"count": 5},
            "links": {"self": "s", "next": None, "prev": "p"},
        }
    )
    stored = _both_ways(tmp_path, [body], "uuid")
    assert [r["id"] for r in stored["events"]] == ['e"1\\', "e2", "e3", "e4", "e5"]
    assert stored["events"][1]["message_id"] == "caf\u00e9 \u2603 \U0001f600"
    assert (stored["events"][1]["form_id"], stored["events"][4]["metric_id"]) == ("12", "7")  # TEXT columns
    assert batch_page(body, "uuid").last is None  # type: ignore[union-attr]  # any field, as the general path reads it
    profiles = [
        _profile(1, first_name="Zoë", location={"city": "Zürich", "latitude": 47.37}, subscriptions={}),
        {
            **_profile(2, predictive_analytics={"predicted_clv": 10, "churn_probability": 0}),
            "links": {"self": "x"},
        },
    ]
    body = orjson.dumps(
        {"data": profiles, "included": [], "links": {"next": "http://sandbox/api/profiles?page=2"}}
    )
    stored = _both_ways(tmp_path / "p", [body], "email")
    assert [(r["first_name"], r["city"]) for r in stored["profiles"]] == [("Zoë", "Zürich"), (None, None)]
    assert batch_page(body, "email").last == "p2@example.com"  # type: ignore[union-attr]


def _attributes_text(stored: dict[str, list[dict]], table: str) -> list[str]:
    return [r.pop("attributes") for r in stored[table]]


@pytest.mark.parametrize("kind", ["event", "profile"])
def test_the_lean_path_stores_attributes_as_sent(tmp_path, kind):
    # Text orjson writes otherwise: spacing, escapes, number spellings, an integer beyond 64
    # bits (orjson reads it as a float). The lean path stores it as sent, the general path as
    # orjson writes it again: the same JSON, and every other column the same.
    field = "datetime" if kind == "event" else "updated"
    texts = [
        '{ "FIELD" : "2026-05-01T10:00:00+00:00",\n  "event_properties": {"$value": 1E2, "$message": "caf\\u00e9"} }',
        '{"FIELD":"2026-05-01T10:00:01+00:00","note":"a \\"quote\\", a \\\\ and a \\/ slash","n":1.50,"z":-0}',
        '{"FIELD":"2026-05-01T10:00:02+00:00","event_properties":{"$value":"7"},"big":123456789012345678901234567890}',
        '{"FIELD":"2026-05-01T10:00:03+00:00","name":"Zoë \\ud83d\\ude00 \u2603","email":"\\u0061@x.io"}',
    ]
    texts = [t.replace("FIELD", field) for t in texts]
    resources = ",\n".join(
        f'{{"type": "{kind}", "id": "r{i}", "attributes": {t}}}' for i, t in enumerate(texts)
    )
    body = f'{{"data": [{resources}], "links": {{"next": null}}}}'.encode()
    lean = parse_rows(body, field)
    table = kind + "s"
    assert isinstance(lean.rows[table], Batch)  # the lean path
    general = resource_page(orjson.loads(body), field)
    assert (lean.count, lean.last, lean.warnings) == (general.count, general.last, general.warnings)
    stored = _stored(tmp_path, "lean", [lean])
    expected = _stored(tmp_path, "general", [general])
    as_sent, rewritten = _attributes_text(stored, table), _attributes_text(expected, table)
    assert as_sent == texts
    assert rewritten == [orjson.dumps(orjson.loads(t)).decode() for t in texts] != as_sent
    assert [orjson.loads(t) for t in as_sent] == [orjson.loads(t) for t in rewritten]
    assert stored == expected


def _plain_event(**attributes) -> dict:
    return {"type": "event", "id": "e1", "attributes": attributes}


@pytest.mark.parametrize(
    "body",
    [
        # A value of a JSON type the Structs do not take, which the general path reads.
        {"data": [_event("1", []), _event("2", {"$value": 1})]},  # event_properties: falsy, not an object
        {"data": [_event("1", False)]},
        {"data": [_event("1", 0)]},
        {"data": [_event("1", "")]},
        {"data": [_event("1", {"$value": 2**64 + 5})]},  # an integer orjson reads as a float
        {"data": [_event("1", {"$value": -(2**63) - 1})]},
        {"data": [_event("1", {"$value": 1}, timestamp=2**64 + 5)]},
        {"data": [_event("1") | {"relationships": {"metric": {"data": [{"type": "metric", "id": "m1"}]}}}]},
        {"data": [_event("1") | {"relationships": {"metric": False, "profile": []}}]},
        {"data": [_event("1")], "links": []},  # read as no links by the general path
        {"data": [_profile(1, location=[])]},
        {"data": [_profile(1, subscriptions=False), _profile(2, predictive_analytics=0)]},
        {"data": [_profile(1, subscriptions={"email": [], "sms": {"marketing": False}})]},
        {"data": [_profile(1, predictive_analytics={"predicted_clv": 2**64 + 1})]},
    ],
)
def test_pages_msgspec_does_not_read_take_the_general_path_and_store_the_same(body, tmp_path):
    raw = json.dumps(body).encode()  # orjson does not write integers beyond 64 bits
    assert batch_page(raw, "datetime") is None
    parsed = parse_rows(raw, "datetime")
    expected = resource_page(orjson.loads(raw), "datetime")
    _assert_the_same_page(tmp_path, parsed, expected)


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [{"type": "event", "id": "e1", "attributes": {"note": "\xff"}}]}',  # not UTF-8
        b'{"data": [{"type": "event", "id": "e1", "attributes": {}}], "links": {"self": "\xc3("}}',
        b'{"data": [{"type": "event", "id": "e1", "attributes": {}}], "meta": '
        + b"[" * 1100
        + b"]" * 1100
        + b"}",
        b'{"data": [{"type": "event", "id": "e1", "attributes": {"n": 1e999}}]}',  # beyond a double
        b'{"data": [{"type": "event", "id": "e1", "attributes": {"event_properties": {"$value": 1'
        + b"0" * 400
        + b"}}}]}",
    ],
)
def test_json_orjson_refuses_is_refused_as_before(body):
    assert batch_page(body, "datetime") is None
    with pytest.raises(orjson.JSONDecodeError):
        parse_rows(body, "datetime")


@pytest.mark.parametrize(
    "doc",
    [
        {"data": []},  # nothing to batch
        {"data": {"type": "event", "id": "e1", "attributes": {}}},  # a single resource
        {"data": [{"type": "metric", "id": "m1", "attributes": {"name": "Placed Order"}}]},
        {"data": [_event("1", {"$value": 1}), {"type": "metric", "id": "m1", "attributes": {}}]},
        {"data": [_event("1", {"$value": 1}), _profile(1)]},
        {"data": [_event("1", {"$value": 1})], "links": {"next": 7}},
        {"data": [_event("1", {"$value": 1})], "links": ["next"]},
        {"data": [_profile(1), {"type": "profile", "id": 2, "attributes": {}}]},
        {"data": [{"type": ["event"], "id": "e1"}]},
    ],
)
def test_other_pages_take_the_general_path_and_store_the_same(doc, tmp_path):
    body = orjson.dumps(doc)
    assert batch_page(body, "datetime") is None
    try:
        expected = resource_page(orjson.loads(body), "datetime")
    except ValueError:
        with pytest.raises(ValueError):
            parse_rows(body, "datetime")
        return
    parsed = parse_rows(body, "datetime")
    _assert_the_same_page(tmp_path, parsed, expected)


@pytest.mark.parametrize(
    "data",
    [
        [_event("1"), {"type": "event", "id": "e2", "attributes": []}],
        [_event("1"), {"type": "event", "id": "e2", "relationships": ["metric"]}],
        [_event("1"), "not a resource"],
    ],
)
def test_a_malformed_event_page_is_rejected_as_before(data):
    body = orjson.dumps({"data": data})
    assert batch_page(body, "datetime") is None
    with pytest.raises(ValueError):
        parse_rows(body, "datetime")


def test_a_malformed_profile_page_is_left_to_the_general_path():
    body = orjson.dumps({"data": [_profile(1), {"type": "profile", "id": "p2", "attributes": None}]})
    assert batch_page(body, "updated") is None
    with pytest.raises(ValueError):
        parse_rows(body, "updated")


def test_a_parse_pauses_the_collector_and_turns_it_back_on():
    seen = []
    body = orjson.dumps({"data": [_event("1", {"$value": 1})]})
    assert gc.isenabled()
    with gc_paused():
        seen.append(gc.isenabled())
    parse_rows(body, "datetime")
    assert seen == [False] and gc.isenabled()
    # Overlapping pauses from two threads leave it on; a collector already off stays off.
    inner = threading.Event()
    done = threading.Event()

    def other() -> None:
        with gc_paused():
            inner.set()
            done.wait(5)

    with gc_paused():
        thread = threading.Thread(target=other)
        thread.start()
        inner.wait(5)
    assert gc.isenabled()  # the first to pause turns it on (the other parse runs with it)
    done.set()
    thread.join()
    assert gc.isenabled()
    gc.disable()
    try:
        parse_rows(body, "datetime")
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-06-23T00:15:23+00:00", "2026-06-23T00:15:23+00:00"),
        # Klaviyo's other shape (LIVE_BEHAVIOUR.md §9): Python's str() of the time
        ("2026-06-23 00:15:23.918411+00:00", "2026-06-23T00:15:23.918411+00:00"),
        ("2026-06-23 00:15:23+00:00", "2026-06-23T00:15:23+00:00"),
        ("2026-06-23T00:15:23Z", "2026-06-23T00:15:23+00:00"),
        ("2026-06-23T02:15:23+02:00", "2026-06-23T00:15:23+00:00"),
        ("2026-06-23 00:15:23", "2026-06-23T00:15:23+00:00"),  # no zone: UTC
        ("not a time", "not a time"),  # kept as sent
        (None, None),
    ],
)
def test_an_events_datetime_is_stored_in_one_shape_both_ways(tmp_path, sent, stored):
    """The reports compare `datetime` as text and take its hour as `substr(datetime, 1, 13)`:
    a space-separated one fell out of every range bounded within a day, and of every hour."""
    body = orjson.dumps({"data": [_event("1", {}, datetime=sent)], "links": {"next": None}})
    rows = _both_ways(tmp_path, [body], "datetime")["events"]
    assert [r["datetime"] for r in rows] == [stored]
    assert parse_rows(body, "datetime").last == sent  # the window's progress reads it as sent
