"""What the online workers have loaded, from their heartbeats: which requests can be served."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.errors import ModelNotLoaded
from shared.schemas import AnalysisOptions


@dataclass(frozen=True, slots=True)
class Available:
    """Models every online worker has loaded (any worker may take any job from the queue)."""

    detectors: list[str]
    attributes: list[str]
    recognizers: list[dict[str, Any]]


def _common(workers: list[dict[str, Any]], field: str) -> list[str]:
    first: list[str] = list(workers[0].get(field, []))
    return [name for name in first if all(name in worker.get(field, []) for worker in workers[1:])]


def available(workers: list[dict[str, Any]]) -> Available:
    if not workers:
        return Available([], [], [])
    recognizers: dict[str, dict[str, Any]] = {}
    for worker in workers:
        if "recognizer" in worker:
            recognizers.setdefault(str(worker["recognizer"].get("name")), worker["recognizer"])
    return Available(
        _common(workers, "detectors"), _common(workers, "attributes"), list(recognizers.values())
    )


def check_request(options: AnalysisOptions, workers: list[dict[str, Any]]) -> None:
    """Refuse a detector or attribute model that the workers have not loaded.

    With no worker online nothing can be checked: the job waits in the queue as before.
    """
    if not workers:
        return
    models = available(workers)
    detector, attributes = options.required_models()
    if detector is not None and detector not in models.detectors:
        raise ModelNotLoaded(
            f"detector {detector!r} is not loaded by the workers; available: {', '.join(models.detectors)}",
            models.detectors,
        )
    missing = [name for name in attributes if name not in models.attributes]
    if missing:
        what = {"genderage": "extract_ga", "landmarks106": 'return_landmarks="106"'}
        asked = ", ".join(f"{what[name]} ({name})" for name in missing)
        raise ModelNotLoaded(
            f"{asked} needs a model the workers have not loaded; loaded attribute models: "
            f"{', '.join(models.attributes) or 'none'}",
            models.attributes,
        )
