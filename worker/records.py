"""Wire records (shared/contract.py's ``Face`` and ``ImageResult``) from the pipeline's faces.

Coordinates stay in full-size image px; ``vec`` is the L2-normalised embedding as float32 bytes.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from shared.contract import AnalysisOptions, Face, ImageResult
from worker.pipeline import AnalyzedFace, FailedImage, ImageOutcome


def image_result(outcome: ImageOutcome, options: AnalysisOptions) -> ImageResult:
    if isinstance(outcome, FailedImage):
        return ImageResult.failed(outcome.error.info(), outcome.took_ms)
    return ImageResult(
        status="ok",
        took_ms=outcome.took_ms,
        size=(outcome.width, outcome.height),
        faces=tuple(face_record(face, options) for face in outcome.faces),
        timings=dict(outcome.timings) if options.verbose_timings else None,
    )


def face_record(face: AnalyzedFace, options: AnalysisOptions) -> Face:
    x1, y1, x2, y2 = (round(float(v), 2) for v in face.box)
    vec, norm = None, None
    if face.embedding is not None:
        raw_norm = float(np.linalg.norm(face.embedding))
        vec = (face.embedding / max(raw_norm, 1e-12)).astype(np.float32).tobytes()
        norm = round(raw_norm, 4)
    gender: Literal["female", "male"] | None = None
    gender_score, age = None, None
    if face.male is not None and face.age is not None:
        gender = "male" if face.male >= 0.5 else "female"
        gender_score = round(max(face.male, 1.0 - face.male), 4)
        age = round(face.age, 1)
    return Face(
        bbox=(x1, y1, x2, y2),
        prob=round(face.score, 5),
        landmarks=_points(face.keypoints),
        vec=vec,
        norm=norm,
        facedata=_encode_jpeg(face.crop) if options.return_face_data and face.crop is not None else None,
        gender=gender,
        gender_score=gender_score,
        age=age,
        landmarks106=None if face.landmarks106 is None else _points(face.landmarks106),
        quality=face.quality,
    )


def _points(points: NDArray[np.float32]) -> list[tuple[float, float]]:
    return [(round(float(x), 2), round(float(y), 2)) for x, y in points]


def _encode_jpeg(crop: NDArray[np.uint8]) -> bytes:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return encoded.tobytes() if ok else b""
