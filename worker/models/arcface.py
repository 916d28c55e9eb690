"""ArcFace recognizer (InsightFace w600k MobileFaceNet); runs on any ModelSession (ONNX Runtime, OpenVINO)."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from worker.imaging.align import arcface_template
from worker.inference.files import ModelSpec
from worker.inference.session import ModelSession

ARCFACE_MEAN = 127.5
ARCFACE_STD = 127.5


class ArcFace:
    def __init__(self, session: ModelSession, spec: ModelSpec) -> None:
        self.spec = spec
        self._session = session
        model_input = session.get_inputs()[0]
        self._input = model_input.name
        self.input_size = int(model_input.shape[2])
        self.dimension = 512
        self.template = arcface_template(self.input_size)

    def embed(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        if len(crops) == 0:
            return np.zeros((0, self.dimension), np.float32)
        blob = cv2.dnn.blobFromImages(
            list(crops), 1.0 / ARCFACE_STD, (self.input_size,) * 2, (ARCFACE_MEAN,) * 3, swapRB=False
        )
        output = self._session.run(None, {self._input: blob})[0]
        return np.asarray(output, dtype=np.float32)
