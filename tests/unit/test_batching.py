"""MicroBatcher: batches across callers, results back to the right caller, and no idle waits;
BatchedModels keeps each detector call under its pixel budget."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pytest
from numpy.typing import NDArray

from shared.contract import DEFAULT_MAX_SIZE
from shared.settings import load_settings
from worker.batched import BatchedModels, BatchLimits
from worker.batching import MicroBatcher
from worker.inference.files import ModelSpec
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M
from worker.models.base import Detections, LoadedModels

LONG_WAIT_S = 5.0  # far longer than any test should take: reaching it means the batcher waited


def _doubling(calls: list[list[int]]) -> MicroBatcher[int, int]:
    def run(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [2 * item for item in items]

    return MicroBatcher(run, max_items=100, max_wait_s=LONG_WAIT_S, name="test", callers=lambda: 3)


def test_every_caller_gets_its_own_results_from_one_shared_batch() -> None:
    calls: list[list[int]] = []
    batcher = _doubling(calls)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher.submit, [10 * n, 10 * n + 1]) for n in range(3)]
        results = [f.result(timeout=LONG_WAIT_S / 2) for f in futures]
    batcher.close()
    assert results == [[0, 2], [20, 22], [40, 42]]
    # Three active callers: the batch closed as soon as all three had submitted, not at max_wait.
    assert len(calls) == 1 and sorted(calls[0]) == [0, 1, 10, 11, 20, 21]


def test_a_lone_caller_does_not_wait_for_company() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda items: items, 100, LONG_WAIT_S, "lone", lambda: 1)
    start = time.monotonic()
    assert batcher.submit([7]) == [7]
    assert time.monotonic() - start < LONG_WAIT_S / 2
    batcher.close()


def test_without_a_caller_count_the_batch_waits_for_more() -> None:
    calls: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        calls.append(list(items))
        return items

    batcher = MicroBatcher(run, max_items=2, max_wait_s=LONG_WAIT_S, name="wait")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.submit, [1])
        time.sleep(0.05)  # the first request is being gathered alone
        second = pool.submit(batcher.submit, [2])
        assert first.result(timeout=LONG_WAIT_S) == [1] and second.result(timeout=LONG_WAIT_S) == [2]
    batcher.close()
    assert calls == [[1, 2]]


def test_a_failing_batch_fails_each_of_its_callers_and_the_batcher_goes_on() -> None:
    def run(items: list[int]) -> list[int]:
        if 0 in items:
            raise ValueError("bad item")
        return items

    batcher = MicroBatcher(run, 100, 0.0, "fail", callers=lambda: 1)
    with pytest.raises(ValueError, match="bad item"):
        batcher.submit([0])
    assert batcher.submit([5]) == [5]
    batcher.close()


@dataclass
class _CountingDetector:
    """Records how many canvases each network call got; finds nothing."""

    spec: ModelSpec = SCRFD_500M
    full_frame_side: int = 0
    calls: list[int] = field(default_factory=list)

    def detect_batch(
        self, canvases: Sequence[NDArray[np.uint8]], thresholds: Sequence[float]
    ) -> list[Detections]:
        self.calls.append(len(canvases))
        return [Detections.empty() for _ in canvases]


@dataclass
class _NoRecognizer:
    spec: ModelSpec = ARCFACE_MBF
    input_size: int = 112
    dimension: int = 512
    template: NDArray[np.float32] = field(default_factory=lambda: np.zeros((5, 2), np.float32))

    def embed(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        raise AssertionError("not called")


def test_a_detector_call_never_sees_more_than_max_detect_pixels() -> None:
    """Four jobs' same-sized canvases would make one call of four; a budget of two canvases'
    pixels splits it in two (the detector's memory grows with the pixels of a call)."""
    detector = _CountingDetector()
    loaded = LoadedModels(detectors={"scrfd": detector}, recognizer=_NoRecognizer())
    models = BatchedModels(
        loaded, BatchLimits(max_images=8, max_wait_s=LONG_WAIT_S, max_detect_pixels=2 * 64 * 64)
    )
    canvas = np.zeros((64, 64, 3), np.uint8)

    def job() -> Detections:
        with models.job():
            time.sleep(0.2)  # every job counted before the first submits
            (found,) = models.detect("scrfd", [canvas], 0.5)
            return found

    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: job(), range(4)))
    models.close()
    assert [len(f) for f in found] == [0, 0, 0, 0]
    assert sorted(detector.calls) == [2, 2]


def test_the_default_cap_keeps_a_full_batch_of_default_canvases_in_one_call() -> None:
    """Normal requests (max_size 640x640) batch as before: the pixel budget only splits large ones."""
    settings = load_settings()
    assert settings.batch_max_images * DEFAULT_MAX_SIZE[0] * DEFAULT_MAX_SIZE[1] <= settings.max_detect_pixels
