"""Wire schemas: the /extract request, the options a job carries, and the worker's result records."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_MAX_SIZE = (640, 640)

# What requests and settings call the models (ModelSpec.key in worker/inference/registry.py).
DetectorName = Literal["scrfd", "retinaface", "mtcnn"]
RecognizerName = Literal["arcface", "dlib"]
AttributeName = Literal["genderage", "landmarks106"]
DETECTOR_NAMES: tuple[DetectorName, ...] = ("scrfd", "retinaface", "mtcnn")
RECOGNIZER_NAMES: tuple[RecognizerName, ...] = ("arcface", "dlib")
ATTRIBUTE_NAMES: tuple[AttributeName, ...] = ("genderage", "landmarks106")


class Images(BaseModel):
    """Images as base64 strings (plain or ``data:`` URLs) and/or http(s) URLs the API fetches."""

    model_config = ConfigDict(extra="forbid")

    data: list[str] = Field(default_factory=list, description="Base64-encoded image files.")
    urls: list[str] = Field(
        default_factory=list,
        description="http(s) URLs of image files, answered after the images in data. Private, "
        "loopback, link-local and multicast addresses are refused unless allowed by FACEREST_URL_ALLOW.",
    )


class ExtractRequest(BaseModel):
    """POST /extract, in the format of the original InsightFace-REST.

    Unknown fields are ignored so that clients written for the original keep working.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    images: Images
    max_size: list[int] | int = Field(
        default=list(DEFAULT_MAX_SIZE),
        description="[width, height] an image is scaled down to (never up) before detection, "
        "proportions kept; 0 or [0, 0] means no resizing.",
    )
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.6
    limit_faces: Annotated[int, Field(ge=0, description="Keep the N largest faces; 0 = all.")] = 0
    min_face_size: Annotated[int, Field(ge=0, description="Drop faces narrower (px).")] = 0
    extract_embedding: bool = True
    return_landmarks: bool | Literal["106"] = Field(
        False, description='true: the 5 keypoints; "106": also the 106 dense landmarks (2d106det).'
    )
    extract_ga: bool = Field(False, description="Gender (with its probability) and age of each face.")
    detector: DetectorName | None = Field(
        None, description="Detector to use; the worker's first configured detector when omitted."
    )
    return_face_data: bool = False
    embed_only: bool = Field(False, description="Inputs are aligned 112x112 crops.")
    verbose_timings: bool = False
    api_ver: Literal["1", "2"] = "1"
    run_async: bool = Field(False, alias="async", description="Return 202 with a job id.")
    msgpack: bool = Field(False, description="Answer in MessagePack (as Accept does).")

    @field_validator("api_ver", mode="before")
    @classmethod
    def _api_ver_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("max_size")
    @classmethod
    def _check_max_size(cls, value: list[int] | int) -> list[int] | int:
        sizes = [value, value] if isinstance(value, int) else value
        if len(sizes) != 2 or any(s < 0 for s in sizes):
            raise ValueError("max_size must be [width, height] of non-negative integers, or 0")
        if 0 in sizes and sizes != [0, 0]:
            raise ValueError("max_size: use 0 or [0, 0] to disable resizing")
        if any(0 < s < 32 for s in sizes):
            raise ValueError("max_size: each side must be 0 or at least 32")
        return value

    def options(self, max_faces: int) -> AnalysisOptions:
        sizes = [self.max_size, self.max_size] if isinstance(self.max_size, int) else self.max_size
        return AnalysisOptions(
            max_size=(sizes[0], sizes[1]),
            threshold=self.threshold,
            limit_faces=min(self.limit_faces or max_faces, max_faces),
            min_face_size=self.min_face_size,
            extract_embedding=self.extract_embedding,
            return_landmarks=bool(self.return_landmarks),
            return_landmarks106=self.return_landmarks == "106",
            extract_ga=self.extract_ga,
            detector=self.detector,
            return_face_data=self.return_face_data,
            embed_only=self.embed_only,
            verbose_timings=self.verbose_timings,
        )


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """Per-job options; passed as arguments, never written onto shared objects."""

    max_size: tuple[int, int] = DEFAULT_MAX_SIZE
    threshold: float = 0.6
    limit_faces: int = 256
    min_face_size: int = 0
    extract_embedding: bool = True
    return_landmarks: bool = False
    return_face_data: bool = False
    embed_only: bool = False
    verbose_timings: bool = False
    return_landmarks106: bool = False
    extract_ga: bool = False
    detector: str | None = None  # None: the worker's default detector

    def required_models(self) -> tuple[str | None, list[str]]:
        """The detector (None: default) and the attribute models these options need."""
        attributes = []
        if self.extract_ga:
            attributes.append("genderage")
        if self.return_landmarks106:
            attributes.append("landmarks106")
        return self.detector, attributes

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> AnalysisOptions:
        values = dict(data)
        values["max_size"] = tuple(values["max_size"])
        return cls(**values)


class ErrorRecord(TypedDict):
    code: str
    message: str


class FaceRecord(TypedDict):
    """One face, in original-image pixel coordinates. ``vec`` is float32 bytes, L2-normalised."""

    bbox: list[float]
    prob: float
    landmarks: list[list[float]]
    vec: NotRequired[bytes]
    norm: NotRequired[float]
    facedata: NotRequired[bytes]
    gender: NotRequired[Literal["female", "male"]]
    gender_score: NotRequired[float]  # probability of the reported gender, 0.5 ... 1
    age: NotRequired[float]  # years
    landmarks106: NotRequired[list[list[float]]]


class ImageRecord(TypedDict):
    status: Literal["ok", "error"]
    took_ms: float
    size: NotRequired[list[int]]
    faces: NotRequired[list[FaceRecord]]
    error: NotRequired[ErrorRecord]
    timings: NotRequired[dict[str, float]]


class ModelRecord(TypedDict):
    """Which model made a result: vectors of different recognizers are never comparable."""

    key: str
    name: str
    version: str
    license: str


class JobResult(TypedDict):
    images: list[ImageRecord]
    worker: str
    took_ms: float
    detector: NotRequired[ModelRecord]
    recognizer: NotRequired[ModelRecord]


class JobPayload(TypedDict):
    """What the API stores for the worker: raw image bytes (None where the API already failed it)."""

    images: list[bytes | None]
    errors: dict[str, ErrorRecord]  # keyed by the image index, as text
    options: dict[str, Any]
    request_id: str
