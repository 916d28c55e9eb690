"""The one timing helper the benchmarks share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(call: Callable[[], object], runs: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``runs`` calls in milliseconds, after ``warmup`` untimed calls
    (first calls allocate memory and pick kernels)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
