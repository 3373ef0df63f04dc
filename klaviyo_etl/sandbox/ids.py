"""Identifiers shaped like Klaviyo's, drawn from a seeded generator so a seed gives the same ids.

Klaviyo mixes several id styles: ULIDs for profiles and campaigns, six-character codes for
metrics, lists and flows, numeric ids for flow actions, UUIDs for tags, and eleven-character
base62 ids for events. Using the same shapes keeps the sync honest about treating ids as
opaque strings.
"""

from __future__ import annotations

import random
import uuid

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

# Event ids are a bijection of the event's sequence number, so they need no storage.
_EVENT_SPACE = 62**11
_EVENT_MUL = 0x5DEECE66D1  # odd and not a multiple of 31: invertible modulo 62**11
_EVENT_ADD = 0x2545F4914F6CDD1D % _EVENT_SPACE
_EVENT_INV = pow(_EVENT_MUL, -1, _EVENT_SPACE)


_PAIRS = [a + b for a in BASE62 for b in BASE62]  # two base62 digits per lookup


def event_id(num: int) -> str:
    x = (num * _EVENT_MUL + _EVENT_ADD) % _EVENT_SPACE
    x, r1 = divmod(x, 3844)
    x, r2 = divmod(x, 3844)
    x, r3 = divmod(x, 3844)
    x, r4 = divmod(x, 3844)
    x, r5 = divmod(x, 3844)
    return BASE62[x] + _PAIRS[r5] + _PAIRS[r4] + _PAIRS[r3] + _PAIRS[r2] + _PAIRS[r1]


def event_num(event_id_: str) -> int | None:
    """Inverse of `event_id`; None for strings that are not sandbox event ids."""
    if len(event_id_) != 11:
        return None
    x = 0
    for ch in event_id_:
        i = BASE62.find(ch)
        if i < 0:
            return None
        x = x * 62 + i
    return ((x - _EVENT_ADD) * _EVENT_INV) % _EVENT_SPACE


# The UUID's version (1) and RFC 4122 variant bits, cleared and set in one step each.
_UUID_KEEP = ((1 << 128) - 1) & ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x1000 << 64) | (0x8000 << 48)


def event_uuid(num: int) -> str:
    """A version-1-shaped UUID derived from the event number (Klaviyo's are time-based)."""
    x = ((num * 0x9E3779B97F4A7C15F39CC0605CEDC835 + 0x1234567) & _UUID_KEEP) | _UUID_SET
    h = x.to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class IdFactory:
    """Seeded id source that never hands out the same id twice."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()
        self.next_numeric = 70_000_000 + rng.randrange(1_000_000)

    def _unique(self, make) -> str:
        while True:
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value

    def ulid(self, ms: int) -> str:
        def make() -> str:
            x = (ms << 80) | self.rng.getrandbits(80)
            return "".join(CROCKFORD[(x >> (5 * i)) & 31] for i in reversed(range(26)))

        return self._unique(make)

    def short(self) -> str:
        return self._unique(lambda: "".join(self.rng.choice(_ALNUM) for _ in range(6)))

    def numeric(self) -> str:
        self.next_numeric += 1 + self.rng.randrange(50)
        return self._unique(lambda: str(self.next_numeric))

    def uuid4(self) -> str:
        return self._unique(lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))
