"""SCRFD face detector (InsightFace) with 5 keypoints; runs on any ModelSession (ONNX Runtime, OpenVINO)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from worker.inference.files import ModelSpec
from worker.inference.session import ModelSession
from worker.models.base import Detections
from worker.models.postprocess import anchor_centers, distance_to_boxes, nms, offsets_to_points

SCRFD_STRIDES = (8, 16, 32)
SCRFD_ANCHORS_PER_CELL = 2
SCRFD_MEAN = 127.5
SCRFD_STD = 128.0
SCRFD_NMS_IOU = 0.4
# SCRFD-500M misses faces wider than about 340 canvas px (bench/coarse.py: a face filling a
# 384 px canvas scores 0.62-0.73, at 480 px it is not found).
SCRFD_FULL_FRAME_SIDE = 320


class SCRFD:
    """Decoding as in insightface 0.7.3's SCRFD class; outputs ordered score, bbox, kps by stride."""

    full_frame_side = SCRFD_FULL_FRAME_SIDE

    def __init__(self, session: ModelSession, spec: ModelSpec) -> None:
        self.spec = spec
        self._session = session
        self._input = session.get_inputs()[0].name
        self._outputs = [o.name for o in session.get_outputs()]
        self._centers: dict[tuple[int, int, int], NDArray[np.float32]] = {}

    def _centers_for(self, height: int, width: int, stride: int) -> NDArray[np.float32]:
        key = (height, width, stride)
        if key not in self._centers:
            self._centers[key] = anchor_centers(height, width, stride, SCRFD_ANCHORS_PER_CELL)
        return self._centers[key]

    def detect_batch(
        self, canvases: Sequence[NDArray[np.uint8]], thresholds: Sequence[float]
    ) -> list[Detections]:
        """One network call for same-sized canvases; each image keeps its own threshold."""
        height, width = canvases[0].shape[:2]
        blob = cv2.dnn.blobFromImages(
            list(canvases), 1.0 / SCRFD_STD, (width, height), (SCRFD_MEAN,) * 3, swapRB=False
        )
        outputs = self._session.run(self._outputs, {self._input: blob})
        return [
            self._decode(outputs, index, height, width, threshold)
            for index, threshold in enumerate(thresholds)
        ]

    def _decode(
        self, outputs: list[NDArray[np.float32]], index: int, height: int, width: int, threshold: float
    ) -> Detections:
        count = len(SCRFD_STRIDES)
        boxes, scores, points = [], [], []
        for level, stride in enumerate(SCRFD_STRIDES):
            level_scores = outputs[level][index, :, 0]
            keep = np.flatnonzero(level_scores >= threshold)
            if keep.size == 0:
                continue
            centers = self._centers_for(height // stride, width // stride, stride)[keep]
            ltrb = outputs[count + level][index, keep] * stride
            offsets = outputs[2 * count + level][index, keep] * stride
            boxes.append(distance_to_boxes(centers, ltrb))
            points.append(offsets_to_points(centers, offsets))
            scores.append(level_scores[keep])
        if not scores:
            return Detections.empty()
        found = Detections(
            np.concatenate(boxes).astype(np.float32),
            np.concatenate(scores).astype(np.float32),
            np.concatenate(points).astype(np.float32),
        )
        return found.take(nms(found.boxes, found.scores, SCRFD_NMS_IOU))
