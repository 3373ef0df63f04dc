"""Turning a page of JSON into table rows, in worker processes during bulk loads.

A first load of millions of events is CPU-bound in Python (JSON, validation, row building),
and one process has one GIL. Parsing in a process pool lets the main process do only the
network and the writes; a page's rows come back already grouped by table.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from klaviyo_etl.db.repositories import Row, resource_rows, unreadable_values
from klaviyo_etl.models import Links, Page


@dataclass
class ParsedPage:
    """What the sync needs from a page: rows per table, the page's size, its last value of the
    incremental field, the next link, and how many values were kept raw (run warnings)."""

    rows: dict[str, list[Row]]
    count: int
    last: Any
    links: Links = field(default_factory=Links)
    warnings: int = 0


def parse_rows(body: bytes, field_name: str) -> ParsedPage:
    page = Page.parse_json(body)  # the pydantic boundary, in the worker
    last = page.data[-1].attributes.get(field_name) if page.data else None
    return ParsedPage(
        resource_rows(page.data),
        len(page.data),
        last,
        Links(next=page.links.next),
        unreadable_values(page.data),
    )


def parser_pool(workers: int) -> ProcessPoolExecutor:
    # spawn: clean workers (never a fork of our threads), and direct children of ours, so
    # nothing is left behind when we exit; the watcher covers a `kill -9` of the sync.
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_owner,
        initargs=(os.getpid(),),
    )


def _exit_with_owner(owner: int) -> None:
    """In a worker: leave as soon as the sync that started us is gone (killed, crashed)."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(owner, 0)
            except ProcessLookupError:
                os._exit(0)
            if os.getppid() != owner:  # re-parented: the owner died
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="owner-watch").start()
