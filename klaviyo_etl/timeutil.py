"""Time helpers, in one place: the clock, and reading and writing ISO 8601.

Everything we store or compare is in UTC; a value without a zone is read as UTC.

- `utcnow()` is the clock as a datetime; `utcnow_iso()` is the same as text, for the
  `synced_at` / `started_at` columns; `log_stamp()` starts a line of a log (cron's).
- `parse_time()` reads a timestamp we rely on (raises on a bad one);
  `parse_time_or_none()` reads one from the bookkeeping tables, where empty or bad is "never".
- `stored_time()` puts a timestamp Klaviyo sent into the one shape the tables hold, so that
  text comparisons and prefixes (days, hours) read it right.
- `beyond_tomorrow()` says whether a date the user gave is in the future wherever they are.
- `epoch_to_iso()` / `iso_to_epoch()` are the sandbox's: it keeps times as epoch seconds
  and writes them in Klaviyo's shape (`2026-05-01T10:00:00+00:00`).
"""

from __future__ import annotations

import datetime as dt
import re
import time


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def beyond_tomorrow(when: dt.date | dt.datetime) -> bool:
    """Whether `when` (a day, or a moment read as UTC) is more than a day past now in UTC: in
    the future even where clocks are furthest ahead, so a user's own "today" is never refused."""
    now = utcnow()
    if isinstance(when, dt.datetime):
        return when > now + dt.timedelta(days=1)
    return when > now.date() + dt.timedelta(days=1)


def utcnow_iso() -> str:
    return utcnow().isoformat(timespec="microseconds")


def log_stamp() -> str:
    """The machine's local time to the second, as a log line starts: cron fires, and its
    user reads the log, in local time."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(value: str | dt.datetime) -> dt.datetime:
    """An ISO 8601 timestamp (or a datetime) as an aware datetime; naive means UTC."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


_STR_SHAPE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00\Z")


def stored_time(value: object) -> object:
    """An event's `datetime` as the tables hold it: ISO 8601 with a "T", in UTC, "+00:00"
    (`2026-06-23T00:15:23.918411+00:00`; the fraction only when Klaviyo sent one).

    Klaviyo sends some as Python's `str()` of the time, space-separated
    (`2026-06-23 00:15:23.918411+00:00`, LIVE_BEHAVIOUR.md §9). Stored as sent, the space
    sorts below the "T" of every bound a report compares with, so such an event fell out of
    its day's range, and its hour (`substr(datetime, 1, 13)`) matched no hour. A value of
    another type, or text that is not a time, is kept as it is."""
    if not isinstance(value, str) or (len(value) == 25 and value[10] == "T" and value.endswith("+00:00")):
        return value
    if _STR_SHAPE.match(value):  # the str() shape in UTC: ~0.5 µs instead of ~1.6 to parse
        return f"{value[:10]}T{value[11:]}"
    try:
        return parse_time(value).astimezone(dt.UTC).isoformat()
    except ValueError:
        return value


def parse_time_or_none(text: str | None) -> dt.datetime | None:
    """Like `parse_time`, but None for an empty or unreadable value."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# epoch_to_iso is the sandbox's hot path (three per served event): the text of each hour
# is made once by datetime, and minutes and seconds come from a table.
_HOUR_TEXT: dict[int, str] = {}  # epoch hour -> "YYYY-MM-DDTHH:"
_MINUTE_SECOND_TEXT = [f"{m:02d}:{s:02d}+00:00" for m in range(60) for s in range(60)]


def epoch_to_iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 in UTC, to the second."""
    hour, second = divmod(int(ts), 3600)
    text = _HOUR_TEXT.get(hour)
    if text is None:
        if len(_HOUR_TEXT) >= 100_000:  # ~11 years of hours; a bound, not a working set
            _HOUR_TEXT.clear()
        text = _HOUR_TEXT[hour] = dt.datetime.fromtimestamp(hour * 3600, dt.UTC).isoformat()[:14]
    return text + _MINUTE_SECOND_TEXT[second]


def iso_to_epoch(value: str) -> float:
    """Epoch seconds of an ISO datetime or date; naive values are UTC. Raises ValueError."""
    text = value.strip().replace(" ", "+")  # an unescaped '+' in a query string arrives as ' '
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()
