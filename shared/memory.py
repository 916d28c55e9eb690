"""Process memory settings applied at start-up."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc mallopt parameter number (malloc.h)
DEFAULT_ARENAS = 2


def limit_malloc_arenas(arenas: int | None = None) -> bool:
    """Cap glibc's malloc arenas, as MALLOC_ARENA_MAX does, before threads start allocating.

    Many threads (gunicorn's, the worker's task threads) each get an arena by default; freed
    image buffers then stay scattered across them. Two arenas kept the worker under 530 MB in
    bench/throughput.py, against about 600 MB without. Returns False where glibc is absent.
    """
    wanted = arenas or int(os.environ.get("MALLOC_ARENA_MAX", DEFAULT_ARENAS))
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    libc = ctypes.CDLL(path)
    if not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, wanted))
