"""Compact, time-sorted event storage: parallel typed arrays instead of a dict per event.

A million events as dicts would cost gigabytes; as eight arrays they cost ~50 MB, and the
JSON for an event is only built when a page containing it is served. Events stay sorted by
(timestamp, sequence number), so datetime filters and cursors are binary searches.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

NONE = -1  # "no message / no attribution / no aux reference" in the int columns


class EventStore:
    def __init__(self) -> None:
        self.ts = array("q")  # epoch seconds, ascending
        self.num = array("q")  # sequence number; the event id is derived from it
        self.metric = array("h")  # index into SandboxData.metric_ids
        self.profile = array("i")  # index into SandboxData.profile_ids
        self.msg = array("i")  # index into SandboxData.messages, or NONE
        self.value = array("d")  # $value (Placed Order, Viewed Product price ...), 0.0 if none
        self.attr = array("i")  # attributed message index for conversions, or NONE
        self.aux = array("i")  # form / list / product index, depending on the metric
        self.deleted: set[int] = set()  # nums removed from the API
        self.next_num = 1

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def columns(self) -> tuple[array, ...]:
        return (self.ts, self.num, self.metric, self.profile, self.msg, self.value, self.attr, self.aux)

    def load_unsorted(self, rows: tuple[array, ...]) -> None:
        """Bulk load generated columns (ts, metric, profile, msg, value, attr, aux), sorting by
        time once and numbering events in time order, as Klaviyo's ids grow with time."""
        ts, metric, profile, msg, value, attr, aux = rows
        order = sorted(range(len(ts)), key=ts.__getitem__)
        self.ts = array("q", [ts[i] for i in order])
        self.metric = array("h", [metric[i] for i in order])
        self.profile = array("i", [profile[i] for i in order])
        self.msg = array("i", [msg[i] for i in order])
        self.value = array("d", [value[i] for i in order])
        self.attr = array("i", [attr[i] for i in order])
        self.aux = array("i", [aux[i] for i in order])
        self.num = array("q", range(self.next_num, self.next_num + len(order)))
        self.next_num += len(order)

    def insert(
        self,
        ts: int,
        metric: int,
        profile: int,
        msg: int = NONE,
        value: float = 0.0,
        attr: int = NONE,
        aux: int = NONE,
    ) -> int:
        """Add one event in time order; a new event sorts after existing ones at the same second."""
        num = self.next_num
        self.next_num += 1
        i = bisect_right(self.ts, ts)
        for column, item in zip(self.columns, (ts, num, metric, profile, msg, value, attr, aux), strict=True):
            column.insert(i, item)
        return num

    def index_after(self, ts: int, num: int) -> int:
        """Position of the first event strictly after (ts, num) in storage order."""
        i = bisect_left(self.ts, ts)
        n = len(self.ts)
        while i < n and self.ts[i] == ts and self.num[i] <= num:
            i += 1
        return i

    def index_before(self, ts: int, num: int) -> int:
        """One past the last event strictly before (ts, num) in storage order."""
        i = bisect_right(self.ts, ts)
        while i > 0 and self.ts[i - 1] == ts and self.num[i - 1] >= num:
            i -= 1
        return i

    def find(self, num: int, ts: int | None = None) -> int | None:
        """Storage index of event `num` (scan; only used by single-event mutations)."""
        if ts is not None:
            i = bisect_left(self.ts, ts)
            j = bisect_right(self.ts, ts)
            for k in range(i, j):
                if self.num[k] == num:
                    return k
            return None
        try:
            return self.num.index(num)
        except ValueError:
            return None
