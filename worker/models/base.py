"""What every detector and recognizer returns, and the protocols the pipeline programs against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from worker.inference.registry import ModelSpec


@dataclass(frozen=True, slots=True)
class Detections:
    """Faces found in one image, sorted by score, in the coordinates of the detector's input.

    boxes: (N, 4) x1, y1, x2, y2; scores: (N,); keypoints: (N, 5, 2) eyes, nose, mouth corners.
    """

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    keypoints: NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.scores)

    def scaled(self, factor: float) -> Detections:
        return Detections(self.boxes * factor, self.scores, self.keypoints * factor)

    def take(self, index: NDArray[np.intp]) -> Detections:
        return Detections(self.boxes[index], self.scores[index], self.keypoints[index])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


class Detector(Protocol):
    spec: ModelSpec

    def detect(self, canvas: NDArray[np.uint8], threshold: float) -> Detections:
        """Detect faces in an RGB canvas whose sides are multiples of the stride."""
        ...

    def detect_batch(
        self, canvases: Sequence[NDArray[np.uint8]], thresholds: Sequence[float]
    ) -> list[Detections]:
        """Detect in several canvases of one size with one network call."""
        ...


class Recognizer(Protocol):
    spec: ModelSpec
    input_size: int
    dimension: int

    def embed(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Raw (not normalised) embeddings of aligned RGB crops (N, size, size, 3)."""
        ...
