"""Which process a pid names: a pid is reused once its process is gone, so a pid alone cannot
tell a sync that still runs from one that was killed and whose pid another process now holds.

On Linux a process is the pid plus its start time (`/proc/PID/stat` field 22, clock ticks
since boot) plus the boot it started in (`/proc/sys/kernel/random/boot_id`); elsewhere, or
where `/proc` hides other users' processes, only the pid (whether a process holds it)."""

from __future__ import annotations

import os
import re

_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_MARK = re.compile(r"pid (\d+)(?: started (\S+))?")


def stat_fields(pid: int | str) -> list[str] | None:
    """`/proc/PID/stat` from field 3 (state) on, so field N is `[N - 3]`; None if unreadable.

    The command name (field 2) is skipped by its last ")": it may hold spaces and parentheses."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data.rsplit(b")", 1)[1].decode().split()


def _started(pid: int) -> str | None:
    """The process's start as `BOOT:TICKS`, or None where the system does not say."""
    fields = stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    try:
        with open(_BOOT_ID) as f:
            boot = f.read().strip()[:8]
    except OSError:
        boot = "?"
    return f"{boot}:{fields[19]}"


def process_mark(pid: int | None = None) -> str:
    """`pid N started BOOT:TICKS` for this process (or `pid`), or `pid N` where the start time
    cannot be read: what `is_running` checks later."""
    pid = os.getpid() if pid is None else pid
    started = _started(pid)
    return f"pid {pid}" + (f" started {started}" if started else "")


def is_running(mark: str | None) -> bool:
    """Whether the process `process_mark` described still runs: its pid is held, and (where
    both are known) by a process that started when it did, not one that reused the pid."""
    found = _MARK.fullmatch(mark or "")
    if found is None:
        return False
    pid = int(found[1])
    if pid <= 0 or not _holds(pid):  # kill(0) would ask about our own process group
        return False
    recorded, current = found[2], _started(pid)
    return recorded is None or current is None or recorded == current


def _holds(pid: int) -> bool:
    """Whether some process holds `pid` (the portable check)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except OverflowError:  # not a pid at all
        return False
    return True
