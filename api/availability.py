"""What the online workers have loaded, from their heartbeats: which requests can be served."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.availability import check_models
from shared.contract import AnalysisOptions, RecognizerInfo, WorkerInfo


@dataclass(frozen=True, slots=True)
class Available:
    """Models every online worker has loaded (any worker may take any job from the queue)."""

    detectors: list[str]
    attributes: list[str]
    recognizers: list[RecognizerInfo]


def _common(names: Sequence[list[str]]) -> list[str]:
    return [name for name in names[0] if all(name in other for other in names[1:])]


def available(workers: Sequence[WorkerInfo]) -> Available:
    if not workers:
        return Available([], [], [])
    recognizers: dict[str, RecognizerInfo] = {}
    for worker in workers:
        recognizers.setdefault(worker.recognizer.name, worker.recognizer)
    return Available(
        _common([w.detectors for w in workers]),
        _common([w.attributes for w in workers]),
        list(recognizers.values()),
    )


def check_request(options: AnalysisOptions, workers: Sequence[WorkerInfo]) -> None:
    """Refuse a detector or attribute model that not every online worker has loaded.

    With no worker online nothing can be checked: the job waits in the queue as before.
    """
    if workers:
        models = available(workers)
        check_models(options, models.detectors, models.attributes)
