"""Process memory settings applied at start-up."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

M_ARENA_MAX = -8  # glibc mallopt parameter number (malloc.h)
DEFAULT_ARENAS = 2


def limit_malloc_arenas(arenas: int | None = None) -> bool:
    """Cap glibc's malloc arenas, as MALLOC_ARENA_MAX does, before threads start allocating.

    Many threads (gunicorn's, the worker's task threads) each get an arena by default; freed
    image buffers then stay scattered across them. Two arenas kept the worker under 530 MB in
    bench/throughput.py, against about 600 MB without. Returns False where glibc is absent.
    """
    wanted = arenas or int(os.environ.get("MALLOC_ARENA_MAX", DEFAULT_ARENAS))
    mallopt = _libc_function("mallopt")
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, wanted))


def trim_heap() -> bool:
    """Give the freed parts of glibc's heaps back to the system (``malloc_trim(0)``).

    glibc returns a freed block to the system only when it was mmap'ed or sits at the top of
    its heap; after a large photo, freed decode and resize buffers between live ones stay
    resident. Worth a few ms after a job that held large images, not after every job (the next
    allocations would fault their pages in again). Returns False where glibc is absent.
    """
    malloc_trim = _libc_function("malloc_trim")
    return malloc_trim is not None and bool(malloc_trim(0))


def _libc_function(name: str) -> Any:
    """glibc's function ``name``, or None where the C library is not glibc (musl, macOS)."""
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    return getattr(ctypes.CDLL(path), name, None)
