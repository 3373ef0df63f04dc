"""Stream names and how they relate: cheap to import (the CLI's help text and the config need them)."""

from __future__ import annotations

from klaviyo_etl.errors import UsageError

# Streams written by another stream's requests (included resources), and what must run first.
ALIASES = {"campaign_messages": "campaigns", "flow_actions": "flows"}
# (When both are in the same run: `sync list_members` alone reads the lists already stored.)
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "list_members": ("lists",),
    "segment_members": ("segments",),
    "flow_messages": ("flows",),
    # Klaviyo's figures are asked for every stored campaign and flow of every channel, with
    # the conversion metric our figures count (by default the "Placed Order" with the most
    # stored events, so the events come first).
    "reports": ("metrics", "events", "campaigns", "flows"),
}
STREAM_NAMES = [
    "metrics",
    "events",
    "profiles",
    "lists",
    "list_members",
    "segments",
    "segment_members",
    "campaigns",
    "campaign_messages",
    "flows",
    "flow_actions",
    "flow_messages",
    "forms",
    "templates",
    "tags",
    "reports",
    "accounts",
]


def resolve(names: list[str] | None) -> list[str]:
    """Validate stream names and map aliases to the streams that write them, in order."""
    if not names or names == ["all"]:
        names = STREAM_NAMES
    unknown = [n for n in names if n not in STREAM_NAMES and n != "all"]
    if unknown:
        raise UsageError(
            f"unknown stream {', '.join(n or repr(n) for n in unknown)}; valid streams: all,"
            f" {', '.join(STREAM_NAMES)}"
        )
    out: list[str] = []
    for n in names:
        real = ALIASES.get(n, n)
        if n != "all" and real not in out:
            out.append(real)
    return out
