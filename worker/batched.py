"""The loaded models behind one device lock, detection and embedding micro-batched across jobs.

Many jobs run at once on a worker's threads. Their model calls meet in the micro-batchers
(one per detector, one for the recognizer), so faces of several jobs share one network call,
and one device lock keeps model calls from competing for the same cores or GPU.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from worker.batching import MicroBatcher
from worker.models.base import Detections, Detector, GenderAge, LoadedModels

Output = TypeVar("Output")


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How much work one model call may gather across jobs, and how long it may wait for it."""

    max_images: int = 8
    max_faces: int = 32
    max_wait_s: float = 0.002
    # Give each network one input shape: canvases fill max_size, face batches are padded to
    # max_faces. On a GPU every new shape costs ONNX Runtime's cuDNN about a second.
    static_shapes: bool = False
    # Pixels one detector call may see, one canvas or a batch of them (0: no limit). The
    # pipeline scales larger images down to it (FACEREST_MAX_DETECT_PIXELS), and a batch of
    # same-sized canvases is split to stay under it: the detector's memory grows with the
    # pixels of a call, so concurrent large photos cost one canvas's worth, not eight.
    max_detect_pixels: int = 0


class BatchedModels:
    """Model calls for many concurrent jobs; each call takes the device lock."""

    def __init__(self, loaded: LoadedModels, limits: BatchLimits | None = None) -> None:
        if not loaded.detectors:
            raise ValueError("BatchedModels needs at least one detector")
        self.loaded = loaded
        self.limits = limits or BatchLimits()
        # One model call at a time per device: on a CPU each call already uses every core.
        self._device_lock = threading.Lock()
        # Jobs inside job(): a batch need not wait for more callers than there are.
        self._active_jobs = 0
        self._active_lock = threading.Lock()
        self._detect_batchers: dict[str, MicroBatcher[tuple[NDArray[np.uint8], float], Detections]] = {
            key: MicroBatcher(
                partial(self._detect_many, detector),
                self.limits.max_images,
                self.limits.max_wait_s,
                f"detect-{key}",
                self._active,
            )
            for key, detector in loaded.detectors.items()
        }
        self._embed_batcher: MicroBatcher[NDArray[np.uint8], NDArray[np.float32]] = MicroBatcher(
            self._embed_many, self.limits.max_faces, self.limits.max_wait_s, "embed", self._active
        )

    def _active(self) -> int:
        return self._active_jobs

    @contextmanager
    def job(self) -> Iterator[None]:
        """Count one job in flight while the block runs (the batchers wait for at most that many)."""
        with self._active_lock:
            self._active_jobs += 1
        try:
            yield
        finally:
            with self._active_lock:
                self._active_jobs -= 1

    def close(self) -> None:
        for batcher in self._detect_batchers.values():
            batcher.close()
        self._embed_batcher.close()

    def detect(
        self, detector: str, canvases: Sequence[NDArray[np.uint8]], threshold: float
    ) -> list[Detections]:
        """Faces in each detector canvas (one image's passes), in that canvas's px, batched with
        other jobs' canvases of the same size."""
        return self._detect_batchers[detector].submit([(canvas, threshold) for canvas in canvases])

    def embed(self, crops: Sequence[NDArray[np.uint8]]) -> list[NDArray[np.float32]]:
        """Raw embeddings of aligned crops, batched with other jobs' crops."""
        return self._embed_batcher.submit(crops)

    def gender_age(self, image: NDArray[np.uint8], keypoints: NDArray[np.float32]) -> GenderAge | None:
        """Gender and age for keypoints in ``image``'s frame; None where the model is not loaded."""
        model = self.loaded.genderage
        return None if model is None else self._locked(partial(model.predict, image, keypoints))

    def landmarks106(
        self, image: NDArray[np.uint8], boxes: NDArray[np.float32], turns: NDArray[np.floating] | None = None
    ) -> NDArray[np.float32] | None:
        """106 landmarks in ``image``'s frame for boxes in it (``turns``: Landmarks106's); None
        where the model is not loaded."""
        model = self.loaded.landmarks106
        return None if model is None else self._locked(partial(model.landmarks, image, boxes, turns))

    def _locked(self, call: Callable[[], Output]) -> Output:
        with self._device_lock:
            return call()

    def _detect_many(
        self, detector: Detector, items: list[tuple[NDArray[np.uint8], float]]
    ) -> list[Detections]:
        """Detect in canvases of several jobs: one network call per canvas size."""
        results: list[Detections | None] = [None] * len(items)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, (canvas, _) in enumerate(items):
            by_shape.setdefault(canvas.shape, []).append(index)
        # With static shapes the detector keeps batch 1: SCRFD gains nothing from larger
        # batches even on a GPU (bench/gpu.py), and one batch size means one input shape.
        for shape, indices in by_shape.items():
            step = 1 if self.limits.static_shapes else self.limits.max_images
            if self.limits.max_detect_pixels:
                step = max(1, min(step, self.limits.max_detect_pixels // (shape[0] * shape[1])))
            for begin in range(0, len(indices), step):
                chunk = indices[begin : begin + step]
                with self._device_lock:
                    found = detector.detect_batch([items[i][0] for i in chunk], [items[i][1] for i in chunk])
                for index, detections in zip(chunk, found, strict=True):
                    results[index] = detections
        return [r if r is not None else Detections.empty() for r in results]

    def _embed_many(self, crops: list[NDArray[np.uint8]]) -> list[NDArray[np.float32]]:
        vectors: list[NDArray[np.float32]] = []
        size = self.limits.max_faces
        recognizer = self.loaded.recognizer
        for begin in range(0, len(crops), size):
            chunk = crops[begin : begin + size]
            batch = np.stack(chunk)
            if self.limits.static_shapes and len(chunk) < size:
                batch = np.concatenate([batch, np.zeros((size - len(chunk), *batch.shape[1:]), np.uint8)])
            with self._device_lock:
                vectors.extend(recognizer.embed(batch)[: len(chunk)])
        return vectors
