"""Deterministic generation of a plausible Klaviyo account.

Everything derives from one seeded `random.Random`, so a seed always yields the same account.
The event history is built from cause to effect: campaigns and flows send to real list
members, sends produce Received/Bounced events, some recipients open and click, a few convert
into attributed Placed Order events within the attribution window, and unsubscribes change the
profile's consent. Reports computed over this data therefore behave like reports over a real
account instead of over noise.
"""

from __future__ import annotations

import random
from array import array

from klaviyo_etl import conventions as kc
from klaviyo_etl.sandbox import catalog
from klaviyo_etl.sandbox.events import NONE
from klaviyo_etl.sandbox.ids import IdFactory
from klaviyo_etl.sandbox.store import SMS_FAILURE_TYPES, AccountStore
from klaviyo_etl.timeutil import epoch_to_iso

DAY = 86_400
HOUR = 3_600

# (name, integration name, integration category) for every metric the account tracks.
METRICS: list[tuple[str, str, str]] = [
    (kc.RECEIVED_EMAIL, "Klaviyo", "Internal"),
    (kc.OPENED_EMAIL, "Klaviyo", "Internal"),
    (kc.CLICKED_EMAIL, "Klaviyo", "Internal"),
    (kc.BOUNCED_EMAIL, "Klaviyo", "Internal"),
    (kc.DROPPED_EMAIL, "Klaviyo", "Internal"),
    (kc.MARKED_SPAM, "Klaviyo", "Internal"),
    (kc.UNSUBSCRIBED, "Klaviyo", "Internal"),
    (kc.SENT_SMS, "Klaviyo", "Internal"),
    (kc.RECEIVED_SMS, "Klaviyo", "Internal"),
    (kc.CLICKED_SMS, "Klaviyo", "Internal"),
    (kc.FAILED_SMS, "Klaviyo", "Internal"),
    (kc.UNSUBSCRIBED_SMS, "Klaviyo", "Internal"),
    (kc.RECEIVED_PUSH, "Klaviyo", "Internal"),
    (kc.OPENED_PUSH, "Klaviyo", "Internal"),
    (kc.BOUNCED_PUSH, "Klaviyo", "Internal"),
    (kc.ACTIVE_ON_SITE, "API", "API"),
    (kc.VIEWED_PRODUCT, "API", "API"),
    (kc.ADDED_TO_CART, "API", "API"),
    (kc.STARTED_CHECKOUT, "Shopify", "eCommerce"),
    (kc.PLACED_ORDER, "Shopify", "eCommerce"),
    (kc.ORDERED_PRODUCT, "Shopify", "eCommerce"),
    (kc.SUBSCRIBED_TO_LIST, "Klaviyo", "Internal"),
    (kc.UNSUBSCRIBED_FROM_LIST, "Klaviyo", "Internal"),
    (kc.VIEWED_FORM, "Klaviyo", "Internal"),
    (kc.SUBMITTED_FORM, "Klaviyo", "Internal"),
    # A second "Placed Order", as an account with a custom (API) store integration next to
    # Shopify has: same name, its own id, fewer events (LIVE_BEHAVIOUR.md §4).
    (kc.PLACED_ORDER, "API", "API"),
]
# The share of orders the second "Placed Order" integration records.
SECOND_ORDER_SHARE = 0.2
INTEGRATION_IDS = {"Klaviyo": "0rG4eQ", "API": "7FtS4J", "Shopify": "0eMvjm"}

# Per-channel behaviour of one recipient: (bounce, open, click | opened, unsubscribe, spam,
# conversion if clicked, conversion otherwise). Click for SMS is unconditional (no opens).
BEHAVIOUR = {
    "email": (0.02, 0.42, 0.16, 0.004, 0.0008, 0.05, 0.006),
    "sms": (0.02, 0.0, 0.08, 0.006, 0.0, 0.06, 0.008),
    "mobile_push": (0.03, 0.09, 0.0, 0.0, 0.0, 0.0, 0.005),
}
# Expected events per send, used to size audiences so the total lands near `events`.
EVENTS_PER_SEND = {"email": 1.72, "sms": 1.1, "mobile_push": 1.1}
# 70% email, 20% SMS, 10% push, assigned in a fixed cycle so small accounts keep the mix.
CHANNEL_CYCLE = ["email"] * 7 + ["sms"] * 2 + ["mobile_push"]
# After the first three campaigns (one Sent per channel), every other campaign is not a send
# and takes the next of these statuses (the spec's enum, LIVE_BEHAVIOUR.md §3); none has events.
NOT_SENT_STATUSES = (
    "Cancelled: No Recipients",
    "Draft",
    "Queued without Recipients",
    "Scheduled",
    "Cancelled",
    "Preparing to send",
    "Cancelled: Smart Sending",
    "Cancelled: Billing Limit",
    "Preparing to schedule",
    "Cancelled: Misconfigured",
    "Adding Recipients",
    "Cancelled: Account Disabled",
    "Cancelled: Internal Error",
    "Unknown",
)
# Not sends whose send time lies ahead (or was never set); the others had a time that passed.
NOT_YET_SCHEDULED = ("Draft", "Unknown")
SCHEDULED_AHEAD = ("Scheduled", "Preparing to schedule")
SENDING_NOW = ("Preparing to send", "Adding Recipients")


def campaign_plan(count: int) -> list[tuple[str, str]]:
    """(channel, status) of each campaign by index.

    The first three are Sent, one per channel; after them every other campaign is not a send.
    The first email send after those three is an A/B test ("Variations Sent"), and the newest
    send is still going out ("Sending") once there are five sends.
    """
    plan = []
    not_sent = 0
    for n in range(count):
        channel = kc.CAMPAIGN_CHANNELS[n] if n < 3 else CHANNEL_CYCLE[n % 10]
        status = "Sent"
        if n >= 3 and (n - 3) % 2 == 1:
            status = NOT_SENT_STATUSES[not_sent % len(NOT_SENT_STATUSES)]
            not_sent += 1
        plan.append((channel, status))
    sends = [n for n, (_, status) in enumerate(plan) if status == "Sent"]
    ab = next((n for n in sends if n >= 3 and plan[n][0] == "email"), None)
    if ab is not None:
        plan[ab] = ("email", "Variations Sent")
    if len(sends) >= 5 and sends[-1] != ab:
        plan[sends[-1]] = (plan[sends[-1]][0], "Sending")
    return plan


class Generator:
    """Creates the records of an `AccountStore`; kept on `SandboxData` so mutations can add more later."""

    def __init__(self, data: AccountStore, rng: random.Random):
        self.data = data
        self.rng = rng
        self.ids = IdFactory(rng)

    # -- helpers ---------------------------------------------------------------------------

    def _weighted(self, pairs):
        r = self.rng.random()
        acc = 0.0
        for value, weight in pairs:
            acc += weight
            if r < acc:
                return value
        return pairs[-1][0]

    def _between(self, lo: int, hi: int) -> int:
        return lo if hi <= lo else self.rng.randrange(lo, hi)

    # -- one record of each type -------------------------------------------------------------

    def metric(self, name: str, integration: str, category: str, created: int) -> dict:
        return {
            "id": self.ids.short(),
            "attributes": {
                "name": name,
                "created": epoch_to_iso(created),
                "updated": epoch_to_iso(created),
                "integration": {
                    "object": "integration",
                    "id": INTEGRATION_IDS[integration],
                    "key": integration.lower(),
                    "name": integration,
                    "category": category,
                },
            },
        }

    def tag_group(self, name: str, *, default: bool = False) -> dict:
        return {
            "id": self.ids.uuid4(),
            "attributes": {"name": name, "exclusive": False, "default": default},
        }

    def tag(self, name: str, group_id: str) -> dict:
        return {"id": self.ids.uuid4(), "attributes": {"name": name}, "tag_group_id": group_id}

    def template(self, n: int, created: int, updated: int) -> dict:
        name = catalog.TEMPLATE_NAMES[n % len(catalog.TEMPLATE_NAMES)]
        if n >= len(catalog.TEMPLATE_NAMES):
            name = f"{name} {n // len(catalog.TEMPLATE_NAMES) + 1}"
        editor = self.rng.choice(["CODE", "SYSTEM_DRAGGABLE", "SYSTEM_DRAGGABLE"])
        html = (
            f"<html><body><h1>{name}</h1><p>{{{{ first_name|default:'there' }}}}, "
            f"something new at {catalog.STORE_NAME}.</p>"
            f'<a href="{catalog.STORE_URL}">Shop now</a></body></html>'
        )
        return {
            "id": self.ids.short(),
            "attributes": {
                "name": name,
                "editor_type": editor,
                "html": html,
                "text": f"{name}\n\nShop now: {catalog.STORE_URL}",
                "amp": None,
                "created": epoch_to_iso(created),
                "updated": epoch_to_iso(updated),
            },
        }

    def list_(self, n: int, created: int, updated: int) -> dict:
        name = catalog.LIST_NAMES[n % len(catalog.LIST_NAMES)]
        if n >= len(catalog.LIST_NAMES):
            name = f"{name} {n // len(catalog.LIST_NAMES) + 1}"
        return {
            "id": self.ids.short(),
            "attributes": {
                "name": name,
                "created": epoch_to_iso(created),
                "updated": epoch_to_iso(updated),
                "opt_in_process": self.rng.choice(["single_opt_in", "double_opt_in"]),
            },
        }

    def segment(self, n: int, created: int, updated: int, list_id: str | None) -> dict:
        name = catalog.SEGMENT_NAMES[n % len(catalog.SEGMENT_NAMES)]
        if n >= len(catalog.SEGMENT_NAMES):
            name = f"{name} {n // len(catalog.SEGMENT_NAMES) + 1}"
        if list_id:
            condition = {"type": "profile-group-membership", "is_member": True, "group_ids": [list_id]}
        else:
            condition = {
                "type": "profile-marketing-consent",
                "consent": {
                    "channel": "email",
                    "can_receive_marketing": True,
                    "consent_status": {"subscription": "any"},
                },
            }
        return {
            "id": self.ids.short(),
            "attributes": {
                "name": name,
                "definition": {"condition_groups": [{"conditions": [condition]}]},
                "created": epoch_to_iso(created),
                "updated": epoch_to_iso(updated),
                "is_active": self.rng.random() < 0.9,
                "is_processing": False,
                "is_starred": self.rng.random() < 0.3,
            },
        }

    def form(self, n: int, created: int, updated: int) -> dict:
        name = catalog.FORM_NAMES[n % len(catalog.FORM_NAMES)]
        if n >= len(catalog.FORM_NAMES):
            name = f"{name} {n // len(catalog.FORM_NAMES) + 1}"
        return {
            "id": self.ids.short(),
            "attributes": {
                "name": name,
                "status": "live" if n == 0 or self.rng.random() < 0.7 else "draft",
                "ab_test": self.rng.random() < 0.2,
                "created_at": epoch_to_iso(created),
                "updated_at": epoch_to_iso(updated),
            },
        }

    def profile(self, n: int, created: int, updated: int) -> dict:
        rng = self.rng
        first = rng.choice(catalog.FIRST_NAMES)
        last = rng.choice(catalog.LAST_NAMES)
        local = f"{first}.{last}".lower().replace("ü", "u")
        email = f"{local}.{n}@{rng.choice(catalog.EMAIL_DOMAINS)}"
        has_phone = rng.random() < 0.45
        phone = f"+1555{rng.randrange(10**7):07d}" if has_phone else None
        city, region, country, zip_, tz, lat, lon = rng.choice(catalog.PLACES)
        email_consent = self._weighted(
            [("SUBSCRIBED", 0.72), ("NEVER_SUBSCRIBED", 0.2), ("UNSUBSCRIBED", 0.08)]
        )
        sms_consent = (
            self._weighted([("SUBSCRIBED", 0.6), ("NEVER_SUBSCRIBED", 0.3), ("UNSUBSCRIBED", 0.1)])
            if has_phone
            else "NEVER_SUBSCRIBED"
        )
        consent_ts = self._between(created, max(created + 1, updated))
        return {
            "id": self.ids.ulid(created * 1000),
            "attributes": {
                "email": email,
                "phone_number": phone,
                "external_id": None,
                "first_name": first,
                "last_name": last,
                "organization": None if rng.random() < 0.8 else f"{last} & Co",
                "locale": "en-US" if country == "United States" else "en-GB",
                "title": None,
                "image": None,
                "created": epoch_to_iso(created),
                "updated": epoch_to_iso(updated),
                "location": {
                    "address1": f"{rng.randrange(1, 999)} Main St",
                    "address2": None,
                    "city": city,
                    "country": country,
                    "region": region,
                    "zip": zip_,
                    "timezone": tz,
                    "ip": f"203.0.113.{rng.randrange(1, 255)}",
                    "latitude": lat,
                    "longitude": lon,
                },
                "properties": {
                    "source": rng.choice(["Popup Form", "Checkout", "Import", "Footer Form"]),
                    "favorite_category": rng.choice([p[2] for p in catalog.PRODUCTS]),
                    "loyalty_points": rng.randrange(0, 2000),
                },
            },
            "consent": {
                "email": email_consent,
                "email_ts": consent_ts,
                "sms": sms_consent,
                "sms_ts": consent_ts,
                "push": rng.random() < 0.25,
                "suppression": [],  # [(reason, ts)], filled by bounce/unsubscribe/spam events
            },
        }

    def campaign(
        self,
        n: int,
        channel: str,
        status: str,
        created: int,
        send_time: int | None,
        audiences: list[str],
        excluded: list[str],
    ) -> dict:
        theme = catalog.CAMPAIGN_THEMES[n % len(catalog.CAMPAIGN_THEMES)]
        label = {"email": "Email", "sms": "SMS", "mobile_push": "Push"}[channel]
        name = f"{theme} {label} #{n + 1}"
        updated = max(created, send_time or created)
        if send_time is None:
            strategy: dict = {
                "method": "static",
                "datetime": epoch_to_iso(created + 7 * DAY),
                "options": {"is_local": False},
            }
        else:
            strategy = {
                "method": "static",
                "datetime": epoch_to_iso(send_time),
                "options": {"is_local": False},
            }
        tracking = None
        if channel == "email":
            tracking = {
                "add_tracking_params": True,
                "custom_tracking_params": None,
                "is_tracking_clicks": True,
                "is_tracking_opens": True,
            }
        elif channel == "sms":
            tracking = {"add_tracking_params": False, "custom_tracking_params": None}
        return {
            "id": self.ids.ulid(created * 1000),
            "channel": channel,
            "attributes": {
                "name": name,
                "status": status,
                "archived": False,
                "audiences": {"included": audiences, "excluded": excluded},
                "send_options": {"use_smart_sending": True},
                "tracking_options": tracking,
                "send_strategy": strategy,
                "created_at": epoch_to_iso(created),
                "scheduled_at": epoch_to_iso(created + HOUR) if status not in NOT_YET_SCHEDULED else None,
                "updated_at": epoch_to_iso(updated),
                "send_time": epoch_to_iso(send_time) if send_time is not None else None,
            },
        }

    def campaign_message(self, campaign: dict, variant: int, template_id: str | None) -> dict:
        channel = campaign["channel"]
        attrs = campaign["attributes"]
        name = attrs["name"]
        subject = f"{name.split(' #')[0]}: {['ends tonight', 'just for you'][variant % 2]}"
        if channel == "email":
            definition: dict = {
                "channel": "email",
                "label": f"{name} {'AB'[variant]}" if variant else name,
                "content": {
                    "subject": subject,
                    "preview_text": f"Inside: {catalog.STORE_NAME} picks",
                    "from_email": catalog.STORE_FROM_EMAIL,
                    "from_label": catalog.STORE_NAME,
                    "reply_to_email": None,
                    "cc_email": None,
                    "bcc_email": None,
                },
            }
        elif channel == "sms":
            definition = {
                "channel": "sms",
                "content": {
                    "body": f"{catalog.STORE_NAME}: {subject} {catalog.STORE_URL}",
                    "media_url": None,
                },
                "render_options": {
                    "shorten_links": True,
                    "add_org_prefix": True,
                    "add_info_link": True,
                    "add_opt_out_language": False,
                },
            }
        else:
            definition = {
                "channel": "mobile_push",
                "notification_type": "standard",
                "content": {"title": catalog.STORE_NAME, "body": subject, "dynamic_image": None},
                "options": {"on_open": {"type": "open_app"}, "badge": {"display": False}, "play_sound": True},
                "kv_pairs": None,
            }
        send_times = []
        if attrs["send_time"]:
            send_times = [{"datetime": attrs["send_time"], "is_local": False}]
        created = attrs["created_at"]
        return {
            "id": self.ids.ulid(self.data._ts(attrs["created_at"]) * 1000 + variant),
            "campaign_id": campaign["id"],
            "channel": channel,
            "template_id": template_id if channel == "email" else None,
            "attributes": {
                "definition": definition,
                "send_times": send_times,
                "created_at": created,
                "updated_at": attrs["updated_at"],
            },
        }

    def flow(self, n: int, created: int, updated: int, status: str) -> dict:
        base, trigger = catalog.FLOW_BLUEPRINTS[n % len(catalog.FLOW_BLUEPRINTS)]
        name = base if n < len(catalog.FLOW_BLUEPRINTS) else f"{base} {n + 1}"
        return {
            "id": self.ids.short(),
            "attributes": {
                "name": name,
                "status": status,
                "archived": False,
                "created": epoch_to_iso(created),
                "updated": epoch_to_iso(updated),
                "trigger_type": trigger,
            },
        }

    def flow_action(self, flow: dict, kind: str, created: int, status: str, delay_hours: int = 0) -> dict:
        """kind: 'send-email' | 'send-sms' | 'send-mobile-push' | 'time-delay'."""
        action_id = self.ids.numeric()
        if kind == "time-delay":
            unit, value = ("days", delay_hours // 24) if delay_hours % 24 == 0 else ("hours", delay_hours)
            definition: dict = {
                "id": action_id,
                "type": "time-delay",
                "data": {
                    "unit": unit,
                    "value": value,
                    "secondary_value": None,
                    "timezone": "profile",
                    "delay_until_time": None,
                    "delay_until_weekdays": None,
                },
                "links": {"next": None},
            }
        else:
            definition = {"id": action_id, "type": kind, "data": {"status": status}, "links": {"next": None}}
        return {
            "id": action_id,
            "flow_id": flow["id"],
            "kind": kind,
            "delay_hours": delay_hours,
            "attributes": {
                "definition": definition,
                "created": epoch_to_iso(created),
                "updated": epoch_to_iso(created),
            },
        }

    def flow_message(self, flow: dict, action: dict, step: int, template_id: str | None) -> dict:
        channel = {"send-email": "email", "send-sms": "sms", "send-mobile-push": "mobile_push"}[
            action["kind"]
        ]
        flow_name = flow["attributes"]["name"]
        name = f"{flow_name} {'Email' if channel == 'email' else channel.upper()} #{step}"
        message_id = self.ids.short()
        if channel == "email":
            definition: dict = {
                "id": message_id,
                "name": name,
                "from_email": catalog.STORE_FROM_EMAIL,
                "from_label": catalog.STORE_NAME,
                "reply_to_email": None,
                "cc_email": None,
                "bcc_email": None,
                "subject_line": f"{flow_name}: step {step}",
                "preview_text": "A note from us",
                "template_id": template_id,
                "smart_sending_enabled": True,
                "transactional": False,
                "add_tracking_params": False,
                "custom_tracking_params": None,
                "additional_filters": None,
            }
        elif channel == "sms":
            definition = {
                "id": message_id,
                "name": name,
                "body": f"{catalog.STORE_NAME}: {flow_name} {catalog.STORE_URL}",
                "smart_sending_enabled": True,
                "transactional": False,
                "add_tracking_params": False,
                "shorten_links": True,
                "add_org_prefix": True,
                "add_info_link": True,
                "add_opt_out_language": False,
                "include_contact_card": False,
                "custom_tracking_params": None,
                "additional_filters": None,
                "image_id": None,
                "template_id": None,
            }
        else:
            definition = {
                "id": message_id,
                "name": name,
                "title": catalog.STORE_NAME,
                "body": f"{flow_name}: we saved something for you",
                "sound": True,
                "badge": False,
                "on_open": "home",
                "smart_sending_enabled": True,
                "additional_filters": None,
            }
        created = action["attributes"]["created"]
        return {
            "id": message_id,
            "action_id": action["id"],
            "flow_id": flow["id"],
            "channel": channel,
            "template_id": template_id if channel == "email" else None,
            "attributes": {
                "channel": channel,
                "definition": definition,
                "created": created,
                "updated": created,
            },
        }

    # -- the whole account -----------------------------------------------------------------

    def populate(self) -> None:
        data = self.data
        cfg = data.config
        rng = self.rng
        now = int(data.now.timestamp())
        start = now - cfg.days * DAY
        account_start = start - max(cfg.days, 180) * DAY  # the account predates the window

        for name, integration, category in METRICS:
            data.put("metric", self.metric(name, integration, category, account_start))

        default_group = data.put("tag-group", self.tag_group("Default", default=True))
        groups = [default_group]
        if cfg.tags > 3:
            groups.append(data.put("tag-group", self.tag_group("Channels")))
        for n in range(cfg.tags):
            name = catalog.TAG_NAMES[n % len(catalog.TAG_NAMES)]
            if n >= len(catalog.TAG_NAMES):
                name = f"{name} {n // len(catalog.TAG_NAMES) + 1}"
            data.put("tag", self.tag(name, groups[n % len(groups)]["id"]))

        for n in range(cfg.templates):
            created = self._between(account_start, now - DAY)
            data.put("template", self.template(n, created, self._between(created, now)))

        for n in range(cfg.lists):
            created = account_start + n * DAY
            data.put("list", self.list_(n, created, self._between(created, now)))

        for n in range(cfg.forms):
            created = self._between(account_start, start + DAY)
            data.put("form", self.form(n, created, self._between(created, now)))

        # Profiles: most exist before the window, some sign up during it.
        for n in range(cfg.profiles):
            created = (
                self._between(account_start, start)
                if rng.random() < 0.6
                else self._between(start, now - HOUR)
            )
            updated = self._between(created, now)
            data.put("profile", self.profile(n, created, updated))

        list_ids = list(data.resources["list"])
        profile_records = list(data.resources["profile"].values())
        for li, list_id in enumerate(list_ids):
            share = 0.6 if li == 0 else 0.12 + rng.random() * 0.3
            members = data.members.setdefault(list_id, {})
            list_created = data._ts(data.resources["list"][list_id]["attributes"]["created"])
            for profile in profile_records:
                if rng.random() < share:
                    created = data._ts(profile["attributes"]["created"])
                    joined = self._between(max(created, list_created), now - 60)
                    members[profile["id"]] = epoch_to_iso(joined)

        for n in range(cfg.segments):
            created = self._between(account_start, start)
            list_id = list_ids[n % len(list_ids)] if list_ids and n % 2 == 0 else None
            segment = data.put("segment", self.segment(n, created, self._between(created, now), list_id))
            members = data.members.setdefault(segment["id"], {})
            pool = data.members.get(list_id, {}) if list_id else None
            for profile in profile_records:
                if pool is not None and profile["id"] not in pool:
                    continue
                if rng.random() < 0.35:
                    joined = max(data._ts(profile["attributes"]["created"]), created)
                    members[profile["id"]] = epoch_to_iso(self._between(joined, now - 60))

        self._campaigns(start, now, list_ids)
        self._flows(account_start, start, now, list_ids)
        self._tag_links()
        self._events(start, now)

    def _campaigns(self, start: int, now: int, list_ids: list[str]) -> None:
        data = self.data
        cfg = data.config
        templates = list(data.resources["template"])
        segments = list(data.resources["segment"])
        for n, (channel, status) in enumerate(campaign_plan(cfg.campaigns)):
            # Sends, and not-sends whose time passed, are spread over the window in index order.
            send_time: int | None = start + int((n + 0.5) / cfg.campaigns * (now - start - 6 * HOUR))
            send_time += self.rng.randrange(-HOUR, HOUR)
            send_time = min(max(send_time, start + HOUR), now - 2 * HOUR)
            if status == "Sending":
                send_time = now - self._between(HOUR, 2 * HOUR)
            elif status in SENDING_NOW:
                send_time = now - self._between(60, HOUR // 2)
            if status in SCHEDULED_AHEAD:
                created = now - self._between(HOUR, 5 * DAY)
                send_time = now + self._between(DAY, 10 * DAY)
            elif status in NOT_YET_SCHEDULED:
                created = now - self._between(HOUR, 20 * DAY)
                send_time = None
            else:
                created = send_time - self._between(DAY, 10 * DAY)
            audience = [list_ids[n % len(list_ids)]] if list_ids else []
            if channel == "sms" and len(list_ids) > 2:
                audience = [list_ids[2]]
            excluded = [segments[0]] if segments and self.rng.random() < 0.2 else []
            campaign = data.put(
                "campaign", self.campaign(n, channel, status, created, send_time, audience, excluded)
            )
            variants = (
                2 if status == "Variations Sent" or (channel == "email" and self.rng.random() < 0.2) else 1
            )
            for v in range(variants):
                template_id = templates[(n + v) % len(templates)] if templates else None
                data.put("campaign-message", self.campaign_message(campaign, v, template_id))
        self._archive_old_campaigns(now)

    def _archive_old_campaigns(self, now: int) -> None:
        """Archive the oldest third of each channel's finished sends, some days after they went
        out: live accounts archive old campaigns, and the API then hides them by default."""
        data = self.data
        by_channel: dict[str, list[dict]] = {}
        for campaign in data.resources["campaign"].values():
            if campaign["attributes"]["status"] in ("Sent", "Variations Sent"):
                by_channel.setdefault(campaign["channel"], []).append(campaign)
        for campaigns in by_channel.values():
            if len(campaigns) < 2:
                continue
            campaigns.sort(key=lambda c: c["attributes"]["send_time"])
            for campaign in campaigns[: (len(campaigns) + 1) // 3]:
                attrs = campaign["attributes"]
                sent = data._ts(attrs["send_time"])
                attrs["archived"] = True
                archived_at = self._between(min(sent + 7 * DAY, now - 2 * HOUR), now - HOUR)
                attrs["updated_at"] = epoch_to_iso(archived_at)

    def _flows(self, account_start: int, start: int, now: int, list_ids: list[str]) -> None:
        data = self.data
        cfg = data.config
        templates = list(data.resources["template"])
        for n in range(cfg.flows):
            status = "live" if n < 2 or self.rng.random() < 0.75 else self.rng.choice(["draft", "manual"])
            # The last flow ran for part of the window and was then archived (which stops its
            # sends: the sandbox shows it as a draft); its history stays.
            archived = cfg.flows >= 2 and n == cfg.flows - 1
            if archived:
                status = "draft"
            created = self._between(account_start, start)
            updated = self._between(created, now)
            if archived:
                updated = self._between(start + (now - start) // 3, start + 2 * (now - start) // 3)
            flow = data.put("flow", self.flow(n, created, updated, status))
            if archived:
                flow["attributes"]["archived"] = True
                flow["sent_until"] = updated
            if flow["attributes"]["trigger_type"] == "Added to List" and list_ids:
                flow["trigger_list"] = list_ids[0]
            steps = self.rng.randint(2, 4)
            step = 0
            for i in range(steps):
                if i > 0:
                    hours = self.rng.choice([4, 24, 48, 72])
                    data.put("flow-action", self.flow_action(flow, "time-delay", created, status, hours))
                kind = "send-email"
                if i > 0 and self.rng.random() < 0.3:
                    kind = self._weighted([("send-sms", 0.7), ("send-mobile-push", 0.3)])
                action = data.put("flow-action", self.flow_action(flow, kind, created, status))
                step += 1
                template_id = templates[(n + i) % len(templates)] if templates else None
                data.put("flow-message", self.flow_message(flow, action, step, template_id))

    def _tag_links(self) -> None:
        data = self.data
        tags = list(data.resources["tag"])
        if not tags:
            return
        for kind in ("campaign", "flow", "list", "segment"):
            for resource_id in data.resources[kind]:
                if self.rng.random() < 0.6:
                    count = self.rng.randint(1, min(2, len(tags)))
                    data.tag_links[(kind, resource_id)] = self.rng.sample(tags, count)

    # -- events ------------------------------------------------------------------------------

    def _events(self, start: int, now: int) -> None:
        data = self.data
        cfg = data.config
        rng = self.rng
        total = cfg.events
        metric = self.primary_metrics()
        second_order_metric = data.metric_named(kc.PLACED_ORDER, "API")
        ts_c, metric_c, profile_c = array("q"), array("h"), array("i")
        msg_c, value_c, attr_c, aux_c = array("i"), array("d"), array("i"), array("i")
        t_add, m_add, p_add = ts_c.append, metric_c.append, profile_c.append
        g_add, v_add, a_add, x_add = msg_c.append, value_c.append, attr_c.append, aux_c.append
        pidx = data.profile_index
        products = catalog.PRODUCTS
        n_products = len(products)
        consent = {p["id"]: p["consent"] for p in data.resources["profile"].values()}

        def emit(ts, m, p, g=NONE, v=0.0, a=NONE, x=NONE):
            t_add(ts)
            m_add(m)
            p_add(p)
            g_add(g)
            v_add(v)
            a_add(a)
            x_add(x)

        def order(ts, p, attributed=NONE):
            x = rng.randrange(n_products)
            quantity = 1 if rng.random() < 0.7 else rng.randint(2, 3)
            placed = second_order_metric if rng.random() < SECOND_ORDER_SHARE else metric[kc.PLACED_ORDER]
            emit(ts, placed, p, NONE, products[x][3] * quantity, attributed, x)

        channel_metrics = {
            ch: {role: (metric[name] if name else None) for role, name in roles.items()}
            for ch, roles in kc.CHANNEL_METRICS.items()
        }
        n_failures = len(SMS_FAILURE_TYPES)

        def send(message_index: int, channel: str, profile_id: str, ts: int) -> None:
            """One message to one profile, and everything that follows from it."""
            p = pidx[profile_id]
            ms = channel_metrics[channel]
            bounce, open_p, click_p, unsub_p, spam_p, conv_click, conv = BEHAVIOUR[channel]
            t = ts + rng.randrange(0, 900)
            if t >= now:
                return
            if rng.random() < bounce:
                if ms["bounced"] is not None:
                    emit(t, ms["bounced"], p, message_index)
                else:  # SMS does not bounce: it fails to deliver, for a reason
                    emit(t, ms["failed"], p, message_index, 0.0, NONE, rng.randrange(n_failures))
                if channel == "email" and rng.random() < 0.5:
                    consent[profile_id]["suppression"].append(("HARD_BOUNCE", t))
                return
            emit(t, ms["received"], p, message_index)
            engaged_at = t
            clicked = False
            if ms["opened"] is not None and rng.random() < open_p:
                engaged_at = t + int(rng.expovariate(1 / (6 * HOUR)))
                opens = 1 + (rng.random() < 0.3)
                for k in range(opens):
                    ot = engaged_at + k * rng.randrange(60, 2 * DAY)
                    if ot < now:
                        emit(ot, ms["opened"], p, message_index)
                if ms["clicked"] is not None and rng.random() < click_p and engaged_at + 60 < now:
                    clicked = True
                    emit(
                        engaged_at + rng.randrange(5, 60),
                        ms["clicked"],
                        p,
                        message_index,
                        0.0,
                        NONE,
                        rng.randrange(n_products),
                    )
            elif ms["opened"] is None and ms["clicked"] is not None and rng.random() < click_p:
                engaged_at = t + int(rng.expovariate(1 / HOUR))
                if engaged_at < now:
                    clicked = True
                    emit(engaged_at, ms["clicked"], p, message_index, 0.0, NONE, rng.randrange(n_products))
            if ms["unsubscribed"] is not None and rng.random() < unsub_p:
                ut = engaged_at + rng.randrange(10, HOUR)
                if ut < now:
                    emit(ut, ms["unsubscribed"], p, message_index)
                    c = consent[profile_id]
                    if channel == "email":
                        c["email"], c["email_ts"] = "UNSUBSCRIBED", ut
                        c["suppression"].append(("UNSUBSCRIBE", ut))
                    else:
                        c["sms"], c["sms_ts"] = "UNSUBSCRIBED", ut
            if ms["spam"] is not None and rng.random() < spam_p:
                st = engaged_at + rng.randrange(10, HOUR)
                if st < now:
                    emit(st, ms["spam"], p, message_index)
                    consent[profile_id]["suppression"].append(("SPAM_COMPLAINT", st))
            if rng.random() < (conv_click if clicked else conv):
                window = kc.ATTRIBUTION_WINDOW_DAYS * DAY
                # Within the attribution window of the receipt, after the click if any.
                after = engaged_at if clicked and engaged_at < t + window - 600 else t
                ot = after + rng.randrange(300, t + window - after)
                if ot < now:
                    order(ot, p, message_index)

        message_budget = int(total * 0.5)
        campaign_budget = message_budget * (0.55 if data.resources["flow-message"] else 1.0)
        flow_budget = message_budget - campaign_budget

        # Campaign sends: each sent (or sending) campaign reaches consenting members of its
        # audience; the other statuses never went out and have no events.
        sent = [
            c for c in data.resources["campaign"].values() if c["attributes"]["status"] in kc.SENT_STATUSES
        ]
        for campaign in sent:
            channel = campaign["channel"]
            send_ts = data._ts(campaign["attributes"]["send_time"])
            excluded: set[str] = set()
            for group in campaign["attributes"]["audiences"]["excluded"] or []:
                excluded |= data.members.get(group, {}).keys()
            eligible = []
            for group in campaign["attributes"]["audiences"]["included"]:
                for profile_id, joined in data.members.get(group, {}).items():
                    if profile_id in excluded or data._ts(joined) > send_ts:
                        continue
                    if self._reachable(data.resources["profile"][profile_id], consent[profile_id], channel):
                        eligible.append(profile_id)
            eligible = sorted(set(eligible), key=pidx.__getitem__)
            cap = int(campaign_budget / max(1, len(sent)) / EVENTS_PER_SEND[channel])
            if len(eligible) > cap:
                eligible = rng.sample(eligible, cap)
            messages = data.campaign_messages_of(campaign["id"])
            for k, profile_id in enumerate(eligible):
                message = messages[k % len(messages)]
                send(data.message_index[message["id"]], channel, profile_id, send_ts)

        # Flow sends: live flows trigger for profiles through the window and walk their actions;
        # an archived flow did so until it was archived.
        live = [
            f
            for f in data.resources["flow"].values()
            if f["attributes"]["status"] == "live" or "sent_until" in f
        ]
        all_profiles = list(data.resources["profile"])
        for flow in live:
            actions = data.flow_actions_of(flow["id"])
            sends = sum(1 for a in actions if a["kind"] != "time-delay")
            if not sends or not all_profiles:
                continue
            per_trigger = sum(
                EVENTS_PER_SEND[data.flow_messages_of(a["id"])[0]["channel"]]
                for a in actions
                if a["kind"] != "time-delay"
            )
            triggers = int(flow_budget / max(1, len(live)) / per_trigger)
            trigger_list = flow.get("trigger_list")
            pool = list(data.members.get(trigger_list, {})) if trigger_list else all_profiles
            if not pool:
                continue
            until = min(flow.get("sent_until", now), now)
            for _ in range(triggers):
                profile_id = rng.choice(pool)
                t = self._between(start, until - HOUR)
                for action in actions:
                    if action["kind"] == "time-delay":
                        t += action["delay_hours"] * HOUR
                        continue
                    message = data.flow_messages_of(action["id"])[0]
                    channel = message["channel"]
                    if t >= until:
                        break
                    if self._reachable(data.resources["profile"][profile_id], consent[profile_id], channel):
                        send(data.message_index[message["id"]], channel, profile_id, t)

        # List subscriptions inside the window produce Subscribed to List events.
        list_ids = list(data.resources["list"])
        sub_budget = int(total * 0.05)
        for li, list_id in enumerate(list_ids):
            for profile_id, joined in data.members.get(list_id, {}).items():
                jt = data._ts(joined)
                if jt >= start and len(ts_c) < message_budget + sub_budget:
                    emit(jt, metric[kc.SUBSCRIBED_TO_LIST], pidx[profile_id], NONE, 0.0, NONE, li)

        # Forms: views of live forms, a share of them submitted.
        live_forms = [
            i
            for i, form_id in enumerate(data.form_ids)
            if data.resources["form"][form_id]["attributes"]["status"] == "live"
        ]
        if live_forms and all_profiles:
            for _ in range(int(total * 0.04)):
                f = rng.choice(live_forms)
                p = pidx[rng.choice(all_profiles)]
                t = self._between(start, now - 60)
                emit(t, metric[kc.VIEWED_FORM], p, NONE, 0.0, NONE, f)
                if rng.random() < 0.12:
                    emit(t + rng.randrange(5, 120), metric[kc.SUBMITTED_FORM], p, NONE, 0.0, NONE, f)

        # Orders nobody gets credit for.
        if all_profiles:
            for _ in range(int(total * 0.04)):
                order(self._between(start, now - 60), pidx[rng.choice(all_profiles)])

        # Browsing fills the rest, or generation trims from the end if sends overshot.
        funnel = [kc.ACTIVE_ON_SITE, kc.VIEWED_PRODUCT, kc.ADDED_TO_CART, kc.STARTED_CHECKOUT]
        funnel_ids = [metric[name] for name in funnel]
        while len(ts_c) < total and all_profiles:
            p = pidx[rng.choice(all_profiles)]
            t = self._between(start, now - 600)
            x = rng.randrange(n_products)
            price = products[x][3]
            depth = 1 + (rng.random() < 0.6) + (rng.random() < 0.25) + (rng.random() < 0.1)
            for k in range(depth):
                if len(ts_c) >= total:
                    break
                emit(
                    t + k * rng.randrange(20, 240),
                    funnel_ids[k],
                    p,
                    NONE,
                    0.0 if k == 0 else price,
                    NONE,
                    NONE if k == 0 else x,
                )
        if len(ts_c) > total:
            for column in (ts_c, metric_c, profile_c, msg_c, value_c, attr_c, aux_c):
                del column[total:]

        data.events.load_unsorted((ts_c, metric_c, profile_c, msg_c, value_c, attr_c, aux_c))
        for profile_id, c in consent.items():
            data.resources["profile"][profile_id]["consent"] = c
        data.recount_profiles()

    def primary_metrics(self) -> dict[str, int]:
        """Metric index per name; where integrations share a name, the first one METRICS lists
        (Shopify's "Placed Order")."""
        primary: dict[str, int] = {}
        for name, integration, _ in METRICS:
            if name not in primary and name in self.data.metrics_named:
                primary[name] = self.data.metric_named(name, integration)
        return primary

    @staticmethod
    def _reachable(profile: dict, consent: dict, channel: str) -> bool:
        if channel == "email":
            return consent["email"] == "SUBSCRIBED" and profile["attributes"]["email"] is not None
        if channel == "sms":
            return consent["sms"] == "SUBSCRIBED" and profile["attributes"]["phone_number"]
        return bool(consent["push"])

    # -- later additions (mutation helpers) ------------------------------------------------------

    def new_record(self, kind: str, at: int) -> dict:
        """A fresh record of `kind` created at `at`, as a user or integration would add it."""
        data = self.data
        n = len(data.resources[kind]) + data.added.get(kind, 0)
        data.added[kind] = data.added.get(kind, 0) + 1
        if kind == "profile":
            return self.profile(n + 1000, at, at)
        if kind == "list":
            return self.list_(n, at, at)
        if kind == "segment":
            lists = list(data.resources["list"])
            return self.segment(n, at, at, lists[0] if lists else None)
        if kind == "template":
            return self.template(n, at, at)
        if kind == "form":
            return self.form(n, at, at)
        if kind == "tag-group":
            return self.tag_group(f"Group {n + 1}")
        if kind == "tag":
            groups = list(data.resources["tag-group"])
            return self.tag(f"Tag {n + 1}", groups[0] if groups else "")
        if kind == "metric":
            return self.metric(f"Custom Metric {n + 1}", "API", "API", at)
        if kind == "campaign":
            lists = list(data.resources["list"])
            return self.campaign(n, "email", "Draft", at, None, lists[:1], [])
        if kind == "flow":
            return self.flow(n, at, at, "draft")
        raise ValueError(f"cannot add resources of type {kind!r} directly")

    def site_event(self, at: int) -> tuple[int, int, int, float, int, int]:
        """(ts, metric, profile, value, attr, aux) of one new event, for `add_events`."""
        data = self.data
        metric = self.primary_metrics()
        rng = self.rng
        profile = data.profile_index[rng.choice(list(data.resources["profile"]))]
        x = rng.randrange(len(catalog.PRODUCTS))
        kind = self._weighted(
            [
                (kc.ACTIVE_ON_SITE, 0.4),
                (kc.VIEWED_PRODUCT, 0.3),
                (kc.ADDED_TO_CART, 0.12),
                (kc.STARTED_CHECKOUT, 0.08),
                (kc.PLACED_ORDER, 0.1),
            ]
        )
        if kind == kc.ACTIVE_ON_SITE:
            return at, metric[kind], profile, 0.0, NONE, NONE
        price = catalog.PRODUCTS[x][3]
        if kind == kc.PLACED_ORDER:
            price *= 1 if rng.random() < 0.7 else rng.randint(2, 3)
        return at, metric[kind], profile, price, NONE, x
