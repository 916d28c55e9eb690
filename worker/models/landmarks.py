"""InsightFace 2d106det: 106 facial landmarks from a crop around the detected box; runs on any
ModelSession."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from worker.imaging.align import turn_onto
from worker.inference.files import ModelSpec
from worker.inference.session import ModelSession

# The crop is the box's longer side times this margin, centred on the box.
LANDMARK_BOX_MARGIN = 1.5


def box_crop_matrix(
    box: NDArray[np.float32], size: int, margin: float, degrees: float = 0.0
) -> NDArray[np.float64]:
    """The 2x3 matrix mapping image px to a ``size`` px square centred on the box, turned by
    ``degrees`` counter-clockwise about its centre (a lying face set upright, as the model
    was trained on)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    scale = size / (max(x2 - x1, y2 - y1) * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if not degrees:
        return np.array([[scale, 0.0, size / 2 - cx * scale], [0.0, scale, size / 2 - cy * scale]])
    return turn_onto((cx, cy), degrees, scale, (size / 2, size / 2))


class Landmarks106:
    """Normalisation is inside the graph: it takes raw RGB 0-255 and returns points in [-1, 1]."""

    def __init__(self, session: ModelSession, spec: ModelSpec) -> None:
        self.spec = spec
        self._session = session
        model_input = session.get_inputs()[0]
        self._input = model_input.name
        self.input_size = int(model_input.shape[2])
        self.points = int(session.get_outputs()[0].shape[1]) // 2

    def landmarks(
        self, image: NDArray[np.uint8], boxes: NDArray[np.float32], turns: NDArray[np.floating] | None = None
    ) -> NDArray[np.float32]:
        """Points in the frame of ``image`` for boxes in that frame; ``turns``: the degrees that
        set each face upright (counter-clockwise; 0 or None: the crop is not turned)."""
        if len(boxes) == 0:
            return np.zeros((0, self.points, 2), np.float32)
        size = self.input_size
        degrees = np.zeros(len(boxes)) if turns is None else turns
        matrices = [
            box_crop_matrix(box, size, LANDMARK_BOX_MARGIN, float(turn))
            for box, turn in zip(boxes, degrees, strict=True)
        ]
        crops = np.stack([cv2.warpAffine(image, m, (size, size), borderValue=0.0) for m in matrices])
        blob = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        output = np.asarray(self._session.run(None, {self._input: blob})[0], np.float64)
        in_crop = (output.reshape(len(boxes), -1, 2) + 1) * (size // 2)
        result = np.empty_like(in_crop)
        for i, matrix in enumerate(matrices):
            inverse = cv2.invertAffineTransform(matrix)
            result[i] = in_crop[i] @ inverse[:, :2].T + inverse[:, 2]
        return result.astype(np.float32)
