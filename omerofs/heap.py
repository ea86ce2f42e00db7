"""The C heap of the mount process (glibc malloc): what Python cannot free itself.

Python objects of 512 bytes or less live in pymalloc's arenas; everything
bigger, and every buffer of Ice's C++ runtime, comes from glibc's malloc.
Two of its habits cost the mount memory it no longer uses:

* each thread gets its own arena (:func:`limit_arenas` caps them);
* a buffer over its mmap threshold (128 KiB at first, then the size of the
  largest such buffer freed) is a mapping of its own, and free memory at the
  top of the heap over its trim threshold goes back to the system at once: a
  2 MiB ``getTimepoint`` answer, its four 512 KiB planes, an 8 MiB plane,
  each faulted its pages in afresh, on every call (:func:`keep_buffers`);
* memory freed in the middle of its heap stays mapped until the heap's top
  is free too. A plate's load builds and drops some 12 MiB of rows, strings
  and buffers (one layout answer) between the long-lived nodes of its
  listing, so after ten plates of 4,608 files the heap held 38 MiB free
  against 15 MiB used, half of what the listings seemed to cost
  (``docs/performance.rst``, "Scale"). :func:`give_back` returns such pages
  to the system (``malloc_trim``: ``madvise(MADV_DONTNEED)`` on every free
  page of every arena, the mapping kept), and runs after each plate load.

Both are no-ops where the C library has no such call (musl, macOS).
"""

from __future__ import annotations

import ctypes
import os


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


_LIBC = _libc()


def limit_arenas(arenas: int = 2) -> None:
    """glibc gives each thread its own malloc arena and keeps freed plane
    buffers (several MiB each) in them: with a dozen threads that is ~80 MiB
    of peak RSS beyond the cache budget (benchmarks/read.py, measurement e).
    Two arenas keep the mount within budget + 150 MB. Must run before threads
    start."""
    try:
        if _LIBC is not None:
            _LIBC.mallopt(-8, arenas)  # M_ARENA_MAX
    except AttributeError:
        pass


#: buffers up to this size come from the heap, not from mappings of their own
#: (glibc's largest: 32 MiB on 64-bit, DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD = 32 << 20
#: free memory at the heap's top kept for the next buffers, not returned
TRIM_THRESHOLD = 16 << 20


def keep_buffers() -> None:
    """Reuse freed plane buffers instead of returning their pages and
    faulting them in again: pixel buffers (up to 32 MiB) come from the heap,
    and up to 16 MiB free at the top of a heap stays mapped. Page faults of
    fresh buffers were about a sixth of the daemon's CPU in a whole-plate
    read at 0 ms (``benchmarks/plate_cpu.py``, docs/performance.rst); the
    mount's peak RSS stays within its budget + 150 MiB (measurement (e)).
    Variables set by the user (``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_``) win. Must run before threads start."""
    try:
        if _LIBC is None:
            return
        if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
            _LIBC.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
            _LIBC.mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
    except AttributeError:
        pass


def give_back() -> None:
    """Return the C heap's free pages to the system (a few milliseconds for
    a heap of tens of MiB; call it after dropping many MiB, not per request)."""
    try:
        if _LIBC is not None:
            _LIBC.malloc_trim(0)
    except AttributeError:
        pass
