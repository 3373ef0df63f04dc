"""The sandbox account's state: every resource, membership and event, indexed for the API.

`AccountStore` holds the records and the indexes the event store refers to, and answers the
queries that the API and the Reporting API ask. It knows nothing of how an account is made:
`generate.py` fills a store, and `data.SandboxData` adds the mutation helpers tests use.
"""

from __future__ import annotations

import threading
from array import array
from dataclasses import dataclass, replace
from datetime import datetime

from klaviyo_etl import conventions as kc
from klaviyo_etl.sandbox import catalog
from klaviyo_etl.sandbox.config import SandboxConfig
from klaviyo_etl.sandbox.events import NONE, EventStore
from klaviyo_etl.sandbox.ids import event_id
from klaviyo_etl.timeutil import iso_to_epoch

TYPES = (
    "metric",
    "event",
    "profile",
    "list",
    "segment",
    "campaign",
    "campaign-message",
    "flow",
    "flow-action",
    "flow-message",
    "form",
    "template",
    "tag",
    "tag-group",
)


CAMPAIGN_NAME = "Campaign Name"  # on campaign events, even after the campaign is deleted
FAILURE_TYPE = "Failure Type"  # on failed SMS (kc.FAILED_SMS); the event's aux column indexes this list
SMS_FAILURE_TYPES = (
    "Device Unreachable",
    "Device Disconnected",
    "Carrier Violation",
    "Message Blocked",
    "Device Incapable of Receiving SMS",
    "Unknown",
)
# On Clicked Email and kc.CLICKED_SMS: whether a machine made the click (an inbox provider's or a
# security scanner's link check, a phone's link preview). Klaviyo leaves bot clicks out of
# clicks and click rates by default (LIVE_BEHAVIOUR.md §12).
BOT_CLICK = "Bot Click"
BOT_CLICK_PERCENT = 25  # of clicks: the sandbox's choice, the live share varies by account


def bot_click(num: int) -> bool:
    """Whether click event number `num` is a bot's: a fixed share of clicks picked by a hash of
    the number, so that generating draws nothing more from the seed's random stream (every
    other figure stays as it was) and an event keeps its answer however it is served."""
    return ((num * 0x9E3779B97F4A7C15) >> 24) % 100 < BOT_CLICK_PERCENT


@dataclass(frozen=True)
class MessageInfo:
    """A campaign message or flow message, as the event store refers to it by index."""

    id: str
    kind: str  # "campaign" | "flow"
    parent_id: str  # campaign id or flow id
    channel: str  # email | sms | mobile_push
    label: str  # subject line, SMS body or push title: what the events call the message
    parent_name: str  # the campaign's or flow's name when the message was made; events keep it


class AccountStore:
    """All resources of one account; thread-safe through `lock` (re-entrant)."""

    def __init__(self, config: SandboxConfig):
        self.config = replace(config)
        self.now: datetime = config.anchored_now()
        self.lock = threading.RLock()
        self.version = 0  # bumped by every mutation; invalidates the server's page caches
        self.resources: dict[str, dict[str, dict]] = {t: {} for t in TYPES if t != "event"}
        self.members: dict[str, dict[str, str]] = {}  # list/segment id -> {profile id: joined}
        self.tag_links: dict[tuple[str, str], list[str]] = {}  # (type, id) -> tag ids
        self.events = EventStore()
        self.messages: list[MessageInfo] = []
        self.message_index: dict[str, int] = {}
        self.metric_ids: list[str] = []
        self.metric_names: list[str] = []
        self.metric_index: dict[str, int] = {}
        self.metrics_named: dict[str, list[int]] = {}  # name -> every metric index with it
        self.profile_ids: list[str] = []
        self.profile_index: dict[str, int] = {}
        self.profile_last_ts = array("q")
        self.profile_orders = array("i")
        self.profile_revenue = array("d")
        self.form_ids: list[str] = []
        self.list_ids: list[str] = []
        self._seq = 0
        self.added: dict[str, int] = {}  # records `add` created, per type, for their numbering
        self._last_stamp = 0

    @property
    def memberships(self) -> dict[str, dict[str, str]]:
        return self.members

    @staticmethod
    def _ts(value: str) -> int:
        return int(iso_to_epoch(value))

    def put(self, kind: str, record: dict) -> dict:
        """Store a new record and index it where the event store needs an index."""
        self._seq += 1
        record["seq"] = self._seq
        self.resources[kind][record["id"]] = record
        if kind == "metric":
            self.metric_index[record["id"]] = len(self.metric_ids)
            self.metrics_named.setdefault(record["attributes"]["name"], []).append(len(self.metric_ids))
            self.metric_ids.append(record["id"])
            self.metric_names.append(record["attributes"]["name"])
        elif kind == "profile":
            self.profile_index[record["id"]] = len(self.profile_ids)
            self.profile_ids.append(record["id"])
            self.profile_last_ts.append(0)
            self.profile_orders.append(0)
            self.profile_revenue.append(0.0)
        elif kind == "form":
            self.form_ids.append(record["id"])
        elif kind == "list":
            self.list_ids.append(record["id"])
            self.members.setdefault(record["id"], {})
        elif kind == "segment":
            self.members.setdefault(record["id"], {})
        elif kind in ("campaign-message", "flow-message"):
            attrs = record["attributes"]
            if kind == "campaign-message":
                definition = attrs["definition"]
                content = definition.get("content") or {}
                label = content.get("subject") or content.get("body") or content.get("title")
                parent = record["campaign_id"]
                parent_record = self.resources["campaign"].get(parent)
            else:
                definition = attrs["definition"]
                label = definition.get("subject_line") or definition.get("body") or ""
                parent = record["flow_id"]
                parent_record = self.resources["flow"].get(parent)
            parent_name = parent_record["attributes"]["name"] if parent_record else ""
            self.message_index[record["id"]] = len(self.messages)
            self.messages.append(
                MessageInfo(
                    record["id"], kind.split("-")[0], parent, record["channel"], label or "", parent_name
                )
            )
        self.version += 1
        return record

    def metric_named(self, name: str, integration: str | None = None) -> int:
        """The index of the metric called `name` (from `integration`, when several share the
        name, as two integrations' "Placed Order" do). KeyError if none; ValueError if the
        name alone is ambiguous."""
        found = [
            m
            for m in self.metrics_named.get(name, [])
            if integration is None
            or self.resources["metric"][self.metric_ids[m]]["attributes"]["integration"]["name"]
            == integration
        ]
        if not found:
            raise KeyError(f"no metric {name!r}" + (f" from {integration}" if integration else ""))
        if len(found) > 1:
            raise ValueError(f"{len(found)} metrics are called {name!r}: say which integration")
        return found[0]

    def recount_profiles(self) -> None:
        """Recompute last_event_date and order totals per profile from the event store."""
        n = len(self.profile_ids)
        self.profile_last_ts = array("q", bytes(8 * n))
        self.profile_orders = array("i", bytes(4 * n))
        self.profile_revenue = array("d", bytes(8 * n))
        events = self.events
        placed = set(self.metrics_named.get(kc.PLACED_ORDER, []))  # every integration's orders
        last, orders, revenue = self.profile_last_ts, self.profile_orders, self.profile_revenue
        for ts, p, m, v in zip(events.ts, events.profile, events.metric, events.value, strict=True):
            last[p] = ts
            if m in placed:
                orders[p] += 1
                revenue[p] += v

    # -- clock -------------------------------------------------------------------------------

    def stamp(self) -> int:
        """The time of a change: `now`, but strictly later than the previous change, so two
        edits in a row never share an `updated` value an incremental sync could miss."""
        ts = max(int(self.now.timestamp()), self._last_stamp + 1)
        self._last_stamp = ts
        return ts

    # -- queries -------------------------------------------------------------------------------

    def ids(self, kind: str) -> set[str]:
        with self.lock:
            if kind == "event":
                events = self.events
                return {event_id(n) for n in events.num if n not in events.deleted}
            return set(self.resources[kind])

    def get(self, kind: str, resource_id: str) -> dict | None:
        with self.lock:
            return self.resources.get(kind, {}).get(resource_id)

    def campaign_messages_of(self, campaign_id: str) -> list[dict]:
        return [m for m in self.resources["campaign-message"].values() if m["campaign_id"] == campaign_id]

    def flow_actions_of(self, flow_id: str) -> list[dict]:
        return [a for a in self.resources["flow-action"].values() if a["flow_id"] == flow_id]

    def flow_messages_of(self, action_id: str) -> list[dict]:
        return [m for m in self.resources["flow-message"].values() if m["action_id"] == action_id]

    def tags_of(self, kind: str, resource_id: str) -> list[str]:
        return [t for t in self.tag_links.get((kind, resource_id), []) if t in self.resources["tag"]]

    def event_value(self, i: int) -> float | None:
        """The `$value` the event at storage index `i` carries (None: none). An order, or a
        cart or checkout of a product, carries one; a Viewed Product event names the price
        but carries no value, so metric aggregates add 0 for it (LIVE_BEHAVIOUR.md §6)."""
        name = self.metric_names[self.events.metric[i]]
        if name == kc.PLACED_ORDER or (
            name in (kc.ADDED_TO_CART, kc.STARTED_CHECKOUT) and self.events.aux[i] != NONE
        ):
            return round(self.events.value[i], 2)
        return None

    def event_properties(self, i: int) -> dict:
        """The `event_properties` of the event at storage index `i`, built on demand."""
        events = self.events
        name = self.metric_names[events.metric[i]]
        num = events.num[i]
        props: dict = {}
        mi = events.msg[i]
        if mi != NONE:
            message = self.messages[mi]
            if message.kind == "flow":
                # Flow events name the flow message, and the flow in `$flow`.
                props[kc.PROP_MESSAGE] = message.id
                props[kc.PROP_FLOW] = message.parent_id
                flow = self.resources["flow"].get(message.parent_id)
                props["Flow Name"] = flow["attributes"]["name"] if flow else None
            else:
                # Campaign events name the campaign itself, not its campaign message; once the
                # campaign is deleted they keep its name and lose the id (LIVE_BEHAVIOUR.md §1).
                if message.parent_id in self.resources["campaign"]:
                    props[kc.PROP_MESSAGE] = message.parent_id
                props[CAMPAIGN_NAME] = message.parent_name
            if name == kc.FAILED_SMS:
                props[FAILURE_TYPE] = SMS_FAILURE_TYPES[events.aux[i] if events.aux[i] != NONE else 0]
            if message.channel == "email":
                props["Subject"] = message.label
                props["Email Domain"] = "example.com"
            elif message.channel == "sms":
                props["Message Body"] = message.label
            else:
                props["Push Title"] = message.label
            if name in (kc.CLICKED_EMAIL, kc.CLICKED_SMS):
                props[BOT_CLICK] = bot_click(num)
                if events.aux[i] != NONE:
                    sku = catalog.PRODUCTS[events.aux[i]][0]
                    props["URL"] = f"{catalog.STORE_URL}/products/{sku.lower()}"
            return props
        aux = events.aux[i]
        value = events.value[i]
        if name == kc.PLACED_ORDER:
            sku, product, category, price = catalog.PRODUCTS[aux if aux != NONE else 0]
            quantity = max(1, round(value / price))
            props = {
                kc.PROP_VALUE: self.event_value(i),
                kc.PROP_EVENT_ID: f"order-{num}",
                "ItemNames": [product],
                "Categories": [category],
                "Items": [
                    {
                        "ProductID": sku,
                        "ProductName": product,
                        "Quantity": quantity,
                        "ItemPrice": price,
                        "RowTotal": round(value, 2),
                    }
                ],
                "$currency_code": "USD",
            }
            ai = events.attr[i]
            if ai != NONE:
                message = self.messages[ai]
                if message.kind == "flow":
                    props[kc.PROP_ATTRIBUTED_MESSAGE] = message.id
                    props[kc.PROP_ATTRIBUTED_FLOW] = message.parent_id
                elif message.parent_id in self.resources["campaign"]:
                    # The campaign id, as in `$message`; gone with a deleted campaign (our choice).
                    props[kc.PROP_ATTRIBUTED_MESSAGE] = message.parent_id
                props[kc.PROP_ATTRIBUTED_CHANNEL] = message.channel
            return props
        if name in (kc.VIEWED_PRODUCT, kc.ADDED_TO_CART, kc.STARTED_CHECKOUT) and aux != NONE:
            sku, product, category, price = catalog.PRODUCTS[aux]
            props = {
                "ProductID": sku,
                "ProductName": product,
                "Categories": [category],
                "Price": price,
                "URL": f"{catalog.STORE_URL}/products/{sku.lower()}",
            }
            if self.event_value(i) is not None:
                props[kc.PROP_VALUE] = self.event_value(i)
            return props
        if name == kc.ACTIVE_ON_SITE:
            return {"page": f"{catalog.STORE_URL}/", "browser": "Chrome", "os": "Mac OS X"}
        if name in (kc.VIEWED_FORM, kc.SUBMITTED_FORM) and aux != NONE:
            form_id = self.form_ids[aux]
            form = self.resources["form"].get(form_id)
            return {
                kc.PROP_FORM_ID: form_id,
                "form_name": form["attributes"]["name"] if form else None,
                "form_type": "popup",
            }
        if name in (kc.SUBSCRIBED_TO_LIST, kc.UNSUBSCRIBED_FROM_LIST) and aux != NONE:
            list_id = self.list_ids[aux]
            lst = self.resources["list"].get(list_id)
            return {kc.PROP_LIST_ID: list_id, "List": lst["attributes"]["name"] if lst else None}
        return props
