"""Running a stream's parallel parts so that one failing (or a stop) ends them all cleanly."""

from __future__ import annotations

import asyncio
from typing import Any


async def gather_or_cancel(*coros: Any) -> None:
    """Like gather, but the first failure cancels the siblings and waits for them to end."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
