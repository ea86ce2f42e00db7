"""The mount's C heap keeps freed pixel buffers for the next ones
(:func:`omerofs.heap.keep_buffers`): a buffer of a few MiB, allocated, written
and freed again and again, faults its pages in once, not on every round."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

# each run in a fresh interpreter: glibc's thresholds move with what a
# process has freed before, and mallopt lasts for the process
ROUNDS = """
import ctypes, resource, sys
from omerofs import heap
if sys.argv[1] == "keep":
    heap.keep_buffers()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 2 << 20  # a getTimepoint answer of four 512 KiB planes
def round_trip():
    # a few in flight at once, as prefetch lanes have them
    ps = [libc.malloc(size) for _ in range(4)]
    for p in ps:
        ctypes.memset(p, 1, size)
    for p in ps:
        libc.free(p)
round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    round_trip()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str, **env: str) -> int:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(ROUNDS), mode],
                         env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_freed_buffers_are_reused_without_page_faults() -> None:
    pages = 4 * (2 << 20) // os.sysconf("SC_PAGE_SIZE")  # of one round
    # glibc's default: the first free raises the mmap threshold to 2 MiB and
    # the trim threshold to 4 MiB, so the 8 MiB freed at the heap's top go
    # back to the system, and every round faults them in again
    assert faults("default") >= 20 * pages // 2
    assert faults("keep") < pages // 4
    # the user's own setting wins over the mount's
    assert faults("keep", MALLOC_MMAP_THRESHOLD_="131072",
                  MALLOC_TRIM_THRESHOLD_="131072") >= 20 * pages // 2
