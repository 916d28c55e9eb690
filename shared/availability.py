"""The one check that a job's options name only loaded models, with the one message clients see.

The API runs it before queueing, against what every online worker has loaded; the worker that
takes the job runs it once more (worker/analyzer.py), against its own models, as the job may have
been queued while no worker was online.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.contract import AnalysisOptions
from shared.errors import ModelNotLoaded

# The request field that asks for each attribute model, for error messages.
ATTRIBUTE_FIELDS = {"genderage": "extract_ga", "landmarks106": 'return_landmarks="106"'}


def check_models(options: AnalysisOptions, detectors: Sequence[str], attributes: Sequence[str]) -> None:
    """Raise ModelNotLoaded, naming what is loaded, when ``options`` need anything else."""
    detector = options.detector
    if detector is not None and detector not in detectors:
        raise ModelNotLoaded(
            f"detector {detector!r} is not loaded by the workers; available: {', '.join(detectors)}",
            list(detectors),
        )
    missing = [name for name in options.attribute_models() if name not in attributes]
    if missing:
        asked = ", ".join(f"{ATTRIBUTE_FIELDS.get(name, name)} ({name})" for name in missing)
        raise ModelNotLoaded(
            f"{asked} needs a model the workers have not loaded; loaded attribute models: "
            f"{', '.join(attributes) or 'none'}",
            list(attributes),
        )
