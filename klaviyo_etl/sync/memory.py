"""Keeping a long sync's resident memory flat: glibc's malloc tuned for page-sized buffers.

A first load receives ~1 MB bodies and frees them again, from several threads. By default
glibc raises its mmap threshold after the first such free, so later bodies come from the
heap, which fragments and never shrinks, and each thread gets a heap of its own. Measured
with `make bench` (issue 12, 200,000 events): peak RSS 108 MB by default, 94 MB with a
fixed 128 KiB mmap threshold, 90 MB with two arenas as well. Elsewhere (musl, macOS,
Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import functools

# mallopt parameters from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


@functools.cache
def tune_malloc() -> bool:
    """Fix the mmap and trim thresholds at 128 KiB and allow two arenas (once per process);
    True if glibc took the settings."""
    try:
        # glibc by its soname: `ctypes.util.find_library` would run `ldconfig -p` in a child
        # process, whose RSS (shared with ours while it starts) doubles the tree's peak for a
        # moment (issue 12: incremental runs measured 94 MB instead of 59 now and then).
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = [
        mallopt(param, value)
        for param, value in ((M_MMAP_THRESHOLD, 128 * 1024), (M_TRIM_THRESHOLD, 128 * 1024), (M_ARENA_MAX, 2))
    ]
    return all(r == 1 for r in ok)
