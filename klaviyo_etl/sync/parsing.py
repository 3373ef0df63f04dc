"""Turning a page of JSON into table rows: on a thread by default, in worker processes if asked.

A first load of millions of events is CPU-bound in Python (JSON, validation, row building).
`parse_rows` reads a page of the plain JSON:API shape straight from orjson's dicts: a page
of events or profiles into the value tuples the writer's `executemany` takes (`Batch`, see
`klaviyo_etl.db.repositories`), a page of another plain type into rows (`RawResource`), and
only a page of another shape goes through the pydantic models (which reject it with a
clear error, or accept a variant such as a single resource).

Measured with `make bench` (issue 12): the straight path costs about a third of the pydantic
one, so one process keeps up with the events tier even with Klaviyo's limits not cut, and
the parse worker processes (an interpreter each, ~50 MB) no longer pay for themselves. They
stay available through `[sync] parse_workers` for a machine with idle cores and an account
on higher limits. Then, per event, in one process: the tuples instead of a dict per row
took row building from ~3 to ~1 µs, and pausing the cycle collector during a parse
(`gc_paused`) saved ~5 µs more, as much as `orjson.loads` itself costs.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from klaviyo_etl.db.repositories import BATCHES, Batch, Row, plain_resource, resource_rows, unreadable_values
from klaviyo_etl.models import Links, Page, Resource
from klaviyo_etl.timeutil import utcnow_iso


@dataclass
class ParsedPage:
    """What the sync needs from a page: rows per table, the page's size, its last value of the
    incremental field, the next link, and how many values were kept raw (run warnings)."""

    rows: dict[str, list[Row] | Batch]
    count: int
    last: Any
    links: Links = field(default_factory=Links)
    warnings: int = 0


class RawResource:
    """A resource read straight from the JSON (what `Resource` offers the row builders,
    without building a pydantic model per resource)."""

    __slots__ = ("type", "id", "attributes", "relationships")
    related_id = Resource.related_id
    related_ids = Resource.related_ids

    def __init__(self, type: str, id: str, attributes: dict, relationships: dict | None):  # noqa: A002
        self.type, self.id, self.attributes, self.relationships = type, id, attributes, relationships


def _data_and_next(doc: Any) -> tuple[list, str | None] | None:
    """A page's `data` list and next link, if both have the plain shape."""
    if not isinstance(doc, dict):
        return None
    data, links = doc.get("data"), doc.get("links") or {}
    if not isinstance(data, list) or not isinstance(links, dict):
        return None
    nxt = links.get("next")
    if nxt is not None and not isinstance(nxt, str):
        return None
    return data, nxt


def plain_page(doc: Any) -> tuple[list[RawResource], str | None] | None:
    """The resources and next link of a page of the plain shape (a list of resources, each
    with string `type` and `id` and object `attributes`/`relationships`); None for any other
    shape, which the pydantic models then read or reject."""
    plain = _data_and_next(doc)
    if plain is None:
        return None
    data, nxt = plain
    out = []
    for r in data:
        resource = plain_resource(r)
        if resource is None:
            return None
        out.append(RawResource(*resource))
    return out, nxt


def batch_page(doc: Any, field_name: str) -> ParsedPage | None:
    """A plain page of events or of profiles as one `Batch` (the lean path); None for any
    other page, which `parse_rows` then reads the general way."""
    plain = _data_and_next(doc)
    if plain is None or not plain[0] or not isinstance(plain[0][0], dict):
        return None
    data, nxt = plain
    kind = data[0].get("type")
    if not isinstance(kind, str) or kind not in BATCHES:
        return None
    table, build = BATCHES[kind]
    batch = build(data, utcnow_iso())
    if batch is None:
        return None
    last = data[-1].get("attributes", {}).get(field_name)
    return ParsedPage({table: batch}, len(data), last, Links(next=nxt), batch.warnings)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a page is parsed (unless it was off already).

    A page is ~10,000 dicts and lists from orjson, all acyclic and all alive until its rows
    are built: the collector, triggered every 700 allocations, would walk them again and
    again, move them to older generations and start full collections of the whole heap,
    which measured as much CPU as the parse itself (issue 12). Reference counting frees
    them as usual; the collector runs again, on what is left, right after. The first
    thread to pause turns it back on, whatever threads overlap."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_rows(body: bytes, field_name: str) -> ParsedPage:
    with gc_paused():
        doc = orjson.loads(body)
        page = batch_page(doc, field_name) or resource_page(doc, field_name)
        del doc  # freed before the collector is back, or its first run would walk it all
    return page


def resource_page(doc: Any, field_name: str) -> ParsedPage:
    """Any page the general way: a row dict per resource (`resource_rows`), read straight
    from the JSON if the page has the plain shape, else through the models."""
    plain = plain_page(doc)
    if plain is None:
        page = Page.parse(doc)  # the pydantic boundary: reads the variants, rejects the rest
        resources, nxt = page.data, page.links.next
    else:
        resources, nxt = plain
    last = resources[-1].attributes.get(field_name) if resources else None
    return ParsedPage(
        resource_rows(resources),  # type: ignore[arg-type]  # RawResource offers what they read
        len(resources),
        last,
        Links(next=nxt),
        unreadable_values(resources),  # type: ignore[arg-type]
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
