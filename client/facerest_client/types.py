"""Typed results: frozen dataclasses built from the service's answers (the envelope, api_ver 2).

Coordinates are pixels of the full-size, upright input image. ``vec`` is L2-normalised: compare
two faces with a dot product, and only vectors of the same ``recognizer`` (name and version).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Point = tuple[float, float]
Box = tuple[float, float, float, float]


def _points(value: Any) -> tuple[Point, ...] | None:
    return None if value is None else tuple((float(x), float(y)) for x, y in value)


def _bytes(value: Any) -> bytes | None:
    """An aligned crop: raw bytes from MessagePack, base64 text from JSON."""
    if value is None:
        return None
    return value if isinstance(value, bytes) else base64.b64decode(value)


@dataclass(frozen=True, slots=True)
class Face:
    bbox: Box  # x1, y1, x2, y2
    prob: float  # detection score
    landmarks: tuple[Point, ...] | None = None  # the 5 keypoints, with return_landmarks
    vec: tuple[float, ...] | None = None  # None with extract_embedding=False
    norm: float | None = None  # of the raw embedding: low values hint at a blurry or non-face
    gender: Literal["female", "male"] | None = None
    gender_score: float | None = None
    age: float | None = None
    landmarks106: tuple[Point, ...] | None = None
    facedata: bytes | None = None  # the aligned 112x112 crop, JPEG

    @classmethod
    def from_wire(cls, face: Mapping[str, Any]) -> Face:
        x1, y1, x2, y2 = face.get("bbox_float") or face["bbox"]
        return cls(
            bbox=(float(x1), float(y1), float(x2), float(y2)),
            prob=float(face["prob"]),
            landmarks=_points(face.get("landmarks_float") or face.get("landmarks")),
            vec=None if face.get("vec") is None else tuple(float(v) for v in face["vec"]),
            norm=face.get("norm"),
            gender=face.get("gender"),
            gender_score=face.get("gender_score"),
            age=face.get("age"),
            landmarks106=_points(face.get("landmarks106")),
            facedata=_bytes(face.get("facedata")),
        )


@dataclass(frozen=True, slots=True)
class ImageError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ImageResult:
    """One image of a request, in request order (``images``, then ``urls``)."""

    ok: bool
    faces: tuple[Face, ...] = ()
    size: tuple[int, int] | None = None  # width, height
    error: ImageError | None = None
    took_ms: float = 0.0
    timings: Mapping[str, float] | None = None

    @classmethod
    def from_wire(cls, image: Mapping[str, Any]) -> ImageResult:
        error = image.get("error")
        size = image.get("size")
        return cls(
            ok=image["status"] == "ok",
            faces=tuple(Face.from_wire(face) for face in image.get("faces") or ()),
            size=None if size is None else (int(size[0]), int(size[1])),
            error=None if error is None else ImageError(error["code"], error["message"]),
            took_ms=float(image.get("took_ms") or 0.0),
            timings=image.get("timings"),
        )


@dataclass(frozen=True, slots=True)
class ModelRef:
    key: str
    name: str
    version: str
    license: str

    @classmethod
    def from_wire(cls, model: Mapping[str, Any]) -> ModelRef:
        return cls(model["key"], model["name"], model["version"], model["license"])


@dataclass(frozen=True, slots=True)
class ExtractResult:
    images: tuple[ImageResult, ...]
    total_ms: float
    detector: ModelRef | None = None
    recognizer: ModelRef | None = None  # vectors compare only within one recognizer
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> ExtractResult:
        detector, recognizer = body.get("detector"), body.get("recognizer")
        return cls(
            images=tuple(ImageResult.from_wire(image) for image in body["data"]),
            total_ms=float(body["took"]["total_ms"]),
            detector=None if detector is None else ModelRef.from_wire(detector),
            recognizer=None if recognizer is None else ModelRef.from_wire(recognizer),
            warnings=tuple(body.get("warnings", ())),
        )


JobStatus = Literal["queued", "running", "done", "failed"]


@dataclass(frozen=True, slots=True)
class Job:
    """An asynchronous job: its state now, and its result once done."""

    id: str
    status: JobStatus
    result: ExtractResult | None = None
    error: ImageError | None = None

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Job:
        result, error = body.get("result"), body.get("error")
        return cls(
            id=body["id"],
            status=body["status"],
            result=None if result is None else ExtractResult.from_wire(result),
            error=None if error is None else ImageError(error["code"], error["message"]),
        )


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    det_name: str | None
    rec_name: str | None
    inference_backend: str
    detectors: tuple[str, ...]
    attributes: tuple[str, ...]
    limits: Mapping[str, float]
    raw: Mapping[str, Any] = field(repr=False)  # the whole /info answer: workers, licenses, ...

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> ServerInfo:
        models = body["models"]
        return cls(
            version=body["version"],
            det_name=models.get("det_name"),
            rec_name=models.get("rec_name"),
            inference_backend=models.get("inference_backend", ""),
            detectors=tuple(body.get("detectors", ())),
            attributes=tuple(body.get("attributes", ())),
            limits=body.get("limits", {}),
            raw=body,
        )
