"""Cross-job micro-batching: many task threads submit work, one thread runs it in batches.

A batch closes when it holds ``max_items`` items, when every caller that could still add to it
has (``callers``: how many callers are active; each has at most one request pending), or when
``max_wait_s`` has passed since its first item arrived. Under load, items pile up while the
previous batch runs, so batches fill without waiting; a lone request never waits.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True, slots=True)
class _Request(Generic[Item, Result]):
    items: Sequence[Item]
    future: Future[list[Result]]


class MicroBatcher(Generic[Item, Result]):
    """Runs ``run(items) -> results`` (same length, same order) on batches gathered across callers."""

    def __init__(
        self,
        run: Callable[[list[Item]], list[Result]],
        max_items: int,
        max_wait_s: float,
        name: str,
        callers: Callable[[], int] | None = None,
    ) -> None:
        self._run = run
        self._callers = callers
        self._max_items = max_items
        self._max_wait_s = max_wait_s
        self._queue: queue.SimpleQueue[_Request[Item, Result] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"batch-{name}", daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[Item]) -> list[Result]:
        """Block until the items were processed (possibly together with other callers' items)."""
        if not items:
            return []
        future: Future[list[Result]] = Future()
        self._queue.put(_Request(items, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _gather(self, first: _Request[Item, Result]) -> tuple[list[_Request[Item, Result]], bool]:
        batch, count = [first], len(first.items)
        deadline = time.monotonic() + self._max_wait_s
        while count < self._max_items and (self._callers is None or len(batch) < self._callers()):
            try:
                timeout = deadline - time.monotonic()
                request = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if request is None:
                return batch, True
            batch.append(request)
            count += len(request.items)
        return batch, False

    def _loop(self) -> None:
        closed = False
        while not closed:
            first = self._queue.get()
            if first is None:
                return
            batch, closed = self._gather(first)
            items = [item for request in batch for item in request.items]
            try:
                results = self._run(items)
            except BaseException as exc:  # hand the failure to every caller in the batch
                for request in batch:
                    request.future.set_exception(exc)
                continue
            offset = 0
            for request in batch:
                request.future.set_result(results[offset : offset + len(request.items)])
                offset += len(request.items)
