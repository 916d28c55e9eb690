"""What every detector and recognizer returns, the protocols the pipeline programs against, and
the set of models a worker loaded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from worker.inference.files import ModelSpec


@dataclass(frozen=True, slots=True)
class Detections:
    """Faces found in one image, sorted by score.

    boxes: (N, 4) x1, y1, x2, y2; scores: (N,); keypoints: (N, 5, 2) eyes, nose, mouth corners.
    A detector returns them in detector canvas px; worker/frames.py converts them to decoded px
    and to full-size image px. Whoever holds a Detections names its frame.
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
    def joined(cls, parts: Sequence[Detections]) -> Detections:
        """The faces of ``parts``, one after the other (each part's order kept)."""
        return cls(
            np.concatenate([part.boxes for part in parts]),
            np.concatenate([part.scores for part in parts]),
            np.concatenate([part.keypoints for part in parts]),
        )

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


class Detector(Protocol):
    spec: ModelSpec
    # The longest canvas side (px) on which a face filling the whole canvas is still found; the
    # pipeline adds coarse passes over larger canvases (worker/imaging/resize.py). 0: the
    # detector finds faces of any size itself (MTCNN's image pyramid).
    full_frame_side: int

    def detect_batch(
        self, canvases: Sequence[NDArray[np.uint8]], thresholds: Sequence[float]
    ) -> list[Detections]:
        """Detect in RGB canvases of one size, sides multiples of the stride; Detections in
        canvas px, one per canvas, each with its own score threshold."""
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

    def landmarks(
        self, image: NDArray[np.uint8], boxes: NDArray[np.float32], turns: NDArray[np.floating] | None = None
    ) -> NDArray[np.float32]:
        """Dense landmarks (N, points, 2) in image pixels for the faces in boxes (N, 4); ``turns``:
        the degrees (counter-clockwise) that set each face upright, or None."""
        ...


@dataclass(frozen=True, slots=True)
class LoadedModels:
    """The models a worker loaded, by registry key; the first detector serves requests that
    name none."""

    detectors: Mapping[str, Detector]
    recognizer: Recognizer
    genderage: GenderAgeModel | None = None
    landmarks106: LandmarkModel | None = None

    def attribute_keys(self) -> list[str]:
        """The attribute models loaded, as requests name them ("genderage", "landmarks106")."""
        keys = [] if self.genderage is None else [self.genderage.specs[0].key]
        return keys + ([] if self.landmarks106 is None else [self.landmarks106.spec.key])

    def specs(self) -> list[ModelSpec]:
        """Every loaded network, for the worker's heartbeat."""
        specs = [detector.spec for detector in self.detectors.values()] + [self.recognizer.spec]
        specs += [] if self.landmarks106 is None else [self.landmarks106.spec]
        return specs + ([] if self.genderage is None else list(self.genderage.specs))
