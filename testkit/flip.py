"""The similarity sets that show what mirror-augmented embeddings ("flip") do: t1.jpg's six faces
against themselves in altered copies of the photo (same person), and every pair of different
faces in t1.jpg, gdp.jpg and players.jpg (different people).

bench/flip.py measured them and the cost until commit b87d7da (docs/accuracy.md keeps its
figures); tests/unit/test_flip.py checks their direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from shared.contract import AnalysisOptions, ImageResult
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from worker.analyzer import FaceAnalyzer
from worker.models.postprocess import box_iou

Image = NDArray[np.uint8]
# Geometric alterations move the faces: each returns the image and the 2x3 matrix that maps
# original px to its px (for matching the faces).
Alteration = Callable[[Image], tuple[Image, NDArray[np.float64]]]


def _rotated(image: Image, degrees: float = 12.0) -> tuple[Image, NDArray[np.float64]]:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(image, matrix, (width, height)), np.uint8), np.asarray(
        matrix, np.float64
    )


def _smaller(image: Image, factor: float = 0.5) -> tuple[Image, NDArray[np.float64]]:
    height, width = image.shape[:2]
    small = cv2.resize(image, (int(width * factor), int(height * factor)), interpolation=cv2.INTER_AREA)
    return np.asarray(small, np.uint8), np.array([[factor, 0, 0], [0, factor, 0]])


def _jpeg(image: Image, quality: int = 15) -> tuple[Image, NDArray[np.float64]]:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), np.uint8), np.eye(2, 3)


def _darker(image: Image, gamma: float = 1.8) -> tuple[Image, NDArray[np.float64]]:
    table = np.array([255 * (i / 255) ** gamma for i in range(256)], np.uint8)
    return np.asarray(cv2.LUT(image, table), np.uint8), np.eye(2, 3)


ALTERATIONS: dict[str, Alteration] = {
    "rotated 12 deg": _rotated,
    "half size": _smaller,
    "JPEG quality 15": _jpeg,
    "gamma 1.8": _darker,
}


@dataclass(frozen=True, slots=True)
class Similarities:
    same: NDArray[np.floating]  # one per (face of t1.jpg, alteration)
    different: NDArray[np.floating]  # one per pair of different faces in one photo


def vectors(result: ImageResult) -> NDArray[np.float32]:
    return np.stack([np.frombuffer(face.vec or b"", np.float32) for face in result.faces])


def _boxes(result: ImageResult) -> NDArray[np.float32]:
    return np.array([face.bbox for face in result.faces], np.float32)


def similarities(analyzer: FaceAnalyzer, flip: bool) -> Similarities:
    options = AnalysisOptions(flip=flip)
    original = read_rgb(GROUP_PHOTOS["t1.jpg"])
    altered = {name: alter(original) for name, alter in ALTERATIONS.items()}
    photos = [encode(original)] + [encode(image) for image, _ in altered.values()]
    base, *copies = analyzer.analyze(photos, options)
    same: list[float] = []
    for (_, matrix), copy in zip(altered.values(), copies, strict=True):
        for face, vector in zip(base.faces, vectors(base), strict=True):
            corners = np.array(face.bbox).reshape(2, 2)
            moved = corners @ matrix[:, :2].T + matrix[:, 2]
            box = np.concatenate([moved.min(axis=0), moved.max(axis=0)])[None]
            match = int(box_iou(_boxes(copy), box).argmax())
            same.append(float(vector @ vectors(copy)[match]))
    different: list[float] = []
    groups = [
        base,
        *analyzer.analyze([GROUP_PHOTOS[n].read_bytes() for n in ("gdp.jpg", "players.jpg")], options),
    ]
    for result in groups:
        pairs = vectors(result) @ vectors(result).T
        different += pairs[np.triu_indices(len(pairs), k=1)].tolist()
    return Similarities(np.array(same), np.array(different))
