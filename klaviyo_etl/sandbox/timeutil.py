"""ISO 8601 in Klaviyo's shape (`2026-05-01T10:00:00+00:00`) and back."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).isoformat()


def parse(value: str) -> float:
    """Epoch seconds of an ISO datetime or date; naive values are UTC. Raises ValueError."""
    text = value.strip().replace(" ", "+")  # an unescaped '+' in a query string arrives as ' '
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
