"""Python's cycle collector, run less often during a sync.

A page of 1,000 events becomes 1,000 row tuples, and CPython's collector walks the young
objects every 700 container allocations, then every 10th time the next generation, and now
and then the whole heap: every module, and the load's rollups folded so far. A first load of
200,000 events ran 397 young collections, 36 of the middle generation and 3 full ones: 0.20 s
of CPU (1 us an event, issue 12). During a sync the youngest generation is collected every
`YOUNG` allocations, and what is alive when it starts (the modules, the settings: alive until
the process ends) is set aside from the collector's walks (`gc.freeze`). The same load then
ran 83, 7 and none: 0.09 s. The collector still runs: the cycles a sync leaves (an answer
and its stream, tasks and their futures) are freed as before, a few thousand allocations
later.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# The youngest generation's threshold during a sync (CPython's default is 700).
YOUNG = 10_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect less often inside the block. The thresholds are restored after it, so a
    program that runs a sync (a test, a library user) keeps its own; so are the frozen
    objects, unless the program had frozen some itself (`gc.unfreeze` would thaw those too)."""
    thresholds = gc.get_threshold()
    thaw = gc.get_freeze_count() == 0
    gc.freeze()
    gc.set_threshold(max(YOUNG, thresholds[0]), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if thaw:
            gc.unfreeze()
