"""dlib's ResNet face descriptor (128-d, CC0 weights), run by dlib on the CPU."""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
from numpy.typing import NDArray

from worker.imaging.align import dlib_chip_template
from worker.inference.files import ModelSpec

DLIB_CHIP_SIZE = 150
# The padding of dlib's face-recognition examples (get_face_chip(img, shape, 150, 0.25)).
DLIB_CHIP_PADDING = 0.25


class DlibDescriptor:
    """Same protocol as ArcFace: aligned RGB crops in, raw vectors out (dlib's are not normalised)."""

    def __init__(self, path: Path, spec: ModelSpec) -> None:
        self.spec = spec
        self._model = dlib.face_recognition_model_v1(str(path))
        self.input_size = DLIB_CHIP_SIZE
        self.dimension = 128
        self.template = dlib_chip_template(DLIB_CHIP_SIZE, DLIB_CHIP_PADDING)

    def embed(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        if len(crops) == 0:
            return np.zeros((0, self.dimension), np.float32)
        chips = [np.ascontiguousarray(crop) for crop in crops]
        vectors = self._model.compute_face_descriptor(chips)
        return np.array([np.asarray(v) for v in vectors], dtype=np.float32).reshape(-1, self.dimension)
