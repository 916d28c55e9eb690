"""MicroBatcher: batches across callers, results back to the right caller, and no idle waits."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from worker.batching import MicroBatcher

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
