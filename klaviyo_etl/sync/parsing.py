"""Turning a page of JSON into table rows: on a thread by default, in worker processes if asked.

A first load of millions of events is CPU-bound in Python (JSON, validation, row building).
`parse_rows` reads a page of events or profiles with msgspec straight into Structs that name
only the fields the rows read, then into the value tuples the writer's `executemany` takes
(`batch_page`, `Batch`: see `klaviyo_etl.db.repositories`). Any other page, or one of those
msgspec does not read (a resource of another shape, a value of another JSON type), goes the
general way: orjson's dicts, straight into rows if the page has the plain JSON:API shape
(`RawResource`), else through the pydantic models (which reject it with a clear error, or
accept a variant such as a single resource).

Measured with `make bench` (issue 12): the straight path costs about a third of the pydantic
one, so one process keeps up with the events tier even with Klaviyo's limits not cut, and
the parse worker processes (an interpreter each, ~50 MB) no longer pay for themselves. They
stay available through `[sync] parse_workers` for a machine with idle cores and an account
on higher limits. Then, per event, in one process: the tuples instead of a dict per row
took row building from ~3 to ~1 µs, and pausing the cycle collector during a parse
(`gc_paused`) saved ~5 µs more, as much as `orjson.loads` itself costs. msgspec instead of
orjson's dicts took a page from ~4.5 to ~1.6 µs an event and ~9 to ~4.3 µs a profile (read,
rows built, freed): ~10,000 dicts a page are neither built nor freed, and `attributes` is
stored as the text Klaviyo sent instead of being serialised again. It builds few objects the
collector tracks, so the collector is paused for the general path only (no difference
measured on the lean one).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import msgspec
import orjson

from klaviyo_etl.db.repositories import (
    BATCHES,
    NOT_LEAN,
    Batch,
    EventResource,
    ProfileResource,
    Row,
    resource_rows,
    unreadable_values,
)
from klaviyo_etl.jsonapi import is_resource, related_id, related_ids
from klaviyo_etl.timeutil import utcnow_iso


def models() -> ModuleType:
    """`klaviyo_etl.models`, loaded by name when a page is first read with them, not with this
    module: pydantic and the models cost ~0.09 s of start-up (issue 12) that a first load of
    events or profiles, read by msgspec, never needs (the engine loads them on its loading
    thread when the run has other streams)."""
    return importlib.import_module("klaviyo_etl.models")


class ModelPage:
    """`klaviyo_etl.models.Page`'s reader of a body, through `models()`: what `StreamRun.pages`
    reads a page with unless a stream gives another reader."""

    @staticmethod
    def parse_json(body: bytes) -> Any:
        return models().Page.parse_json(body)


class Links(msgspec.Struct, gc=False):
    """A page's next link, as the models' `Links` has it (without pydantic)."""

    next: str | None = None


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

    def __init__(self, type: str, id: str, attributes: dict, relationships: dict | None):  # noqa: A002
        self.type, self.id, self.attributes, self.relationships = type, id, attributes, relationships

    def related_id(self, name: str) -> str | None:
        return related_id(self.relationships, name)

    def related_ids(self, name: str) -> list[str]:
        return related_ids(self.relationships, name)


def plain_page(doc: Any) -> tuple[list[RawResource], str | None] | None:
    """The resources and next link of a page of the plain shape (a list of resources, each
    with string `type` and `id` and object `attributes`/`relationships`); None for any other
    shape, which the pydantic models then read or reject."""
    if not isinstance(doc, dict):
        return None
    data, links = doc.get("data"), doc.get("links") or {}
    if not isinstance(data, list) or not isinstance(links, dict):
        return None
    nxt = links.get("next")
    if nxt is not None and not isinstance(nxt, str):
        return None
    if not all(is_resource(r) for r in data):
        return None
    return [
        RawResource(r["type"], r["id"], r.get("attributes", {}), r.get("relationships")) for r in data
    ], nxt


class _BatchPage(msgspec.Struct, gc=False):
    """A page as the lean path reads it: events or profiles (see `BATCHES`), and the next
    link; anything else on the page (`included`, `meta`, other links) is skipped."""

    data: list[EventResource | ProfileResource]
    links: Links | None = None


_BATCH_PAGE = msgspec.json.Decoder(_BatchPage)


def batch_page(body: bytes, field_name: str) -> ParsedPage | None:
    """A plain page of events or of profiles as one `Batch` (the lean path), decoded by msgspec
    straight into the Structs the batch builders read; None for any other page (a resource
    of another type or shape, a value of another JSON type: see `repositories._Wire`), which
    `parse_rows` then reads the general way.

    It stores what the general path stores, `attributes` aside: the JSON text as sent, which
    reads as the same JSON (`json_extract`) but keeps the sender's spacing, escapes and number
    spelling. One page the general path refused is now read: a number beyond a double's
    range (`1e999`) in a value the rows do not read as a number, which msgspec does not check
    and `attributes` then keeps as sent."""
    try:
        page = _BATCH_PAGE.decode(body)
        data = page.data
        if not data:
            return None
        kind = type(data[0])
        if any(type(r) is not kind for r in data):
            return None
        # msgspec checks the UTF-8 of the text it decodes, not of the values it skips; orjson
        # (the general path) refuses a page with any text that is not UTF-8 (~0.05 µs an event,
        # ~0.2 µs a profile).
        str(body, "utf-8")
        table, build = BATCHES[kind]
        batch = build(data, utcnow_iso())
        # The incremental field of the last resource, read from its attributes as the
        # general path reads them (any field, any JSON type).
        last = orjson.loads(memoryview(data[-1].attributes)).get(field_name)
    except (*NOT_LEAN, orjson.JSONDecodeError):
        return None
    nxt = page.links.next if page.links is not None else None
    return ParsedPage({table: batch}, len(data), last, Links(next=nxt), batch.warnings)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a page is parsed the general way (unless it was off
    already).

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
    page = batch_page(body, field_name)
    if page is None:
        with gc_paused():
            doc = orjson.loads(body)
            page = resource_page(doc, field_name)
            del doc  # freed before the collector is back, or its first run would walk it all
    return page


def resource_page(doc: Any, field_name: str) -> ParsedPage:
    """Any page the general way: a row dict per resource (`resource_rows`), read straight
    from the JSON if the page has the plain shape, else through the models."""
    plain = plain_page(doc)
    if plain is None:
        page = models().Page.parse(doc)  # the pydantic boundary: reads the variants, rejects the rest
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
