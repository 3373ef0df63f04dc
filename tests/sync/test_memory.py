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
