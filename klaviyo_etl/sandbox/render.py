"""JSON:API resource objects in the shape of Klaviyo's responses (revision 2026-07-15).

Relationship `data` follows Klaviyo: to-one relationships always carry it, to-many ones only
when the request asked to `include` them; every relationship carries `links`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import orjson

from klaviyo_etl import conventions as kc
from klaviyo_etl.sandbox.data import SandboxData
from klaviyo_etl.sandbox.ids import event_id, event_uuid
from klaviyo_etl.sandbox.store import bot_click
from klaviyo_etl.timeutil import epoch_to_iso

PLURAL = {
    "metric": "metrics",
    "event": "events",
    "profile": "profiles",
    "list": "lists",
    "segment": "segments",
    "campaign": "campaigns",
    "campaign-message": "campaign-messages",
    "flow": "flows",
    "flow-action": "flow-actions",
    "flow-message": "flow-messages",
    "form": "forms",
    "template": "templates",
    "tag": "tags",
    "tag-group": "tag-groups",
    "attribution": "attributions",
    "push-token": "push-tokens",
    "conversation": "conversations",
    "image": "images",
    "form-version": "form-versions",
}
# Relationship name -> related resource type.
REL_TYPE = {
    "flow-triggers": "flow",
    "profiles": "profile",
    "tags": "tag",
    "lists": "list",
    "segments": "segment",
    "push-tokens": "push-token",
    "conversations": "conversation",
    "campaign-messages": "campaign-message",
    "flow-actions": "flow-action",
    "flow-messages": "flow-message",
    "form-versions": "form-version",
    "campaigns": "campaign",
    "flows": "flow",
    "attributions": "attribution",
    "profile": "profile",
    "metric": "metric",
    "campaign": "campaign",
    "template": "template",
    "image": "image",
    "flow": "flow",
    "flow-action": "flow-action",
    "tag-group": "tag-group",
}
RELATIONSHIPS = {
    "metric": ("flow-triggers",),
    "profile": ("lists", "segments", "push-tokens"),
    "list": ("profiles", "tags", "flow-triggers"),
    "segment": ("profiles", "tags", "flow-triggers"),
    "campaign": ("campaign-messages", "tags"),
    "campaign-message": ("campaign", "template", "image"),
    "flow": ("flow-actions", "tags"),
    "flow-action": ("flow", "flow-messages"),
    "flow-message": ("flow-action", "template"),
    "form": ("form-versions",),
    "template": (),
    "tag": ("tag-group", "lists", "segments", "campaigns", "flows"),
    "tag-group": ("tags",),
}
TO_ONE = {"campaign", "template", "image", "flow", "flow-action", "tag-group", "profile", "metric"}
ACTION_TYPES = {
    "send-email": "SEND_EMAIL",
    "send-sms": "SEND_SMS",
    "send-mobile-push": "SEND_PUSH_NOTIFICATION",
    "time-delay": "TIME_DELAY",
}


def encode_json(payload: Any) -> bytes:
    """`payload` as compact JSON, JSON-equal to `json.dumps(payload, separators=(",", ":"))`.

    orjson, ~10x faster than the stdlib; what it refuses (keys that are not strings, ints
    beyond 64 bits, lone surrogates) goes to the stdlib. Unlike the stdlib, orjson writes a
    NaN or infinite float as null: the sandbox makes none (its numbers are counts, prices and
    epoch seconds, and Python's float division raises rather than make one).
    """
    try:
        return orjson.dumps(payload)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(payload, separators=(",", ":")).encode()


def json_text(text: str) -> str:
    """`text` as it goes between the quotes of a JSON string."""
    if text.isalnum():  # no quote, backslash, control character or surrogate
        return text
    return encode_json(text).decode()[1:-1]


def _rel_links(root: str, rel: str) -> dict:
    return {"self": f"{root}/relationships/{rel}/", "related": f"{root}/{rel}/"}


def _select(attributes: dict, fields: list[str]) -> dict:
    """Sparse fieldset: keep the listed attributes; `a.b` keeps one nested key."""
    out: dict = {}
    for field in fields:
        if field == "id":
            continue
        head, _, rest = field.partition(".")
        if head not in attributes:
            continue
        if not rest:
            out[head] = attributes[head]
            continue
        source, target = attributes[head], out.setdefault(head, {})
        if not isinstance(source, dict) or not isinstance(target, dict):
            continue
        parts = rest.split(".")
        for part in parts[:-1]:
            source = source.get(part) if isinstance(source, dict) else None
            if not isinstance(source, dict):
                break
            target = target.setdefault(part, {})
        else:
            if isinstance(source, dict) and parts[-1] in source:
                target[parts[-1]] = source[parts[-1]]
    return out


class PropertiesText:
    """The JSON text of events' `event_properties`, kept while the account is unchanged.

    Events of one metric, message, product and value have the same properties, all but
    orders (each has its own `$event_id`), so most texts are written once: that saves ~1 us
    of the ~5 an event costs to serve. Any change to the account (`data.version`) drops them.
    """

    LIMIT = 50_000  # texts kept; beyond, start again

    def __init__(self, data: SandboxData):
        self.data = data
        self.version = -1
        self.text: dict[tuple, str] = {}
        self.orders: frozenset[int] = frozenset()
        self.clicks: frozenset[int] = frozenset()

    def __call__(self, i: int) -> str:
        data = self.data
        events = data.events
        if self.version != data.version:
            self.text.clear()
            self.version = data.version
            self.orders = frozenset(data.metrics_named.get(kc.PLACED_ORDER, ()))
            self.clicks = frozenset(
                m for name in (kc.CLICKED_EMAIL, kc.CLICKED_SMS) for m in data.metrics_named.get(name, ())
            )
        metric = events.metric[i]
        if metric in self.orders:
            return encode_json(data.event_properties(i)).decode()
        # A click's `Bot Click` follows its number, not these columns.
        bot = metric in self.clicks and bot_click(events.num[i])
        key = (metric, events.msg[i], events.aux[i], events.attr[i], events.value[i], bot)
        text = self.text.get(key)
        if text is None:
            if len(self.text) >= self.LIMIT:
                self.text.clear()
            text = self.text[key] = encode_json(data.event_properties(i)).decode()
        return text


class Renderer:
    """Builds resource objects for one response, collecting `included` along the way."""

    def __init__(
        self,
        data: SandboxData,
        base_url: str,
        *,
        fields: dict[str, list[str]],
        additional: dict[str, list[str]],
        include: set[str],
        on_profiles: bool = False,
        properties: PropertiesText | None = None,
    ):
        self.data = data
        self.base = base_url
        self.fields = fields
        self.additional = additional
        self.include = include
        self.on_profiles = on_profiles  # /api/profiles also has a `conversations` relationship
        self.included: dict[tuple[str, str], dict] = {}
        self._profile_tail: list[str] | None = None  # see `_profile_tail_parts`
        self._json_roots: dict[str, str] = {}  # kind -> "{base}/api/{plural}/" escaped for JSON
        self.properties = properties or PropertiesText(data)

    # -- links ---------------------------------------------------------------------------------

    def self_link(self, kind: str, resource_id: str) -> str:
        return f"{self.base}/api/{PLURAL[kind]}/{resource_id}/"

    def rel_links(self, kind: str, resource_id: str, rel: str) -> dict:
        return _rel_links(f"{self.base}/api/{PLURAL[kind]}/{resource_id}", rel)

    def _json_root(self, kind: str) -> str:
        """ "{base}/api/{plural}/" as it goes between the quotes of a JSON string."""
        root = self._json_roots.get(kind)
        if root is None:
            root = self._json_roots[kind] = json_text(f"{self.base}/api/{PLURAL[kind]}/")
        return root

    # -- attributes ----------------------------------------------------------------------------

    def attributes(self, kind: str, record: dict, joined: str | None = None) -> dict:
        data = self.data
        attrs = dict(record["attributes"])
        extra = self.additional.get(kind, [])
        if kind == "profile":
            last = data.profile_last_ts[data.profile_index[record["id"]]]
            attrs["last_event_date"] = epoch_to_iso(last) if last else None
            if "subscriptions" in extra:
                attrs["subscriptions"] = subscriptions(record)
            if "predictive_analytics" in extra:
                attrs["predictive_analytics"] = predictive(data, record)
            if joined is not None:
                attrs["joined_group_at"] = joined
        elif kind in ("list", "segment") and "profile_count" in extra:
            attrs["profile_count"] = len(data.members.get(record["id"], {}))
        elif kind == "template" and "definition" in extra:
            attrs["definition"] = None  # only drag-and-drop templates built in the new editor
        selected = self.fields.get(kind)
        if selected:
            keep = list(selected) + [f for f in extra if f not in selected]
            if joined is not None:
                keep.append("joined_group_at")
            attrs = _select(attrs, keep)
        return attrs

    # -- relationships -------------------------------------------------------------------------

    def related_ids(self, kind: str, record: dict, rel: str) -> list[str] | str | None:
        data = self.data
        rid = record["id"]
        if rel == "campaign-messages":
            return [m["id"] for m in data.campaign_messages_of(rid)]
        if rel == "flow-actions":
            return [a["id"] for a in data.flow_actions_of(rid)]
        if rel == "flow-messages":
            return [m["id"] for m in data.flow_messages_of(rid)]
        if rel == "tags":
            return data.tags_of(kind, rid)
        if rel == "tag-group":
            return record.get("tag_group_id")
        if rel == "campaign":
            return record.get("campaign_id")
        if rel == "flow":
            return record.get("flow_id")
        if rel == "flow-action":
            return record.get("action_id")
        if rel == "template":
            return record.get("template_id")
        if rel == "flow-triggers":
            if kind == "list":
                return [f["id"] for f in data.resources["flow"].values() if f.get("trigger_list") == rid]
            return []
        if rel in ("campaigns", "flows", "lists", "segments") and kind == "tag":
            target = REL_TYPE[rel]
            return [
                i
                for (k, i), tags in data.tag_links.items()
                if k == target and rid in tags and i in data.resources[target]
            ]
        if rel in ("lists", "segments") and kind == "profile":
            target = REL_TYPE[rel]
            return [
                g for g, members in data.members.items() if rid in members and g in data.resources[target]
            ]
        if rel == "tags" and kind == "tag-group":
            return [t["id"] for t in data.resources["tag"].values() if t["tag_group_id"] == rid]
        return [] if rel not in TO_ONE else None

    def relationships(self, kind: str, record: dict) -> dict:
        rels = RELATIONSHIPS[kind]
        if kind == "profile" and self.on_profiles:
            rels = (*rels, "conversations")
        out = {}
        root = f"{self.base}/api/{PLURAL[kind]}/{record['id']}"
        for rel in rels:
            entry: dict = {"links": _rel_links(root, rel)}
            target = REL_TYPE[rel]
            if rel in TO_ONE:
                related = self.related_ids(kind, record, rel)
                if related:
                    entry["data"] = {"type": target, "id": related}
                    if rel in self.include:
                        self._include(target, related)
            elif rel in self.include:
                related = self.related_ids(kind, record, rel) or []
                entry["data"] = [{"type": target, "id": i} for i in related]
                for i in related:
                    self._include(target, i)
            out[rel] = entry
        return out

    def _include(self, kind: str, resource_id: str) -> None:
        key = (kind, resource_id)
        if key in self.included:
            return
        record = self.data.resources.get(kind, {}).get(resource_id)
        if record is None:
            return
        self.included[key] = {}  # reserve against cycles
        self.included[key] = self.resource(kind, record, nested=True)

    # -- resource objects ----------------------------------------------------------------------

    def resource(self, kind: str, record: dict, *, joined: str | None = None, nested: bool = False) -> dict:
        obj = {
            "type": kind,
            "id": record["id"],
            "attributes": self.attributes(kind, record, joined),
            "links": {"self": self.self_link(kind, record["id"])},
        }
        if nested:
            include, self.include = self.include, set()
            try:
                obj["relationships"] = self.relationships(kind, record)
            finally:
                self.include = include
        else:
            obj["relationships"] = self.relationships(kind, record)
        return obj

    def resource_json(self, kind: str, record: dict) -> str:
        """`resource(kind, record)` as JSON text, JSON-equal to it: profiles written from a
        template where they can be (`profile_json`), any other resource encoded."""
        if kind == "profile":
            text = self.profile_json(record)
            if text is not None:
                return text
        return encode_json(self.resource(kind, record)).decode()

    def profile_json(self, record: dict) -> str | None:
        """`resource("profile", record)` as JSON text, JSON-equal to it, written from a
        template; None where the template does not apply (a sparse fieldset, an `include`,
        or stored attributes named like the ones the response adds).

        Profile pages are the other stream a first load reads in full: building each
        profile's dicts (its subscriptions alone: ~20 dicts and lists) cost ~3x this.
        """
        attributes = record["attributes"]
        if (
            self.include
            or self.fields.get("profile")
            or not attributes
            # stored attributes named like the added ones: the dicts' merge decides
            or "last_event_date" in attributes
            or "subscriptions" in attributes
            or "predictive_analytics" in attributes
            or "joined_group_at" in attributes
        ):
            return None
        data = self.data
        rid = record["id"]
        last = data.profile_last_ts[data.profile_index[rid]]
        added = f',"last_event_date":"{epoch_to_iso(last)}"' if last else ',"last_event_date":null'
        extra = self.additional.get("profile", ())
        if "subscriptions" in extra:
            added += ',"subscriptions":' + subscriptions_json(record)
        if "predictive_analytics" in extra:
            added += ',"predictive_analytics":' + encode_json(predictive(data, record)).decode()
        if self._profile_tail is None:
            self._profile_tail = self._profile_tail_parts()
        rid_text = json_text(rid)
        return (
            f'{{"type":"profile","id":"{rid_text}","attributes":{encode_json(attributes)[:-1].decode()}'
            f"{added}{(self._json_root('profile') + rid_text).join(self._profile_tail)}"
        )

    def _profile_tail_parts(self) -> list[str]:
        """What follows a profile's attributes, split where its escaped "{base}/api/profiles/{id}"
        goes (the links and relationships are the same for every profile but for that)."""
        rels = RELATIONSHIPS["profile"]
        if self.on_profiles:
            rels = (*rels, "conversations")
        relationships = ",".join(
            f'"{rel}":{{"links":{{"self":"\0/relationships/{rel}/","related":"\0/{rel}/"}}}}' for rel in rels
        )
        return f'}},"links":{{"self":"\0/"}},"relationships":{{{relationships}}}}}'.split("\0")

    def event(self, i: int) -> dict:
        data = self.data
        events = data.events
        num = events.num[i]
        ts = events.ts[i]
        eid = event_id(num)
        attrs = {
            "timestamp": ts,
            "event_properties": data.event_properties(i),
            "datetime": event_datetime(ts, num),
            "uuid": event_uuid(num),
        }
        if self.fields.get("event"):
            attrs = _select(attrs, self.fields["event"])
        profile_id = data.profile_ids[events.profile[i]]
        metric_id = data.metric_ids[events.metric[i]]
        root = f"{self.base}/api/events/{eid}"
        relationships = {
            "profile": {
                "data": {"type": "profile", "id": profile_id},
                "links": {"self": f"{root}/relationships/profile/", "related": f"{root}/profile/"},
            },
            "metric": {
                "data": {"type": "metric", "id": metric_id},
                "links": {"self": f"{root}/relationships/metric/", "related": f"{root}/metric/"},
            },
            "attributions": {
                "links": {
                    "self": f"{root}/relationships/attributions/",
                    "related": f"{root}/attributions/",
                }
            },
        }
        if "attributions" in self.include:
            relationships["attributions"]["data"] = []
        if "profile" in self.include:
            self._include("profile", profile_id)
        if "metric" in self.include:
            self._include("metric", metric_id)
        return {
            "type": "event",
            "id": eid,
            "attributes": attrs,
            "relationships": relationships,
            "links": {"self": self.self_link("event", eid)},
        }

    def event_json(self, i: int) -> str:
        """`event(i)` as JSON text, JSON-equal to it, written from a template.

        The events page is the sandbox's hot path (a first load reads every event once): a
        dict per event and a generic encoder cost ~4x this. Ids are made of letters and
        digits, so they go into the template as they are; anything else is escaped.
        """
        data = self.data
        events = self.data.events
        num = events.num[i]
        ts = events.ts[i]
        eid = event_id(num)
        selected = self.fields.get("event")
        if selected:
            attributes = {
                "timestamp": ts,
                "event_properties": data.event_properties(i),
                "datetime": event_datetime(ts, num),
                "uuid": event_uuid(num),
            }
            attrs = encode_json(_select(attributes, selected)).decode()
        else:
            attrs = (
                f'{{"timestamp":{ts},"event_properties":{self.properties(i)},'
                f'"datetime":"{event_datetime(ts, num)}","uuid":"{event_uuid(num)}"}}'
            )
        profile_id = data.profile_ids[events.profile[i]]
        metric_id = data.metric_ids[events.metric[i]]
        include = self.include
        if include:
            if "profile" in include:
                self._include("profile", profile_id)
            if "metric" in include:
                self._include("metric", metric_id)
        root = self._json_root("event") + eid
        attributions = ',"data":[]' if "attributions" in include else ""
        return (
            f'{{"type":"event","id":"{eid}","attributes":{attrs},"relationships":{{'
            f'"profile":{{"data":{{"type":"profile","id":"{json_text(profile_id)}"}},'
            f'"links":{{"self":"{root}/relationships/profile/","related":"{root}/profile/"}}}},'
            f'"metric":{{"data":{{"type":"metric","id":"{json_text(metric_id)}"}},'
            f'"links":{{"self":"{root}/relationships/metric/","related":"{root}/metric/"}}}},'
            f'"attributions":{{"links":{{"self":"{root}/relationships/attributions/",'
            f'"related":"{root}/attributions/"}}{attributions}}}}},'
            f'"links":{{"self":"{root}/"}}}}'
        )


def subscriptions(record: dict) -> dict:
    """Consent per channel in the `additional-fields[profile]=subscriptions` shape."""
    consent = record["consent"]
    attrs = record["attributes"]
    email_ts = epoch_to_iso(consent["email_ts"])
    sms_ts = epoch_to_iso(consent["sms_ts"])
    suppression = [{"reason": reason, "timestamp": epoch_to_iso(ts)} for reason, ts in consent["suppression"]]
    email_ok = consent["email"] == "SUBSCRIBED" and not suppression
    out: dict = {
        "email": {
            "marketing": {
                "can_receive_email_marketing": email_ok,
                "consent": consent["email"],
                "consent_timestamp": email_ts if consent["email"] != "NEVER_SUBSCRIBED" else None,
                "last_updated": email_ts,
                "method": "FORM" if consent["email"] != "NEVER_SUBSCRIBED" else None,
                "method_detail": None,
                "custom_method_detail": None,
                "double_optin": False,
                "suppression": suppression,
                "list_suppressions": [],
            }
        },
        "sms": {
            "marketing": {
                "can_receive_sms_marketing": consent["sms"] == "SUBSCRIBED",
                "consent": consent["sms"],
                "consent_timestamp": sms_ts if consent["sms"] != "NEVER_SUBSCRIBED" else None,
                "method": "TEXT" if consent["sms"] != "NEVER_SUBSCRIBED" else None,
                "method_detail": None,
                "last_updated": sms_ts,
            },
            "transactional": {
                "can_receive_sms_transactional": bool(attrs.get("phone_number")),
                "consent": "SUBSCRIBED" if attrs.get("phone_number") else "NEVER_SUBSCRIBED",
                "consent_timestamp": None,
                "method": None,
                "method_detail": None,
                "last_updated": None,
            },
        },
        "mobile_push": {
            "marketing": {
                "can_receive_push_marketing": bool(consent["push"]),
                "consent": "SUBSCRIBED" if consent["push"] else "NEVER_SUBSCRIBED",
                "consent_timestamp": email_ts if consent["push"] else None,
            }
        },
    }
    return out


def subscriptions_json(record: dict) -> str:
    """`subscriptions(record)` as JSON text, JSON-equal to it, written from a template."""
    consent = record["consent"]
    email, sms, push = consent["email"], consent["sms"], consent["push"]
    email_ts = epoch_to_iso(consent["email_ts"])
    sms_ts = email_ts if consent["sms_ts"] == consent["email_ts"] else epoch_to_iso(consent["sms_ts"])
    suppression = consent["suppression"]
    suppressions = (
        encode_json(
            [{"reason": reason, "timestamp": epoch_to_iso(ts)} for reason, ts in suppression]
        ).decode()
        if suppression
        else "[]"
    )
    email_ever = email != "NEVER_SUBSCRIBED"
    sms_ever = sms != "NEVER_SUBSCRIBED"
    phone = bool(record["attributes"].get("phone_number"))
    return (
        '{"email":{"marketing":{'
        f'"can_receive_email_marketing":{_TRUE[email == "SUBSCRIBED" and not suppression]},'
        f'"consent":{json_string(email)},'
        f'"consent_timestamp":{_quoted(email_ts) if email_ever else "null"},'
        f'"last_updated":"{email_ts}",'
        f'"method":{_FORM if email_ever else "null"},'
        '"method_detail":null,"custom_method_detail":null,"double_optin":false,'
        f'"suppression":{suppressions},"list_suppressions":[]'
        '}},"sms":{"marketing":{'
        f'"can_receive_sms_marketing":{_TRUE[sms == "SUBSCRIBED"]},'
        f'"consent":{json_string(sms)},'
        f'"consent_timestamp":{_quoted(sms_ts) if sms_ever else "null"},'
        f'"method":{_TEXT if sms_ever else "null"},'
        f'"method_detail":null,"last_updated":"{sms_ts}"'
        '},"transactional":{'
        f'"can_receive_sms_transactional":{_TRUE[phone]},'
        f'"consent":{_SUBSCRIBED if phone else _NEVER},'
        '"consent_timestamp":null,"method":null,"method_detail":null,"last_updated":null'
        '}},"mobile_push":{"marketing":{'
        f'"can_receive_push_marketing":{_TRUE[bool(push)]},'
        f'"consent":{_SUBSCRIBED if push else _NEVER},'
        f'"consent_timestamp":{_quoted(email_ts) if push else "null"}'
        "}}}"
    )


def event_datetime(ts: int, num: int) -> str:
    """An event's `datetime` in the shapes live Klaviyo sends (LIVE_BEHAVIOUR.md §9): ISO 8601
    with a "T" (`2026-05-01T10:00:00+00:00`), or Python's `str()` of the time: space-separated,
    with microseconds. Every odd-numbered event takes the second shape, its fraction made from
    its number (never .000000, and within the second its `timestamp` names): the sandbox's
    choice, as the share of each shape live is unknown."""
    text = epoch_to_iso(ts)
    if not num & 1:
        return text
    return f"{text[:10]} {text[11:19]}.{num * 7919 % 1_000_000:06d}+00:00"


_TRUE = {True: "true", False: "false"}
_FORM, _TEXT, _SUBSCRIBED, _NEVER = '"FORM"', '"TEXT"', '"SUBSCRIBED"', '"NEVER_SUBSCRIBED"'


def _quoted(iso: str) -> str:
    """A timestamp from `epoch_to_iso` (digits and "-:T+" only) as a JSON string."""
    return f'"{iso}"'


@lru_cache(maxsize=1024)
def json_string(text: str) -> str:
    """`text` as a JSON string, quotes included (kept: the values are a few enum names)."""
    return encode_json(text).decode()


def predictive(data: SandboxData, record: dict) -> dict:
    """Predictive analytics derived from the profile's own orders (stable for a given history)."""
    p = data.profile_index[record["id"]]
    orders = data.profile_orders[p]
    revenue = round(data.profile_revenue[p], 2)
    aov = round(revenue / orders, 2) if orders else None
    h = int(record["id"][-6:], 36) if record["id"][-6:].isalnum() else 7
    churn = round(0.15 + (h % 70) / 100, 2)
    predicted_orders = round(orders * (1 - churn) + (h % 3) * 0.4, 2)
    predicted_clv = round(predicted_orders * (aov or 60.0), 2)
    last = data.profile_last_ts[p]
    expected = epoch_to_iso(last + (20 + h % 60) * 86_400) if orders and last else None
    affinity = ["email", "sms", "push"] if h % 2 else ["sms", "email", "push"]
    return {
        "historic_clv": revenue,
        "predicted_clv": predicted_clv,
        "total_clv": round(revenue + predicted_clv, 2),
        "historic_number_of_orders": orders,
        "predicted_number_of_orders": predicted_orders,
        "average_days_between_orders": round(30 + h % 90, 1) if orders > 1 else None,
        "average_order_value": aov,
        "churn_probability": churn,
        "expected_date_of_next_order": expected,
        "ranked_channel_affinity": affinity,
    }
