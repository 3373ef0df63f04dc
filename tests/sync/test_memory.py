"""The malloc tuning a sync applies for flat resident memory."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_malloc_settings_once_per_process():
    # in a process of its own: the settings last for the life of the process
    code = "from klaviyo_etl.sync.memory import tune_malloc; print(tune_malloc(), tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_page_sized_body_reuses_the_heap_instead_of_faulting_in_fresh_pages():
    # A first load allocates and frees a ~1 MB body a page: from a fresh mapping each time
    # (the 128 KiB threshold), the kernel faulted in and zeroed ~245 pages for every one.
    code = """
import resource
from klaviyo_etl.sync.memory import tune_malloc
assert tune_malloc()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
before = faults()
for _ in range(50):
    body = b"x" * 1_000_000
    del body
print(faults() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out) < 50 * 245 // 10  # the first body's pages, not every body's


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_heap_kept_for_the_pages_is_given_back_once_a_sync_is_over():
    # The trim threshold keeps up to 32 MiB of free heap for the next burst; a scheduler
    # waiting for its next run should not hold it.
    code = """
from klaviyo_etl.sync.memory import release_free_memory, tune_malloc
assert tune_malloc()
import os
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
bodies = [b"x" * 1_000_000 for _ in range(30)]
del bodies
kept = rss()
release_free_memory()
print(kept, rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    kept, released = map(int, out.split())
    assert kept - released >= 20  # MB
