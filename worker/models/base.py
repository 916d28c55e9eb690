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
    # Where the 5 keypoints go in the recognizer's input crop (input px), for alignment.
    template: NDArray[np.float32]

    def embed(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Raw (not normalised) embeddings of aligned RGB crops (N, size, size, 3)."""
        ...


@dataclass(frozen=True, slots=True)
class GenderAge:
    """Per face: probability of "male" (the model's second class) and the expected age in years."""

    male: NDArray[np.float32]
    age: NDArray[np.float32]


class GenderAgeModel(Protocol):
    specs: tuple[ModelSpec, ...]

    def predict(self, image: NDArray[np.uint8], keypoints: NDArray[np.float32]) -> GenderAge:
        """Gender and age of the faces given by their 5 keypoints (N, 5, 2) in an RGB image."""
        ...


class LandmarkModel(Protocol):
    spec: ModelSpec
    points: int

    def landmarks(self, image: NDArray[np.uint8], boxes: NDArray[np.float32]) -> NDArray[np.float32]:
        """Dense landmarks (N, points, 2) in image pixels for the faces in boxes (N, 4)."""
        ...
