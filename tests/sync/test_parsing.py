"""Parsing a page into rows: plain pages straight from orjson, other shapes through the models.

Events and profiles take the lean path (`batch_page`: value tuples, no dict per row); every
test of it compares what it stores, column by column, with the general path's rows."""

from __future__ import annotations

import gc
import math
import threading
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from klaviyo_etl.db import open_database
from klaviyo_etl.db.repositories import (
    Batch,
    Repository,
    event_batch,
    profile_batch,
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


def _without_stamp(rows: dict[str, list[dict] | Batch]) -> dict[str, list[dict]]:
    """Each table's rows as the writer binds them (a column some rows lack is None in
    them), as dicts without `synced_at`."""
    out = {}
    for table, table_rows in rows.items():
        if isinstance(table_rows, Batch):
            columns, values = table_rows.columns, table_rows.values
        else:
            columns, values = row_values(table_rows) if table_rows else ((), [])
        out[table] = [{c: v for c, v in zip(columns, row, strict=True) if c != "synced_at"} for row in values]
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
        fast = batch_page(orjson.loads(body), field)
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
    batch = event_batch(data, "now")
    assert batch is not None
    resources = plain_page({"data": data})[0]  # type: ignore[index]
    general = resource_rows(resources)["events"]
    assert [r[6] for r in batch.values] == [r["value"] for r in general] == [None, None, None, 1.5]
    assert batch.warnings == unreadable_values(resources) == 3  # type: ignore[arg-type]


def test_sandbox_event_pages_store_the_same_both_ways(api, tmp_path):
    bodies = _pages(api, "/api/events", {"page[size]": ["150"], "sort": ["datetime"]})
    assert len(bodies) > 1
    stored = _both_ways(tmp_path, bodies, "datetime")
    assert len(stored["events"]) == 400


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
    assert batch_page(doc, "datetime") is None
    body = orjson.dumps(doc)
    try:
        expected = resource_page(orjson.loads(body), "datetime")
    except ValueError:
        with pytest.raises(ValueError):
            parse_rows(body, "datetime")
        return
    parsed = parse_rows(body, "datetime")
    assert _without_stamp(parsed.rows) == _without_stamp(expected.rows)
    assert (parsed.count, parsed.last, parsed.links.next, parsed.warnings) == (
        expected.count,
        expected.last,
        expected.links.next,
        expected.warnings,
    )
    assert _stored(tmp_path, "parsed", [parsed]) == _stored(tmp_path, "general", [expected])


@pytest.mark.parametrize(
    "data",
    [
        [_event("1"), {"type": "event", "id": "e2", "attributes": []}],
        [_event("1"), {"type": "event", "id": "e2", "relationships": ["metric"]}],
        [_event("1"), "not a resource"],
    ],
)
def test_a_malformed_event_page_is_rejected_as_before(data):
    assert event_batch(data, "now") is None
    with pytest.raises(ValueError):
        parse_rows(orjson.dumps({"data": data}), "datetime")


def test_a_malformed_profile_page_is_left_to_the_general_path():
    assert profile_batch([_profile(1), {"type": "profile", "id": "p2", "attributes": None}], "now") is None


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
