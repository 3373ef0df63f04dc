"""Klaviyo's API semantics over `SandboxData`, independent of the HTTP transport.

`Api.handle` takes a parsed request and returns (status, JSON body). It validates query
parameters against the vendored contract (filters, sort, page sizes, sparse fieldsets,
includes), paginates with opaque keyset cursors and renders JSON:API documents. Auth,
revisions, rate limits and faults live in `server.py`, which wraps this.

The server sends `Api.respond`'s bytes: JSON-equal to `handle`'s document, but the events
and profiles pages, which a first load reads in full, are written from templates
(`Renderer.event_json`, `Renderer.profile_json`) rather than built as dicts and encoded: ~5
us of CPU per served event instead of ~25, ~6 per profile instead of ~13.

A windowed sync asks for each window's rows by a datetime range on the field it sorts by
(`updated`); such a query is cut by bisection from the whole collection sorted once per data
version (`SortedIndex`), instead of comparing every record's timestamp for each new window.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from klaviyo_etl import conventions as kc
from klaviyo_etl.endpoints import Endpoint, contract
from klaviyo_etl.sandbox import catalog
from klaviyo_etl.sandbox.data import SandboxData
from klaviyo_etl.sandbox.filters import FilterError, Term, as_epoch, matches, parse_filter, validate
from klaviyo_etl.sandbox.render import ACTION_TYPES, PropertiesText, Renderer, encode_json
from klaviyo_etl.sandbox.reporting_api import metric_aggregates, values_report
from klaviyo_etl.sandbox.wire import ApiError, Request, bad_request
from klaviyo_etl.timeutil import epoch_to_iso

DATETIME_FIELDS = {
    "created",
    "updated",
    "created_at",
    "updated_at",
    "scheduled_at",
    "send_time",
    "joined_group_at",
    "datetime",
}

# The incremental fields Klaviyo refuses a bound on that lies ahead of its clock, with a 400
# "End date may not be in the future" (LIVE_BEHAVIOUR.md §11).
NO_FUTURE_BOUND = {"datetime", "updated", "updated_at"}

# Collections that list only archived=false items unless the filter mentions `archived`
# (equals(archived,true) lists only the archived ones): LIVE_BEHAVIOUR.md §2.
HIDES_ARCHIVED = ("/api/campaigns", "/api/flows")
# The comparisons on a datetime field (`filters.matches`) that select a range of its values.
RANGE_OPS = ("greater-than", "greater-or-equal", "less-than", "less-or-equal", "equals")


@cache
def spec_parameters() -> dict[str, dict[str, list[str]]]:
    """Allowed values of enumerated query parameters per route, from the vendored spec."""
    text = resources.files("klaviyo_etl").joinpath("spec/schemas.json").read_text()
    return json.loads(text)["parameters"]


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern
    handler: Callable[..., dict]
    # Writes the handler's document as JSON itself, for the hot routes (see `Api.respond`).
    writer: Callable[..., bytes] | None = None


def _route(method: str, template: str, handler, writer=None) -> Route:
    pattern = re.compile("^" + re.sub(r"\{id\}", r"(?P<id>[^/]+)", template) + "/?$")
    return Route(method, template, pattern, handler, writer)


def encode_cursor(payload: dict) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> dict:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload = json.loads(raw)
        if not isinstance(payload, dict):
            raise ValueError
        return payload
    except (ValueError, TypeError) as exc:
        raise bad_request("Invalid page cursor.", parameter="page[cursor]") from exc


def _is_datetime(field: str) -> bool:
    """Whether filters compare `field` as a datetime (`filters.matches`' datetime_field)."""
    return field in DATETIME_FIELDS or field.endswith(".timestamp")


def _sorted(items: Iterable, sort_key: Callable) -> tuple[list, list]:
    """The sort keys and the items, in the order of the keys."""
    decorated = sorted(((sort_key(item), item) for item in items), key=lambda p: p[0])
    return [k for k, _ in decorated], [item for _, item in decorated]


class SortedIndex:
    """A whole collection in one sort order, and (once asked for) the sort field's values as
    epoch seconds, for cutting datetime ranges out of it with bisection."""

    def __init__(self, version: int, keys: list, ordered: list, value: Callable[[Any], Any]):
        self.version = version
        self.keys = keys  # (*_sort_value(value), seq) per item
        self.ordered = ordered
        self.value = value  # the sort field's value of an item
        self.first_dated = 0  # items before it have no value: no datetime comparison holds
        self._epochs: list[float] | None = None
        self._usable = True

    def epochs(self) -> list[float] | None:
        """The epochs of the items' values from `first_dated` on, or None where they are not
        in ascending order (or a value is not a datetime): then a range is not one slice."""
        if self._epochs is None and self._usable:
            keys = self.keys
            first = 0
            while first < len(keys) and keys[first][0] == 0:  # None sorts first
                first += 1
            try:
                value = self.value
                epochs = [as_epoch(value(item)) for item in self.ordered[first:]]
            except FilterError:
                epochs = None
            if epochs is None or any(a > b for a, b in itertools.pairwise(epochs)):
                self._usable = False
                return None
            self.first_dated, self._epochs = first, epochs
        return self._epochs


def _sort_value(value: Any) -> tuple:
    """Order None first and keep mixed types comparable."""
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (1, value)
    return (2, str(value))


class Api:
    def __init__(self, data: SandboxData):
        self.data = data
        self.contract = contract()
        self.routes = [
            _route("GET", "/api/accounts", self.get_accounts),
            _route("GET", "/api/metrics", self.list_resources),
            _route("GET", "/api/events", self.list_events, self.list_events_json),
            _route("GET", "/api/profiles", self.list_resources, self.list_resources_json),
            _route("GET", "/api/lists", self.list_resources),
            _route("GET", "/api/lists/{id}", self.get_group),
            _route("GET", "/api/lists/{id}/profiles", self.list_members),
            _route("GET", "/api/segments", self.list_resources),
            _route("GET", "/api/segments/{id}", self.get_group),
            _route("GET", "/api/segments/{id}/profiles", self.list_members),
            _route("GET", "/api/campaigns", self.list_resources),
            _route("GET", "/api/campaigns/{id}/campaign-messages", self.campaign_messages),
            _route("GET", "/api/flows", self.list_resources),
            _route("GET", "/api/flows/{id}/flow-actions", self.list_resources),
            _route("GET", "/api/flow-actions/{id}/flow-messages", self.list_resources),
            _route("GET", "/api/forms", self.list_resources),
            _route("GET", "/api/templates", self.list_resources),
            _route("GET", "/api/tags", self.list_resources),
            _route("GET", "/api/tag-groups", self.list_resources),
            _route("POST", "/api/campaign-values-reports", self.values_report),
            _route("POST", "/api/flow-values-reports", self.values_report),
            _route("POST", "/api/metric-aggregates", self.metric_aggregates),
        ]
        self._cache: OrderedDict[tuple, tuple[int, list, list]] = OrderedDict()
        self._indexes: dict[tuple, SortedIndex] = {}  # (template, scope, sort field) -> index
        self._properties = PropertiesText(data)

    # -- dispatch ------------------------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[Route, str | None]:
        """The route for a request, or ApiError 404/405."""
        allowed = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m:
                if route.method == method:
                    return route, m.groupdict().get("id")
                allowed = True
        if allowed:
            raise ApiError(
                405, "method_not_allowed", "Method not allowed.", f'Method "{method}" not allowed.'
            )
        raise ApiError(404, "not_found", "Not found.", f"No endpoint at {path}.")

    def handle(self, request: Request) -> tuple[int, dict]:
        route, resource_id = self.match(request.method, request.path)
        try:
            with self.data.lock:
                return 200, route.handler(request, route, resource_id)
        except FilterError as exc:
            raise bad_request(str(exc), parameter="filter") from exc

    def respond(self, request: Request) -> tuple[int, bytes]:
        """`handle`, with the document as JSON: what the server sends.

        A route with a `writer` (the events page) writes its JSON directly; the others'
        documents go through `encode_json`. Both are JSON-equal to `handle`'s document.
        """
        route, resource_id = self.match(request.method, request.path)
        try:
            with self.data.lock:
                if route.writer is not None:
                    return 200, route.writer(request, route, resource_id)
                return 200, encode_json(route.handler(request, route, resource_id))
        except FilterError as exc:
            raise bad_request(str(exc), parameter="filter") from exc

    # -- query parameters ----------------------------------------------------------------------

    def _check_params(self, request: Request, route: Route, endpoint: Endpoint | None) -> None:
        allowed = set(spec_parameters().get(f"{route.method} {route.template}", {}))
        if endpoint is not None:
            if endpoint.filter_fields:
                allowed.add("filter")
            if endpoint.sort_fields:
                allowed.add("sort")
            if endpoint.page_size_default is not None:
                allowed.add("page[cursor]")
            if endpoint.page_size_param:
                allowed.add(endpoint.page_size_param)
        for name, values in request.query.items():
            if name not in allowed:
                raise bad_request(
                    f"'{name}' is not a valid query parameter for this endpoint.", parameter=name
                )
            if len(values) > 1:
                raise bad_request(f"'{name}' was given more than once.", parameter=name)
            enum = spec_parameters().get(f"{route.method} {route.template}", {}).get(name)
            if enum and name != "sort":
                for item in values[0].split(","):
                    if item not in enum:
                        raise bad_request(f"'{item}' is not a valid value for {name}.", parameter=name)

    @staticmethod
    def _one(request: Request, name: str) -> str | None:
        values = request.query.get(name)
        return values[0] if values else None

    def _options(self, request: Request) -> tuple[dict, dict, set]:
        fields: dict[str, list[str]] = {}
        additional: dict[str, list[str]] = {}
        for name, values in request.query.items():
            if name.startswith("fields["):
                fields[name[7:-1]] = values[0].split(",")
            elif name.startswith("additional-fields["):
                additional[name[18:-1]] = values[0].split(",")
        include = set(self._one(request, "include").split(",")) if self._one(request, "include") else set()
        return fields, additional, include

    def _page_size(self, request: Request, endpoint: Endpoint) -> int:
        raw = self._one(request, "page[size]")
        if raw is None:
            return endpoint.page_size_default or 100
        try:
            size = int(raw)
        except ValueError as exc:
            raise bad_request("page[size] must be an integer.", parameter="page[size]") from exc
        if size < 1 or size > (endpoint.page_size_max or size):
            raise bad_request(
                f"page[size] must be between 1 and {endpoint.page_size_max}.", parameter="page[size]"
            )
        return size

    def _sort(self, request: Request, endpoint: Endpoint) -> tuple[str | None, bool]:
        raw = self._one(request, "sort")
        if raw is None:
            return None, False
        descending = raw.startswith("-")
        field = raw.lstrip("-")
        if field not in (endpoint.sort_fields or []):
            raise bad_request(f"'{raw}' is not a valid sort field.", parameter="sort")
        return field, descending

    def _terms(self, request: Request, endpoint: Endpoint) -> list[Term]:
        raw = self._one(request, "filter")
        if raw is None:
            return []
        terms = parse_filter(raw)
        validate(terms, endpoint.filter_fields)
        for term in terms:
            if term.field in DATETIME_FIELDS and term.op != "has":
                at = as_epoch(term.value)  # malformed datetimes are a 400, not an empty page
                if term.field in NO_FUTURE_BOUND and term.op in RANGE_OPS and at > self.data.clock():
                    shown = getattr(term.value, "text", term.value)
                    raise bad_request(f"End date may not be in the future: {shown}", pointer=term.field)
        return terms

    # -- links ---------------------------------------------------------------------------------

    @staticmethod
    def _link(request: Request, **overrides: str | None) -> str:
        query = {k: v[0] for k, v in request.query.items()}
        for key, value in overrides.items():
            name = key.replace("page_cursor", "page[cursor]")
            if value is None:
                query.pop(name, None)
            else:
                query[name] = value
        path = request.path if request.path.endswith("/") else request.path + "/"
        suffix = "?" + urlencode(query) if query else ""
        return f"{request.base_url}{path}{suffix}"

    # -- generic collections -----------------------------------------------------------------------

    def _records(self, template: str, scope: str | None) -> tuple[str, Callable[[], Iterable[dict]]]:
        """The resource type and its records, read only when `_ordered` has not cached the
        query (a copy of every profile per page cost ~2 ms at 20,000 profiles)."""
        data = self.data
        res = data.resources
        kind = {
            "/api/metrics": "metric",
            "/api/profiles": "profile",
            "/api/lists": "list",
            "/api/segments": "segment",
            "/api/campaigns": "campaign",
            "/api/flows": "flow",
            "/api/forms": "form",
            "/api/templates": "template",
            "/api/tags": "tag",
            "/api/tag-groups": "tag-group",
            "/api/flows/{id}/flow-actions": "flow-action",
            "/api/flow-actions/{id}/flow-messages": "flow-message",
        }[template]
        if template == "/api/flows/{id}/flow-actions":
            if scope not in res["flow"]:
                raise ApiError(404, "not_found", "Not found.", f"Flow {scope} does not exist.")
            return kind, lambda: data.flow_actions_of(scope)
        if template == "/api/flow-actions/{id}/flow-messages":
            if scope not in res["flow-action"]:
                raise ApiError(404, "not_found", "Not found.", f"Flow action {scope} does not exist.")
            return kind, lambda: data.flow_messages_of(scope)
        return kind, res[kind].values

    def _getter(self, kind: str, field: str) -> Callable[[dict], Any]:
        if field == "id":
            return lambda r: r["id"]
        if kind == "campaign" and field == "messages.channel":
            return lambda r: r["channel"]
        if kind == "metric" and field.startswith("integration."):
            key = field.split(".", 1)[1]
            return lambda r: (r["attributes"].get("integration") or {}).get(key)
        if kind == "flow-action" and field == "action_type":
            return lambda r: r["kind"]
        if kind == "flow-action" and field == "status":
            return lambda r: (r["attributes"]["definition"].get("data") or {}).get("status")
        if kind == "flow-message" and field == "name":
            return lambda r: r["attributes"]["definition"].get("name")
        if kind == "profile" and field.startswith("subscriptions."):
            return self._suppression_getter(field)
        if field == "_kx":
            return lambda r: None
        return lambda r: r["attributes"].get(field)

    @staticmethod
    def _suppression_getter(field: str) -> Callable[[dict], Any]:
        def get(record: dict) -> Any:
            if ".list_suppressions." in field:
                return None
            suppression = record["consent"]["suppression"]
            if not suppression:
                return None
            reason, ts = suppression[-1]
            return reason if field.endswith(".reason") else epoch_to_iso(ts)

        return get

    def _sort_key(self, kind: str, sort_field: str | None) -> Callable[[dict], tuple]:
        """A record's place in a collection sorted by `sort_field` (None: creation order)."""
        getter = self._getter(kind, sort_field) if sort_field else None

        def sort_key(record: dict) -> tuple:
            primary = _sort_value(getter(record)) if getter else (0, "")
            return (*primary, record["seq"])

        return sort_key

    def _predicate(self, kind: str, terms: list[Term]) -> Callable[[dict], bool]:
        checks = []
        for term in terms:
            getter = self._getter(kind, term.field)
            is_dt = _is_datetime(term.field)
            if kind == "flow-action" and term.field == "action_type":
                term = Term(term.op, term.field, _normalize_action_type(term.value))
            checks.append((term, getter, is_dt))

        def predicate(record: dict) -> bool:
            return all(matches(t, g(record), datetime_field=d) for t, g, d in checks)

        return predicate

    def _ordered(self, key: tuple, items: Callable[[], list], sort_key: Callable) -> tuple[list, list]:
        """Sorted keys and items for a query, cached until the data changes."""
        return self._cached(key, lambda: _sorted(items(), sort_key))

    def _cached(self, key: tuple, build: Callable[[], tuple[list, list]]) -> tuple[list, list]:
        """`build()`'s keys and items for a query, cached until the data changes."""
        cached = self._cache.get(key)
        if cached and cached[0] == self.data.version:
            self._cache.move_to_end(key)
            return cached[1], cached[2]
        keys, ordered = build()
        self._cache[key] = (self.data.version, keys, ordered)
        if len(self._cache) > 64:
            self._cache.popitem(last=False)
        return keys, ordered

    def _index(self, template: str, scope: str | None, sort_field: str) -> SortedIndex:
        """A collection sorted by `sort_field`, kept until the data changes."""
        key = (template, scope, sort_field)
        index = self._indexes.get(key)
        if index is None or index.version != self.data.version:
            if len(self._indexes) >= 16:
                self._indexes.clear()
            kind, records = self._records(template, scope)
            keys, ordered = _sorted(records(), self._sort_key(kind, sort_field))
            index = SortedIndex(self.data.version, keys, ordered, self._getter(kind, sort_field))
            self._indexes[key] = index
        return index

    def warm(self) -> None:
        """Build ahead the index a windowed profiles sync cuts its windows from (~0.1 s of
        CPU at 20,000 profiles), as a live account keeps its indexes: the sync's first
        requests then do not wait for it. The server's own process calls this before serving."""
        with self.data.lock:
            self._index("/api/profiles", None, "updated").epochs()

    def _in_range(
        self, template: str, scope: str | None, sort_field: str, terms: list[Term]
    ) -> tuple[list, list] | None:
        """The query's keys and items cut from the sorted collection, when every term is a
        datetime comparison on the sort field (a windowed sync's filter on `updated`), or
        None: the caller filters every record. The sorted collection and the sort field's
        epochs are kept per data version, so each new window costs two bisections instead
        of parsing every record's timestamp (~100 ms a window at 20,000 profiles)."""
        index = self._index(template, scope, sort_field)
        lo, hi = 0, len(index.keys)
        if terms:
            epochs = index.epochs()
            if epochs is None:
                return None
            lo = index.first_dated
            for term in terms:
                try:
                    bound = as_epoch(term.value)
                except FilterError:
                    return None  # the general path raises it where it would have
                op = term.op
                if op in ("greater-than", "less-or-equal"):
                    cut = bisect_right(epochs, bound)
                else:
                    cut = bisect_left(epochs, bound)
                cut += index.first_dated
                if op in ("greater-than", "greater-or-equal"):
                    lo = max(lo, cut)
                elif op in ("less-than", "less-or-equal"):
                    hi = min(hi, cut)
                else:  # equals
                    lo = max(lo, cut)
                    hi = min(hi, bisect_right(epochs, bound) + index.first_dated)
        if lo == 0 and hi == len(index.keys):
            return index.keys, index.ordered
        hi = max(lo, hi)
        return index.keys[lo:hi], index.ordered[lo:hi]

    def _page(
        self, request: Request, keys: list, items: list, size: int, descending: bool, sort_name: str
    ) -> tuple[list, str | None]:
        """One page after the keyset cursor, and the cursor of the page after it."""
        cursor_text = self._one(request, "page[cursor]")
        if cursor_text:
            cursor = decode_cursor(cursor_text)
            if cursor.get("s") != sort_name or "k" not in cursor:
                raise bad_request("Invalid page cursor.", parameter="page[cursor]")
            after = _to_key(cursor["k"])
            if descending:
                end = bisect_left(keys, after)
                page_idx = list(reversed(range(max(0, end - size), end)))
            else:
                start = bisect_right(keys, after)
                page_idx = list(range(start, min(len(keys), start + size)))
        elif descending:
            page_idx = list(reversed(range(max(0, len(keys) - size), len(keys))))
        else:
            page_idx = list(range(0, min(len(keys), size)))
        page = [items[i] for i in page_idx]
        if not page_idx:
            return page, None
        last = page_idx[-1]
        has_next = last > 0 if descending else last < len(keys) - 1
        next_cursor = encode_cursor({"s": sort_name, "k": list(keys[last])}) if has_next else None
        return page, next_cursor

    def _document(self, request: Request, renderer: Renderer, data: list, next_cursor: str | None) -> dict:
        doc: dict[str, Any] = {"data": data}
        links = {"self": self._link(request)}
        if next_cursor:
            links["next"] = self._link(request, page_cursor=next_cursor)
        doc["links"] = links
        if renderer.include:
            doc["included"] = [obj for obj in renderer.included.values() if obj]
        return doc

    def _document_json(
        self, request: Request, renderer: Renderer, data: list[str], next_cursor: str | None
    ) -> bytes:
        """`_document` as JSON, from resource objects already written as JSON text."""
        rest = self._document(request, renderer, [], next_cursor)
        del rest["data"]
        # '{"data":[...],' then the rest's members: its JSON without the opening brace. One
        # join makes the only page-sized buffer (each one more costs ~1 ms a page in faults).
        head, tail = b'{"data":[', b"]," + encode_json(rest)[1:]
        if not data:
            return head + tail
        chunks = [item.encode() for item in data]
        chunks[0] = head + chunks[0]
        chunks[-1] += tail
        return b",".join(chunks)

    def list_resources(self, request: Request, route: Route, scope: str | None) -> dict:
        renderer, kind, page, next_cursor = self._resources_page(request, route, scope)
        return self._document(request, renderer, [renderer.resource(kind, r) for r in page], next_cursor)

    def list_resources_json(self, request: Request, route: Route, scope: str | None) -> bytes:
        """`list_resources` as JSON, each resource written by `Renderer.resource_json`."""
        renderer, kind, page, next_cursor = self._resources_page(request, route, scope)
        items = [renderer.resource_json(kind, r) for r in page]
        return self._document_json(request, renderer, items, next_cursor)

    def _resources_page(
        self, request: Request, route: Route, scope: str | None
    ) -> tuple[Renderer, str, list[dict], str | None]:
        """The renderer, the resource type, the page's records and the next cursor."""
        endpoint = self.contract.by_path(route.template)
        self._check_params(request, route, endpoint)
        terms = self._terms(request, endpoint)
        if route.template == "/api/campaigns":
            channel = [t for t in terms if t.field == "messages.channel" and t.op == "equals"]
            if not channel or channel[0].value not in kc.CAMPAIGN_CHANNELS:
                raise bad_request(
                    "A channel filter is required: filter=equals(messages.channel,'email'), "
                    "'sms' or 'mobile_push'.",
                    parameter="filter",
                )
        if route.template in HIDES_ARCHIVED and not any(t.field == "archived" for t in terms):
            terms = [*terms, Term("equals", "archived", False)]
        sort_field, descending = self._sort(request, endpoint)
        size = self._page_size(request, endpoint)
        fields, additional, include = self._options(request)
        kind, records = self._records(route.template, scope)
        predicate = self._predicate(kind, terms)
        key = (route.template, scope, self._one(request, "filter"), sort_field)

        def query() -> tuple[list, list]:
            if (
                sort_field
                and _is_datetime(sort_field)
                and all(t.field == sort_field and t.op in RANGE_OPS for t in terms)
            ):
                found = self._in_range(route.template, scope, sort_field, terms)
                if found is not None:
                    return found
            return _sorted([r for r in records() if predicate(r)], self._sort_key(kind, sort_field))

        keys, ordered = self._cached(key, query)
        page, next_cursor = self._page(request, keys, ordered, size, descending, sort_field or "seq")
        renderer = Renderer(
            self.data,
            request.base_url,
            fields=fields,
            additional=additional,
            include=include,
            on_profiles=route.template == "/api/profiles",
        )
        return renderer, kind, page, next_cursor

    def list_members(self, request: Request, route: Route, scope: str | None) -> dict:
        kind = "list" if route.template.startswith("/api/lists") else "segment"
        if scope not in self.data.resources[kind]:
            raise ApiError(404, "not_found", "Not found.", f"{kind.title()} {scope} does not exist.")
        endpoint = self.contract.by_path(route.template)
        self._check_params(request, route, endpoint)
        terms = self._terms(request, endpoint)
        sort_field, descending = self._sort(request, endpoint)
        size = self._page_size(request, endpoint)
        fields, additional, include = self._options(request)
        profiles = self.data.resources["profile"]
        members = [
            (profiles[pid], joined) for pid, joined in self.data.members[scope].items() if pid in profiles
        ]

        def value(item, field):
            record, joined = item
            if field == "joined_group_at":
                return joined
            if field == "profile_id":
                return record["id"]
            if field in ("push_token", "_kx"):
                return None
            return record["attributes"].get(field)

        def predicate(item) -> bool:
            return all(
                matches(t, value(item, t.field), datetime_field=t.field in DATETIME_FIELDS) for t in terms
            )

        def sort_key(item) -> tuple:
            return (*_sort_value(item[1]), item[0]["seq"])

        key = (route.template, scope, self._one(request, "filter"), "joined_group_at")
        keys, ordered = self._ordered(key, lambda: [m for m in members if predicate(m)], sort_key)
        page, next_cursor = self._page(request, keys, ordered, size, descending, "joined_group_at")
        renderer = Renderer(
            self.data, request.base_url, fields=fields, additional=additional, include=include
        )
        data = []
        for record, joined in page:
            obj = renderer.resource("profile", record, joined=joined)
            data.append(obj)
        return self._document(request, renderer, data, next_cursor)

    def get_accounts(self, request: Request, route: Route, scope: str | None) -> dict:
        """The key's own account: one object in `data`, no pages (as live, LIVE_BEHAVIOUR.md §8)."""
        self._check_params(request, route, None)
        config = self.data.config
        attributes: dict[str, Any] = {
            "test_account": False,
            "contact_information": {
                "default_sender_name": catalog.STORE_NAME,
                "default_sender_email": "hello@sandbox-outfitters.example",
                "website_url": catalog.STORE_URL,
                "organization_name": catalog.STORE_NAME,
                "street_address": {
                    "address1": "1 Harbour Street",
                    "address2": None,
                    "city": "Boston",
                    "region": "MA",
                    "country": "US",
                    "zip": "02210",
                },
            },
            "industry": "Apparel & Accessories",
            "timezone": config.timezone,
            "preferred_currency": config.preferred_currency,
            "public_api_key": "SbxPub",
            "locale": "en-US",
        }
        wanted = (self._options(request)[0]).get("account")
        if wanted:
            attributes = {k: v for k, v in attributes.items() if k in wanted}
        account_id = config.account_id
        return {
            "data": [
                {
                    "type": "account",
                    "id": account_id,
                    "attributes": attributes,
                    "links": {"self": f"{request.base_url}/api/accounts/{account_id}/"},
                }
            ],
            "links": {"self": self._link(request)},
        }

    def get_group(self, request: Request, route: Route, scope: str | None) -> dict:
        kind = "list" if route.template.startswith("/api/lists") else "segment"
        record = self.data.resources[kind].get(scope or "")
        self._check_params(request, route, None)
        if record is None:
            raise ApiError(404, "not_found", "Not found.", f"{kind.title()} {scope} does not exist.")
        fields, additional, include = self._options(request)
        renderer = Renderer(
            self.data, request.base_url, fields=fields, additional=additional, include=include
        )
        doc: dict[str, Any] = {
            "data": renderer.resource(kind, record),
            "links": {"self": self._link(request)},
        }
        if include:
            doc["included"] = [obj for obj in renderer.included.values() if obj]
        return doc

    def campaign_messages(self, request: Request, route: Route, scope: str | None) -> dict:
        if scope not in self.data.resources["campaign"]:
            raise ApiError(404, "not_found", "Not found.", f"Campaign {scope} does not exist.")
        self._check_params(request, route, None)
        fields, additional, include = self._options(request)
        renderer = Renderer(
            self.data, request.base_url, fields=fields, additional=additional, include=include
        )
        messages = self.data.campaign_messages_of(scope)
        return self._document(
            request, renderer, [renderer.resource("campaign-message", m) for m in messages], None
        )

    # -- events ----------------------------------------------------------------------------------

    def list_events(self, request: Request, route: Route, scope: str | None) -> dict:
        renderer, found, next_cursor = self._events_page(request, route)
        items = [renderer.event(i) for i in found]
        return self._document(request, renderer, items, next_cursor)

    def list_events_json(self, request: Request, route: Route, scope: str | None) -> bytes:
        """`list_events` as JSON, each event written by `Renderer.event_json`."""
        renderer, found, next_cursor = self._events_page(request, route)
        items = [renderer.event_json(i) for i in found]
        return self._document_json(request, renderer, items, next_cursor)

    def _events_page(self, request: Request, route: Route) -> tuple[Renderer, list[int], str | None]:
        """The renderer, the storage indexes of the page's events, and the next cursor."""
        data = self.data
        events = data.events
        endpoint = self.contract.by_path(route.template)
        self._check_params(request, route, endpoint)
        terms = self._terms(request, endpoint)
        sort_field, descending = self._sort(request, endpoint)
        size = self._page_size(request, endpoint)
        fields, additional, include = self._options(request)

        lo, hi = 0, len(events)
        metric = profile = None
        empty = False
        for term in terms:
            if term.field in ("datetime", "timestamp"):
                x = as_epoch(term.value)
                if term.op == "greater-or-equal":
                    lo = max(lo, bisect_left(events.ts, math.ceil(x)))
                elif term.op == "greater-than":
                    lo = max(lo, bisect_left(events.ts, math.floor(x) + 1))
                elif term.op == "less-or-equal":
                    hi = min(hi, bisect_right(events.ts, math.floor(x)))
                elif term.op == "less-than":
                    hi = min(hi, bisect_right(events.ts, math.ceil(x) - 1))
            elif term.field == "metric_id":
                metric = data.metric_index.get(str(term.value))
                empty |= metric is None
            elif term.field == "profile_id":
                profile = data.profile_index.get(str(term.value))
                empty |= profile is None or data.profile_ids[profile] not in data.resources["profile"]

        sort_name = sort_field or "datetime"
        cursor_text = self._one(request, "page[cursor]")
        if cursor_text:
            cursor = decode_cursor(cursor_text)
            try:
                cts, cnum = int(cursor["t"]), int(cursor["n"])
            except (KeyError, TypeError, ValueError) as exc:
                raise bad_request("Invalid page cursor.", parameter="page[cursor]") from exc
            if cursor.get("s") != sort_name:
                raise bad_request("Invalid page cursor.", parameter="page[cursor]")
            if descending:
                hi = min(hi, events.index_before(cts, cnum))
            else:
                lo = max(lo, events.index_after(cts, cnum))

        deleted = events.deleted
        ev_metric, ev_profile, ev_num = events.metric, events.profile, events.num
        found: list[int] = []
        more = False
        if not empty and lo < hi:
            for i in range(hi - 1, lo - 1, -1) if descending else range(lo, hi):
                if metric is not None and ev_metric[i] != metric:
                    continue
                if profile is not None and ev_profile[i] != profile:
                    continue
                if deleted and ev_num[i] in deleted:
                    continue
                if len(found) == size:
                    more = True
                    break
                found.append(i)
        renderer = Renderer(
            data,
            request.base_url,
            fields=fields,
            additional=additional,
            include=include,
            properties=self._properties,
        )
        next_cursor = None
        if more:
            last = found[-1]
            next_cursor = encode_cursor({"s": sort_name, "t": events.ts[last], "n": events.num[last]})
        return renderer, found, next_cursor

    # -- reporting -------------------------------------------------------------------------------

    def values_report(self, request: Request, route: Route, scope: str | None) -> dict:
        return values_report(self.data, request, route.template)

    def metric_aggregates(self, request: Request, route: Route, scope: str | None) -> dict:
        return metric_aggregates(self.data, request)


def _normalize_action_type(value: Any) -> Any:
    """Accept both the definition type ('send-email') and Klaviyo's enum ('SEND_EMAIL')."""
    reverse = {v: k for k, v in ACTION_TYPES.items()}
    if isinstance(value, list):
        return [reverse.get(str(v), str(v)) for v in value]
    return reverse.get(str(value), value)


def _to_key(raw: Any) -> tuple:
    if not isinstance(raw, list):
        raise bad_request("Invalid page cursor.", parameter="page[cursor]")
    return tuple(raw)
