"""The sandbox account: a generated `AccountStore`, plus helpers to change it.

Tests use the mutation helpers to make "Klaviyo" change between two syncs (new profiles, an
edited campaign, a deleted list, late-arriving events) and then check that the sync noticed.
Every helper bumps the `updated`/`updated_at` timestamp the way Klaviyo does, from a clock
(`data.now`) that tests may move forward.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

from klaviyo_etl import conventions as kc
from klaviyo_etl.sandbox.config import SandboxConfig
from klaviyo_etl.sandbox.events import NONE
from klaviyo_etl.sandbox.generate import Generator
from klaviyo_etl.sandbox.ids import event_id, event_num
from klaviyo_etl.sandbox.store import AccountStore
from klaviyo_etl.timeutil import epoch_to_iso

# The attribute Klaviyo bumps when a resource changes (None: the type has no such attribute).
UPDATED_FIELD = {
    "metric": "updated",
    "profile": "updated",
    "list": "updated",
    "segment": "updated",
    "campaign": "updated_at",
    "campaign-message": "updated_at",
    "flow": "updated",
    "flow-action": "updated",
    "flow-message": "updated",
    "form": "updated_at",
    "template": "updated",
    "tag": None,
    "tag-group": None,
}
# The attribute `touch` edits, so a change is visible in the payload and not only in the stamp.
TOUCH_FIELD = {
    "metric": "name",
    "list": "name",
    "segment": "name",
    "campaign": "name",
    "flow": "name",
    "form": "name",
    "template": "name",
    "tag": "name",
    "tag-group": "name",
}


class SandboxData(AccountStore):
    """A generated account and the helpers that change it, as a live account changes."""

    def __init__(self, config: SandboxConfig):
        super().__init__(config)
        self._generator = Generator(self, random.Random(config.seed))
        # How far the server's clock (its `Date` header) runs from the local one; tests set
        # it to play a server whose clock disagrees with the machine running the sync.
        self.clock_skew = timedelta(0)

    def clock(self) -> float:
        """The server's clock as epoch seconds: the local clock plus `clock_skew`."""
        return time.time() + self.clock_skew.total_seconds()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def generate(cls, config: SandboxConfig | None = None) -> SandboxData:
        """A complete account; the same config (seed and `now`) gives the same account."""
        data = cls(config or SandboxConfig())
        with data.lock:
            data._generator.populate()
            data._last_stamp = int(data.now.timestamp())
        return data

    # -- mutations -----------------------------------------------------------------------------

    def add(self, kind: str, n: int = 1) -> list[str]:
        """Create `n` new resources of `kind` now (events: see `add_events`)."""
        if kind == "event":
            return self.add_events(n)
        with self.lock:
            created = []
            for _ in range(n):
                record = self._generator.new_record(kind, self.stamp())
                if kind == "profile":
                    record["attributes"]["last_event_date"] = None
                self.put(kind, record)
                created.append(record["id"])
            return created

    def touch(self, kind: str, resource_id: str) -> None:
        """Edit one attribute of a resource and bump its updated timestamp."""
        with self.lock:
            record = self._require(kind, resource_id)
            attrs = record["attributes"]
            stamp = self.stamp()
            if kind == "profile":
                props = dict(attrs.get("properties") or {})
                props["touched"] = props.get("touched", 0) + 1
                attrs["properties"] = props
            elif kind in ("campaign-message",):
                attrs["definition"] = {**attrs["definition"], "label": f"edited at {epoch_to_iso(stamp)}"}
            elif kind in ("flow-action", "flow-message"):
                attrs["definition"] = {**attrs["definition"]}
            else:
                field = TOUCH_FIELD[kind]
                base = attrs[field].split(" (edited")[0]
                attrs[field] = f"{base} (edited {stamp})"
            field = UPDATED_FIELD.get(kind)
            if field:
                attrs[field] = epoch_to_iso(stamp)
            self.version += 1

    def delete(self, kind: str, resource_id: str) -> None:
        """Remove a resource from the API, with what Klaviyo removes along with it."""
        with self.lock:
            if kind == "event":
                num = event_num(resource_id)
                if num is None or num >= self.events.next_num or num in self.events.deleted:
                    raise KeyError(f"no event {resource_id}")
                self.events.deleted.add(num)
                self.version += 1
                return
            self._require(kind, resource_id)
            del self.resources[kind][resource_id]
            if kind == "profile":  # Klaviyo deletes a profile's events with it
                self._delete_events_of(resource_id)
                for members in self.members.values():
                    members.pop(resource_id, None)
            elif kind in ("list", "segment"):
                self.members.pop(resource_id, None)
            elif kind == "campaign":
                for message in self.campaign_messages_of(resource_id):
                    del self.resources["campaign-message"][message["id"]]
            elif kind == "flow":
                for action in self.flow_actions_of(resource_id):
                    self.delete("flow-action", action["id"])
            elif kind == "flow-action":
                for message in self.flow_messages_of(resource_id):
                    del self.resources["flow-message"][message["id"]]
            elif kind == "tag-group":
                for tag in [t for t in self.resources["tag"].values() if t["tag_group_id"] == resource_id]:
                    del self.resources["tag"][tag["id"]]
            self.tag_links.pop((kind, resource_id), None)
            self.version += 1

    def forget_profile(self, profile_id: str) -> int:
        """A data-privacy deletion: the profile, its memberships and every event of it leave
        the API (as `delete` does). Returns the number of events removed."""
        with self.lock:
            before = len(self.events.deleted)
            self.delete("profile", profile_id)
            return len(self.events.deleted) - before

    def _delete_events_of(self, profile_id: str) -> None:
        index = self.profile_index[profile_id]
        events = self.events
        events.deleted.update(n for n, p in zip(events.num, events.profile, strict=True) if p == index)

    def add_events(self, n: int, start: datetime | None = None, end: datetime | None = None) -> list[str]:
        """Record `n` new site/commerce events dated uniformly in [start, end] (default: the
        hour before `now`); a past range simulates events that arrive late."""
        with self.lock:
            now_ts = int(self.now.timestamp())
            lo = int(start.timestamp()) if start else now_ts - 3600
            hi = int(end.timestamp()) if end else now_ts
            rng = self._generator.rng
            placed = set(self.metrics_named.get(kc.PLACED_ORDER, []))
            created = []
            for _ in range(n):
                at = lo if hi <= lo else rng.randrange(lo, hi + 1)
                ts, metric, profile, value, attr, aux = self._generator.site_event(at)
                num = self.events.insert(ts, metric, profile, NONE, value, attr, aux)
                self.profile_last_ts[profile] = max(self.profile_last_ts[profile], ts)
                if metric in placed:
                    self.profile_orders[profile] += 1
                    self.profile_revenue[profile] += value
                created.append(event_id(num))
            self.version += 1
            return created

    def add_received(self, message_id: str, profile_ids: list[str], at: datetime) -> list[str]:
        """Record that a campaign or flow message reached `profile_ids` at `at` (its channel's
        received metric), so a test need not hope the generated sends fall in some hours."""
        with self.lock:
            mi = self.message_index[message_id]
            name = kc.CHANNEL_METRICS[self.messages[mi].channel]["received"]
            metric = self.metrics_named[name][0]
            ts = int(at.timestamp())
            created = []
            for profile_id in profile_ids:
                p = self.profile_index[profile_id]
                created.append(event_id(self.events.insert(ts, metric, p, mi)))
                self.profile_last_ts[p] = max(self.profile_last_ts[p], ts)
            self.version += 1
            return created

    def add_member(self, group_id: str, profile_id: str, joined_at: datetime | None = None) -> None:
        """Add a profile to a list or segment, joined now unless `joined_at` says otherwise."""
        with self.lock:
            if group_id not in self.members:
                raise KeyError(f"no list or segment {group_id}")
            self._require("profile", profile_id)
            when = int(joined_at.timestamp()) if joined_at else self.stamp()
            self.members[group_id][profile_id] = epoch_to_iso(when)
            self._bump_group(group_id)

    def remove_member(self, group_id: str, profile_id: str) -> None:
        with self.lock:
            if group_id not in self.members or profile_id not in self.members[group_id]:
                raise KeyError(f"{profile_id} is not a member of {group_id}")
            del self.members[group_id][profile_id]
            self._bump_group(group_id)

    def _bump_group(self, group_id: str) -> None:
        self.version += 1

    def _require(self, kind: str, resource_id: str) -> dict:
        if kind not in self.resources:
            raise KeyError(f"unknown resource type {kind!r}")
        record = self.resources[kind].get(resource_id)
        if record is None:
            raise KeyError(f"no {kind} {resource_id}")
        return record
