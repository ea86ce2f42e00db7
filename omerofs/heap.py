"""The C heap of the mount process (glibc malloc): what Python cannot free itself.

Python objects of 512 bytes or less live in pymalloc's arenas; everything
bigger, and every buffer of Ice's C++ runtime, comes from glibc's malloc.
Two of its habits cost the mount memory it no longer uses:

* each thread gets its own arena (:func:`limit_arenas` caps them);
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


def give_back() -> None:
    """Return the C heap's free pages to the system (a few milliseconds for
    a heap of tens of MiB; call it after dropping many MiB, not per request)."""
    try:
        if _LIBC is not None:
            _LIBC.malloc_trim(0)
    except AttributeError:
        pass
