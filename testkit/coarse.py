"""The worker's models with a detector's coarse passes turned off: what the frame-filling tests
and bench/coarse.py, bench/cfp_detection.py compare the pipeline against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from worker.batched import BatchedModels
from worker.inference.files import ModelSpec
from worker.models.base import Detections, Detector


@dataclass
class WithoutCoarse:
    """A detector that claims to see faces of any size: the pipeline then runs its main pass only."""

    inner: Detector
    spec: ModelSpec
    full_frame_side: int = 0

    def detect_batch(
        self, canvases: Sequence[NDArray[np.uint8]], thresholds: Sequence[float]
    ) -> list[Detections]:
        return self.inner.detect_batch(canvases, thresholds)


def main_pass_only(models: BatchedModels, detector: str) -> BatchedModels:
    """The same loaded models (no second copy in memory), ``detector`` without its coarse passes."""
    model = models.loaded.detectors[detector]
    loaded = replace(models.loaded, detectors={detector: WithoutCoarse(model, model.spec)})
    return BatchedModels(loaded, models.limits)


@dataclass
class Recording:
    """The real detector, remembering the canvas shapes of each call (which passes ran)."""

    inner: Detector
    spec: ModelSpec
    full_frame_side: int
    shapes: list[tuple[int, ...]] = field(default_factory=list)

    def detect_batch(
        self, canvases: Sequence[NDArray[np.uint8]], thresholds: Sequence[float]
    ) -> list[Detections]:
        self.shapes += [canvas.shape for canvas in canvases]
        return self.inner.detect_batch(canvases, thresholds)


def recorded(models: BatchedModels, detector: str) -> tuple[BatchedModels, Recording]:
    """The same loaded models, ``detector`` recording the canvases it is given."""
    model = models.loaded.detectors[detector]
    recording = Recording(model, model.spec, model.full_frame_side)
    return BatchedModels(replace(models.loaded, detectors={detector: recording}), models.limits), recording
