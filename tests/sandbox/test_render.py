"""Every sandbox response validates against the response schema in Klaviyo's spec, on the
first page and on a later page, with the include / fields / additional-fields variants."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from klaviyo_etl.sandbox import SandboxData
from tests.helpers.sandbox import documented_attributes, errors_of

EMAIL = {"filter": "equals(messages.channel,'email')"}

# (route, params); the {id} of nested routes is filled from the data by `_path`.
CASES = [
    ("GET /api/accounts", {}),
    ("GET /api/accounts", {"fields[account]": "timezone,preferred_currency"}),
    ("GET /api/metrics", {}),
    ("GET /api/metrics", {"fields[metric]": "name,integration"}),
    ("GET /api/events", {"page[size]": "50"}),
    ("GET /api/events", {"page[size]": "20", "include": "metric,profile,attributions"}),
    (
        "GET /api/events",
        {"page[size]": "20", "fields[event]": "datetime,event_properties", "sort": "-datetime"},
    ),
    ("GET /api/profiles", {"page[size]": "50"}),
    (
        "GET /api/profiles",
        {"page[size]": "30", "additional-fields[profile]": "subscriptions,predictive_analytics"},
    ),
    ("GET /api/profiles", {"page[size]": "30", "fields[profile]": "email,location.city,created"}),
    ("GET /api/lists", {"page[size]": "2"}),
    ("GET /api/lists", {"page[size]": "2", "include": "tags,flow-triggers"}),
    ("GET /api/lists/{id}", {"additional-fields[list]": "profile_count", "include": "tags"}),
    ("GET /api/lists/{id}/profiles", {"page[size]": "25"}),
    ("GET /api/lists/{id}/profiles", {"page[size]": "25", "additional-fields[profile]": "subscriptions"}),
    ("GET /api/segments", {"page[size]": "2"}),
    ("GET /api/segments", {"page[size]": "2", "include": "tags"}),
    ("GET /api/segments/{id}", {"additional-fields[segment]": "profile_count"}),
    (
        "GET /api/segments/{id}/profiles",
        {"page[size]": "20", "additional-fields[profile]": "predictive_analytics"},
    ),
    ("GET /api/campaigns", {**EMAIL, "page[size]": "3"}),
    ("GET /api/campaigns", {**EMAIL, "page[size]": "3", "include": "campaign-messages,tags"}),
    ("GET /api/campaigns", {"filter": "equals(messages.channel,'sms')", "include": "campaign-messages"}),
    (
        "GET /api/campaigns",
        {"filter": "equals(messages.channel,'mobile_push')", "include": "campaign-messages"},
    ),
    (
        "GET /api/campaigns",
        {
            **EMAIL,
            "fields[campaign]": "name,status,send_time",
            "include": "campaign-messages",
            "fields[campaign-message]": "definition.channel",
        },
    ),
    ("GET /api/campaigns/{id}/campaign-messages", {}),
    ("GET /api/campaigns/{id}/campaign-messages", {"include": "campaign,template"}),
    ("GET /api/flows", {"page[size]": "2"}),
    ("GET /api/flows", {"filter": "equals(archived,true)"}),
    (
        "GET /api/campaigns",
        {
            "filter": "and(equals(messages.channel,'email'),equals(archived,true))",
            "include": "campaign-messages",
        },
    ),
    ("GET /api/flows", {"page[size]": "2", "include": "flow-actions,tags"}),
    ("GET /api/flows/{id}/flow-actions", {"page[size]": "2"}),
    ("GET /api/flow-actions/{id}/flow-messages", {}),
    ("GET /api/forms", {"page[size]": "2"}),
    ("GET /api/templates", {"page[size]": "3"}),
    ("GET /api/templates", {"page[size]": "3", "additional-fields[template]": "definition"}),
    ("GET /api/tags", {"page[size]": "2"}),
    ("GET /api/tags", {"page[size]": "2", "include": "tag-group"}),
    ("GET /api/tag-groups", {"page[size]": "1"}),
]


def _path(route: str, data: SandboxData) -> str:
    sent = next(c for c in data.resources["campaign"].values() if c["attributes"]["status"] == "Sent")
    action = next(a for a in data.resources["flow-action"].values() if a["kind"] != "time-delay")
    path = route.split(" ", 1)[1]
    ids = {
        "lists": data.list_ids[0],
        "segments": next(iter(data.resources["segment"])),
        "campaigns": sent["id"],
        "flows": action["flow_id"],
        "flow-actions": action["id"],
    }
    return path.replace("{id}", ids.get(path.split("/")[2], ""))


def _check_document(route: str, body: dict, base_url: str, sparse: bool = False) -> None:
    assert errors_of(route, body, sparse=sparse) == []
    documented = documented_attributes(route)
    items = body["data"] if isinstance(body["data"], list) else [body["data"]]
    for item in items:
        undocumented = set(item["attributes"]) - documented
        assert not undocumented, f"{route} returns undocumented attributes {undocumented}"
        assert item["links"]["self"].startswith(base_url + "/api/")
    for link in body["links"].values():
        assert urlsplit(link).scheme == "http" and link.startswith(base_url + "/api/")


@pytest.mark.parametrize(("route", "params"), CASES, ids=[f"{r} {p}" for r, p in CASES])
def test_responses_validate_against_spec(
    client: httpx.Client, data: SandboxData, route: str, params: dict
) -> None:
    path = _path(route, data)
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.api+json"
    body = response.json()
    assert body["data"], "the seeded account should have data here"
    sparse = any(name.startswith("fields[") for name in params)
    _check_document(route, body, str(client.base_url).rstrip("/"), sparse)
    if "include" in params:
        wanted = set(params["include"].split(","))
        assert {obj["type"] for obj in body.get("included", [])} <= {
            "metric",
            "profile",
            "tag",
            "flow",
            "campaign-message",
            "flow-action",
            "tag-group",
            "campaign",
            "template",
            "attribution",
        }
        if wanted & {"campaign-messages", "flow-actions", "metric", "profile", "tag-group"}:
            assert body["included"], f"include={params['include']} gave nothing"
    next_link = body["links"].get("next")
    if next_link:
        later = client.get(next_link)
        assert later.status_code == 200, later.text
        _check_document(route, later.json(), str(client.base_url).rstrip("/"), sparse)


def test_sparse_fieldsets_return_only_the_requested_attributes(client: httpx.Client) -> None:
    body = client.get("/api/profiles", params={"fields[profile]": "email,location.city"}).json()
    for item in body["data"]:
        assert set(item["attributes"]) == {"email", "location"}
        assert set(item["attributes"]["location"]) == {"city"}
    events = client.get("/api/events", params={"fields[event]": "datetime"}).json()
    assert all(set(e["attributes"]) == {"datetime"} for e in events["data"])


def test_included_resources_match_relationship_data(client: httpx.Client) -> None:
    body = client.get("/api/campaigns", params={**EMAIL, "include": "campaign-messages"}).json()
    linked = {
        (r["type"], r["id"]) for c in body["data"] for r in c["relationships"]["campaign-messages"]["data"]
    }
    included = {(r["type"], r["id"]) for r in body["included"]}
    assert linked == included
    for message in body["included"]:
        assert message["attributes"]["definition"]["channel"] == "email"


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/events", {"filter": "equals(nope,'x')"}, 400),
        ("/api/campaigns", {}, 400),
        ("/api/profiles", {"page[size]": "101"}, 400),
        ("/api/nowhere", {}, 404),
    ],
)
def test_error_bodies_validate_against_spec(
    client: httpx.Client, path: str, params: dict, status: int
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status
    body = response.json()
    route = "GET /api/events"  # every route shares the ClientError schema
    assert errors_of(route, body, "4XX") == []
    assert body["errors"][0]["status"] == status


def test_report_responses_validate_against_spec(client: httpx.Client, data: SandboxData) -> None:
    placed = data.metric_ids[data.metric_named("Placed Order", "Shopify")]
    for kind in ("campaign", "flow"):
        body = {
            "data": {
                "type": f"{kind}-values-report",
                "attributes": {
                    "statistics": ["recipients", "open_rate", "conversion_value"],
                    "timeframe": {"key": "last_365_days"},
                    "conversion_metric_id": placed,
                },
            }
        }
        response = client.post(f"/api/{kind}-values-reports", json=body)
        assert response.status_code == 200, response.text
        document = response.json()
        assert document["data"]["attributes"]["results"]
        assert errors_of(f"POST /api/{kind}-values-reports", document) == []
    aggregate = {
        "data": {
            "type": "metric-aggregate",
            "attributes": {
                "metric_id": placed,
                "measurements": ["count", "sum_value", "unique"],
                "interval": "day",
                "filter": [
                    "greater-or-equal(datetime,2026-07-01T00:00:00)",
                    "less-than(datetime,2026-07-20T00:00:00)",
                ],
            },
        }
    }
    response = client.post("/api/metric-aggregates", json=aggregate)
    assert response.status_code == 200, response.text
    assert errors_of("POST /api/metric-aggregates", response.json()) == []
