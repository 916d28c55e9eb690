"""The timing helpers the benchmarks share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(call: Callable[[], object], runs: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``runs`` calls in milliseconds, after ``warmup`` untimed calls
    (first calls allocate memory and pick kernels)."""
    return alternating_ms({"call": call}, runs, warmup)["call"]


def alternating_ms(
    calls: dict[str, Callable[[], object]], runs: int = 15, warmup: int = 3
) -> dict[str, float]:
    """Median ms per call of each, the calls taking turns so that machine noise hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for index in range(warmup + runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if index >= warmup:
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}
