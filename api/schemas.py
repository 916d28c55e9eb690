"""The HTTP wire types: the /extract request (pydantic, validates) and every response body
(TypedDicts the routes build). api/openapi.py generates the OpenAPI document from these same
types, so the document cannot drift from what is validated and sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, with_config
from typing_extensions import TypedDict

from shared.contract import DEFAULT_MAX_SIZE, DEFAULT_THRESHOLD, AnalysisOptions
from shared.recognition import DEFAULT_LIMIT, MAX_LIMIT, NAME_PATTERN, NAME_RULE


class Images(BaseModel):
    """Images as base64 strings (plain or ``data:`` URLs) and/or http(s) URLs the API fetches."""

    model_config = ConfigDict(extra="forbid")

    data: list[str] = Field(default_factory=list, description="Base64-encoded image files.")
    urls: list[str] = Field(
        default_factory=list,
        description="http(s) URLs of image files, answered after the images in data. Private, "
        "loopback, link-local and multicast addresses are refused unless allowed by FACEREST_URL_ALLOW.",
    )

    @property
    def count(self) -> int:
        return len(self.data) + len(self.urls)


def check_max_size(value: list[int] | int) -> list[int] | int:
    sizes = [value, value] if isinstance(value, int) else value
    if len(sizes) != 2 or any(s < 0 for s in sizes):
        raise ValueError("max_size must be [width, height] of non-negative integers, or 0")
    if 0 in sizes and sizes != [0, 0]:
        raise ValueError("max_size: use 0 or [0, 0] to disable resizing")
    if any(0 < s < 32 for s in sizes):
        raise ValueError("max_size: each side must be 0 or at least 32")
    return value


class ExtractRequest(BaseModel):
    """POST /extract, in the format of the original InsightFace-REST.

    Unknown fields are ignored so that clients written for the original keep working.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    images: Images
    max_size: list[int] | int = Field(
        default=list(DEFAULT_MAX_SIZE),
        description="[width, height] an image is scaled down to (never up) before detection, "
        "proportions kept; 0 or [0, 0] means no resizing. Either way the detector's canvas holds "
        "at most FACEREST_MAX_DETECT_PIXELS (/info: max_detect_pixels; default 3840x2160): a larger "
        "image is scaled down to that many pixels. Boxes are always in original-image pixels.",
    )
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] = DEFAULT_THRESHOLD
    limit_faces: Annotated[int, Field(ge=0, description="Keep the N largest faces; 0 = all.")] = 0
    min_face_size: Annotated[int, Field(ge=0, description="Drop faces narrower (px).")] = 0
    extract_embedding: bool = True
    return_landmarks: bool | Literal["106"] = Field(
        False, description='true: the 5 keypoints; "106": also the 106 dense landmarks (2d106det).'
    )
    extract_ga: bool = Field(False, description="Gender (with its probability) and age of each face.")
    detector: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]*$",
        max_length=32,
        description="Detector to use (scrfd, retinaface, mtcnn: /info lists the loaded ones); "
        "the worker's first configured detector when omitted.",
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
        return check_max_size(value)

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


# Response bodies. Embeddings leave as numpy arrays (orjson and the MessagePack encoder write
# them as lists of numbers); the schema says so.
Vector = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "number"},
            "description": "L2-normalised embedding (512-d ArcFace, or 128-d dlib in the permissive profile)",
        }
    ),
]
Point = tuple[float, float]


class ErrorBody(TypedDict):
    code: Annotated[str, Field(description="Stable, machine-readable")]
    message: Annotated[str, Field(description="What is wrong, naming the field or limit")]


@with_config(ConfigDict(extra="forbid"))
class ErrorDetail(TypedDict):
    """Every error response: ``code`` and ``message``, and extra fields where the code has them."""

    code: str
    message: str
    available: NotRequired[
        Annotated[list[str], Field(description="Model_not_loaded: the loaded models of that kind")]
    ]
    retry_after_s: NotRequired[
        Annotated[int, Field(description="Overloaded: also in the Retry-After header")]
    ]
    id: NotRequired[Annotated[str, Field(description="Timeout: the job goes on; poll status_url")]]
    status_url: NotRequired[str]


@with_config(ConfigDict(extra="forbid"))
class FaceV1(TypedDict):
    """A face in the original InsightFace-REST format: integer pixels of the original image."""

    vec: Vector | None
    det: Annotated[int, Field(description="Index of the face in its image")]
    prob: Annotated[float, Field(description="Detection score")]
    bbox: Annotated[list[int], Field(description="x1, y1, x2, y2 in original image pixels")]
    landmarks: NotRequired[Annotated[list[list[int]], Field(description="With return_landmarks")]]
    facedata: NotRequired[Annotated[str, Field(description="Aligned crop, base64 JPEG")]]
    gender: NotRequired[Annotated[Literal["female", "male"], Field(description="With extract_ga")]]
    gender_score: NotRequired[
        Annotated[float, Field(description="Probability of the reported gender, 0.5-1")]
    ]
    age: NotRequired[Annotated[float, Field(description="Years, with extract_ga")]]
    landmarks106: NotRequired[Annotated[list[Point], Field(description='With return_landmarks "106"')]]


ExtractV1 = list[list[FaceV1]]


@with_config(ConfigDict(extra="forbid"))
class FaceV2(TypedDict):
    bbox: Annotated[
        tuple[float, float, float, float], Field(description="x1, y1, x2, y2 in original image pixels")
    ]
    prob: float
    size: Annotated[list[float], Field(description="Box width and height in pixels")]
    landmarks: NotRequired[list[Point]]
    vec: NotRequired[Vector]
    norm: NotRequired[
        Annotated[float | None, Field(description="Norm of the raw embedding (a quality hint)")]
    ]
    facedata: NotRequired[str]
    gender: NotRequired[Literal["female", "male"]]
    gender_score: NotRequired[float]
    age: NotRequired[float]
    landmarks106: NotRequired[list[Point]]


@with_config(ConfigDict(extra="forbid"))
class ImageV2(TypedDict):
    status: Literal["ok", "error"]
    took_ms: float
    size: NotRequired[Annotated[tuple[int, int], Field(description="Image width and height")]]
    faces: NotRequired[list[FaceV2]]
    error: NotRequired[ErrorBody]
    timings: NotRequired[dict[str, float]]


class ModelV2(TypedDict):
    key: Annotated[str, Field(description="Request name: scrfd, retinaface, mtcnn, arcface, dlib")]
    name: str
    version: Annotated[str, Field(description="The package and version the weights come from")]
    license: str


class TookV2(TypedDict):
    total_ms: float
    worker_ms: float


@with_config(ConfigDict(extra="forbid"))
class ExtractV2(TypedDict):
    took: TookV2
    worker: str
    detector: ModelV2
    recognizer: Annotated[
        ModelV2, Field(description="Made the vectors; vectors of different recognizers never compare")
    ]
    data: list[ImageV2]


# Recognition: requests (the images as in /extract) and answers.
NameText = Annotated[str, Field(pattern=NAME_PATTERN.pattern, description=NAME_RULE)]


class RecognitionRequest(BaseModel):
    """What every recognition request shares: the images, the detector and the answer options."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    images: Images
    detector: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_]*$", max_length=32, description="As in /extract."
    )
    max_size: list[int] | int = Field(default=list(DEFAULT_MAX_SIZE), description="As in /extract.")
    det_threshold: Annotated[float, Field(ge=0.0, le=1.0, description="Detection score threshold.")] = (
        DEFAULT_THRESHOLD
    )
    run_async: bool = Field(False, alias="async", description="Return 202 with a job id.")
    msgpack: bool = Field(False, description="Answer in MessagePack (as Accept does).")

    @field_validator("max_size")
    @classmethod
    def _check_max_size(cls, value: list[int] | int) -> list[int] | int:
        return check_max_size(value)

    def options(self, max_faces: int) -> AnalysisOptions:
        sizes = [self.max_size, self.max_size] if isinstance(self.max_size, int) else self.max_size
        return AnalysisOptions(
            max_size=(sizes[0], sizes[1]),
            threshold=self.det_threshold,
            limit_faces=max_faces,
            detector=self.detector,
        )


class EnrollRequest(RecognitionRequest):
    face: Literal["largest", "only"] = Field(
        "largest",
        description='Which face of each image to enroll: the largest, or "only" (a photo with several '
        "faces is refused with 422 several_faces).",
    )


SimilarityThreshold = Annotated[
    float | None,
    Field(
        ge=-1.0,
        le=1.0,
        description="Cosine similarity at or above which a face is the subject; default: the "
        "recognizer's calibrated threshold (/info, docs/recognition.md).",
    ),
]


class RecognizeRequest(RecognitionRequest):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Matches per face (top-k subjects).")] = (
        DEFAULT_LIMIT
    )
    threshold: SimilarityThreshold = None


class VerifyRequest(RecognitionRequest):
    threshold: SimilarityThreshold = None
    collection: NameText | None = Field(None, description="With subject: compare one image with a subject.")
    subject: NameText | None = None


class ThumbnailFace(TypedDict):
    id: str
    subject: str
    bbox: tuple[float, float, float, float]
    prob: float
    faces_in_image: Annotated[int, Field(description="Faces found in the photo it came from")]
    thumbnail_url: Annotated[str, Field(description="The aligned 112x112 crop, JPEG")]


@with_config(ConfigDict(extra="forbid"))
class EnrolledFaceBody(ThumbnailFace):
    new: Annotated[bool, Field(description="False: this photo was enrolled for this subject before")]


@with_config(ConfigDict(extra="forbid"))
class EnrollBody(TypedDict):
    collection: str
    faces: list[EnrolledFaceBody]
    took: TookV2
    recognizer: ModelV2


class SubjectMatchBody(TypedDict):
    subject: str
    similarity: float


@with_config(ConfigDict(extra="forbid"))
class RecognizedFaceBody(TypedDict):
    bbox: tuple[float, float, float, float]
    prob: float
    subject: Annotated[str | None, Field(description="null: nobody reaches the threshold")]
    similarity: Annotated[
        float | None, Field(description="The subject's (its best face), else the best match's")
    ]
    matches: list[SubjectMatchBody]


@with_config(ConfigDict(extra="forbid"))
class RecognizedImageBody(TypedDict):
    status: Literal["ok", "error"]
    took_ms: float
    faces: NotRequired[list[RecognizedFaceBody]]
    error: NotRequired[ErrorBody]


@with_config(ConfigDict(extra="forbid"))
class RecognizeBody(TypedDict):
    took: TookV2
    collection: str
    threshold: float
    recognizer: ModelV2
    data: list[RecognizedImageBody]


@with_config(ConfigDict(extra="forbid"))
class VerifyBody(TypedDict):
    same: bool
    similarity: float
    threshold: float
    faces: Annotated[
        list[tuple[float, float, float, float]], Field(description="The face compared per image")
    ]
    took: TookV2
    recognizer: ModelV2


@with_config(ConfigDict(extra="forbid"))
class ReindexBody(TypedDict):
    collection: str
    faces: int
    dropped: Annotated[int, Field(description="Crops the new recognizer gave no vector for (removed)")]
    took: TookV2
    recognizer: ModelV2


class RecognizerBody(TypedDict):
    key: str
    name: str
    version: str
    license: str
    dimension: int


@with_config(ConfigDict(extra="forbid"))
class CollectionBody(TypedDict):
    collection: str
    recognizer: RecognizerBody
    created: float
    subjects: int
    faces: int


@with_config(ConfigDict(extra="forbid"))
class CollectionsBody(TypedDict):
    collections: list[CollectionBody]


@with_config(ConfigDict(extra="forbid"))
class SubjectBody(TypedDict):
    subject: str
    faces: int
    created: float


@with_config(ConfigDict(extra="forbid"))
class SubjectsBody(TypedDict):
    subjects: list[SubjectBody]
    offset: int
    limit: int
    next: Annotated[str | None, Field(description="The next page's URL; null on the last page")]


@with_config(ConfigDict(extra="forbid"))
class SubjectFacesBody(TypedDict):
    collection: str
    subject: str
    faces: list[ThumbnailFace]


@with_config(ConfigDict(extra="forbid"))
class DeletedBody(TypedDict):
    deleted: Annotated[int, Field(description="Faces (or collections) removed")]


RecognitionBody = EnrollBody | RecognizeBody | VerifyBody | ReindexBody


JobStatusName = Literal["queued", "running", "done", "failed"]


@with_config(ConfigDict(extra="forbid"))
class JobAccepted(TypedDict):
    id: str
    # "queued" for a new job; a retry with the same Idempotency-Key gets the job's state now.
    status: JobStatusName
    status_url: str


@with_config(ConfigDict(extra="forbid"))
class JobStateBody(TypedDict):
    id: str
    status: JobStatusName
    created: float
    started: float | None
    finished: float | None
    worker: str | None
    attempts: Annotated[int, Field(description="Deliveries to a worker so far (more than one after a crash)")]
    result: NotRequired[
        Annotated[
            ExtractV1 | ExtractV2 | RecognitionBody,
            Field(description="When done: what the synchronous request returns"),
        ]
    ]
    error: NotRequired[ErrorDetail]


class HealthBody(TypedDict):
    status: Literal["ok", "error", "draining"]
    redis: NotRequired[str]


class ReadyBody(TypedDict):
    ready: bool
    workers: NotRequired[int]
    draining: NotRequired[bool]


class InfoBody(TypedDict):
    name: str
    version: str
    api_versions: list[str]
    workers: Annotated[
        list[dict[str, Any]], Field(description="Each worker's heartbeat: device, models, concurrency")
    ]
    models: Annotated[
        list[dict[str, Any]], Field(description="Each loaded model with its license and SHA-256")
    ]
    detectors: Annotated[list[str], Field(description="What every online worker can serve")]
    attributes: list[str]
    recognizers: Annotated[
        list[dict[str, Any]], Field(description="Vectors compare only within one recognizer")
    ]
    limits: dict[str, float]
    api_keys: Annotated[bool, Field(description="Whether keys are required; the keys are never shown")]
    queue_depth: Annotated[int, Field(description="Jobs queued and not yet taken by a worker")]
