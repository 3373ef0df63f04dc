"""Turning a page of JSON into table rows: on a thread by default, in worker processes if asked.

A first load of millions of events is CPU-bound in Python (JSON, validation, row building).
`parse_rows` reads a page of the plain JSON:API shape straight from orjson's dicts into rows
(`RawResource`), and only a page of another shape goes through the pydantic models (which
reject it with a clear error, or accept a variant such as a single resource).

Measured with `make bench` (issue 12): the straight path costs about a third of the pydantic
one, so one process keeps up with the events tier even with Klaviyo's limits not cut, and
the parse worker processes (an interpreter each, ~50 MB) no longer pay for themselves. They
stay available through `[sync] parse_workers` for a machine with idle cores and an account
on higher limits.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from klaviyo_etl.db.repositories import Row, resource_rows, unreadable_values
from klaviyo_etl.models import Links, Page, Resource


@dataclass
class ParsedPage:
    """What the sync needs from a page: rows per table, the page's size, its last value of the
    incremental field, the next link, and how many values were kept raw (run warnings)."""

    rows: dict[str, list[Row]]
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
    out = []
    for r in data:
        if not isinstance(r, dict):
            return None
        type_, id_, attributes, rels = (
            r.get("type"),
            r.get("id"),
            r.get("attributes", {}),
            r.get("relationships"),
        )
        if not (
            isinstance(type_, str)
            and isinstance(id_, str)
            and isinstance(attributes, dict)
            and (rels is None or isinstance(rels, dict))
        ):
            return None
        out.append(RawResource(type_, id_, attributes, rels))
    return out, nxt


def parse_rows(body: bytes, field_name: str) -> ParsedPage:
    doc = orjson.loads(body)
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
