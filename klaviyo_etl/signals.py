"""Clean stops: SIGINT/SIGTERM end a run after the page being written commits."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM ask for a clean stop; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers; the caller stops us via `stop`
        return

    def handle(signum: int, _frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("%s received: stopping after the current page is written", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
