"""Keeping a long sync's resident memory flat: glibc's malloc tuned for page-sized buffers.

A first load receives ~1 MB bodies and frees them again, from several threads. By default
glibc raises its mmap threshold after the first such free, so later bodies come from the
heap, which fragments and never shrinks, and each thread gets a heap of its own. Measured
with `make bench` (issue 12, 200,000 events): peak RSS 108 MB by default, 94 MB with a
fixed 128 KiB mmap threshold, 90 MB with two arenas as well. Elsewhere (musl, macOS,
Windows) this is a no-op.

The thresholds are fixed, not left to move, but above a page's size: at 128 KiB (mmap and
trim) every body was a fresh mapping, and the heap gave back each page's memory to fault
it in again for the next one: a first load of 200,000 events took 170,000 page faults, with
the kernel zeroing each page. With bodies from the heap (mmap above 2 MiB) and 32 MiB of
free heap kept between bursts, 20,000, and 1.4 us less CPU an event (5 alternated runs,
-8 %); peak RSS 73 -> 76 MB (median); at the real limits 73 -> 80 MB at 100,000 events and
80 -> 83 MB at 1,000,000 (growth +9 % -> +4 %; CPU 16.4 -> 15.2 us an event).
"""

from __future__ import annotations

import ctypes
import functools

# mallopt parameters from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

# Allocations from this size up are mappings of their own (a page's body, ~1 MB, is not).
MMAP_THRESHOLD = 2 * 1024 * 1024
# Free memory at the heap's top kept for the next burst's pages rather than given back.
TRIM_THRESHOLD = 32 * 1024 * 1024


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc by its soname (None elsewhere): `ctypes.util.find_library` would run `ldconfig -p`
    in a child process, whose RSS (shared with ours while it starts) doubles the tree's peak
    for a moment (issue 12: incremental runs measured 94 MB instead of 59 now and then)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@functools.cache
def tune_malloc() -> bool:
    """Fix the mmap threshold at `MMAP_THRESHOLD` and the trim threshold at `TRIM_THRESHOLD`,
    and allow two arenas (once per process); True if glibc took the settings."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = [
        mallopt(param, value)
        for param, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_ARENA_MAX, 2),
        )
    ]
    return all(r == 1 for r in ok)


def release_free_memory() -> bool:
    """Give the heap's free memory back to the system once a sync is over (glibc's
    `malloc_trim`): the heap keeps up to `TRIM_THRESHOLD` of it for the next burst's pages,
    which a scheduler waiting for its next run, or a report after its sync, has no use for.
    True if glibc gave some back."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc.malloc_trim(0) == 1
