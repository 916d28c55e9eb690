"""The HTTP wire types: the /extract request (pydantic, validates) and every response body
(TypedDicts the routes build). api/openapi.py generates the OpenAPI document from these same
types, so the document cannot drift from what is validated and sent.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NotRequired

import msgspec
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from shared.contract import DEFAULT_MAX_SIZE, DEFAULT_THRESHOLD, AnalysisOptions
from shared.recognition import DEFAULT_LIMIT, MAX_LIMIT, NAME_PATTERN, NAME_RULE

# An image as the body carries it: a base64 string (JSON, or MessagePack from a client that
# encodes anyway) or the file's raw bytes (MessagePack bin, multipart file). The schema documents
# the JSON form; api/bodies.py explains the others.
ImageData = Annotated[
    str | bytes,
    WithJsonSchema({"type": "string", "description": "base64 image file (raw bytes in MessagePack)"}),
]
# The headers an image request may not set: the fetcher sets them itself (Host, Accept-Encoding:
# identity keeps compressed bombs out) or they belong to the connection, not the request.
FORBIDDEN_FETCH_HEADERS = frozenset(
    {
        "host",
        "accept-encoding",
        "content-length",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
        "keep-alive",
        "trailer",
        "expect",
    }
)
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
MAX_FETCH_HEADERS = 32
MAX_FETCH_HEADER_BYTES = 8192


class Images(BaseModel):
    """Images as base64 strings (plain or ``data:`` URLs) or raw bytes, and/or http(s) URLs."""

    model_config = ConfigDict(extra="forbid")

    data: list[ImageData] = Field(
        default_factory=list,
        description="Base64-encoded image files (raw bytes in a MessagePack body; multipart: file fields).",
    )
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


def max_size_pair(value: list[int] | int) -> tuple[int, int]:
    sizes = [value, value] if isinstance(value, int) else value
    return sizes[0], sizes[1]


class ImagesBody(BaseModel):
    """What every request that carries images has: the images, and how to fetch their URLs.

    api/bodies.py reads it from JSON, MessagePack or multipart; routes subclass it with their
    own options (ExtractRequest, DrawRequest, and the recognition requests).
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    images: Images
    img_req_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers sent with each images.urls request (e.g. Authorization, Cookie, "
        "User-Agent), to the URL's own host only: dropped on a redirect to another host. Host, "
        "Accept-Encoding and connection headers are refused.",
    )
    detect_masks: bool = Field(
        False,
        description="Not supported (no mask model ships under a usable license): true answers "
        "mask_probs null and a warning (docs/compatibility.md).",
    )
    api_ver: Literal["1", "2"] | None = Field(
        None,
        description='"1": the bare list; "2": the envelope. Unset: FACEREST_RESPONSE_FORMAT decides '
        "(auto: the envelope for a MessagePack or multipart body or one with msgpack, img_req_headers "
        "or detect_masks, else the list; docs/compatibility.md).",
    )
    msgpack: bool = Field(False, description="Answer in MessagePack (as Accept: application/x-msgpack does).")

    @model_validator(mode="before")
    @classmethod
    def _null_is_the_default(cls, value: Any) -> Any:
        """``null`` for an option means its default, as in InsightFace-REST's schema (all its
        options are Optional): its asyncio client sends ``"img_req_headers": null``."""
        if isinstance(value, dict):
            return {key: item for key, item in value.items() if item is not None}
        return value

    @field_validator("api_ver", mode="before")
    @classmethod
    def _api_ver_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("img_req_headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_FETCH_HEADERS:
            raise ValueError(f"at most {MAX_FETCH_HEADERS} headers")
        if sum(len(k) + len(v) for k, v in value.items()) > MAX_FETCH_HEADER_BYTES:
            raise ValueError(f"at most {MAX_FETCH_HEADER_BYTES} bytes of headers")
        for name, text in value.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in FORBIDDEN_FETCH_HEADERS or name.lower().startswith("proxy-"):
                raise ValueError(f"header {name!r} is set by the fetcher and cannot be sent")
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: line breaks and NUL are not allowed")
        return value


class DetectionRequest(ImagesBody):
    """The detection options every endpoint that finds faces takes (/extract, /draw_detections)."""

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
    detector: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]*$",
        max_length=32,
        description="Detector to use (scrfd, retinaface, mtcnn: /info lists the loaded ones); "
        "the worker's first configured detector when omitted.",
    )

    @field_validator("max_size")
    @classmethod
    def _check_max_size(cls, value: list[int] | int) -> list[int] | int:
        return check_max_size(value)

    def options(self, max_faces: int) -> AnalysisOptions:
        """The detection part of the job's options; each endpoint adds what it asks for."""
        return AnalysisOptions(
            max_size=max_size_pair(self.max_size),
            threshold=self.threshold,
            limit_faces=min(self.limit_faces or max_faces, max_faces),
            min_face_size=self.min_face_size,
            detector=self.detector,
        )


class QueuedBody(ImagesBody):
    """A request that queues a job (api/submit.py): answered when done, or 202 at once."""

    run_async: bool = Field(False, alias="async", description="Return 202 with a job id.")


class ExtractRequest(DetectionRequest, QueuedBody):
    """POST /extract, in the format of InsightFace-REST (its 2020 and its current clients).

    Unknown fields are ignored so that clients written for the original keep working.
    """

    extract_embedding: bool = True
    return_landmarks: bool | Literal["106"] = Field(
        False, description='true: the 5 keypoints; "106": also the 106 dense landmarks (2d106det).'
    )
    extract_ga: bool = Field(False, description="Gender (with its probability) and age of each face.")
    flip: bool | None = Field(
        None,
        description="Embed each face's aligned crop and its mirror image and return the normalised "
        "sum (more accurate, twice the recognizer's work); the server's FACEREST_FLIP when omitted.",
    )
    return_face_data: bool = False
    embed_only: bool = Field(False, description="Inputs are aligned 112x112 crops.")
    verbose_timings: bool = False

    def options(self, max_faces: int) -> AnalysisOptions:
        return msgspec.structs.replace(
            super().options(max_faces),
            extract_embedding=self.extract_embedding,
            return_landmarks=bool(self.return_landmarks),
            return_landmarks106=self.return_landmarks == "106",
            extract_ga=self.extract_ga,
            flip=self.flip,
            return_face_data=self.return_face_data,
            embed_only=self.embed_only,
            verbose_timings=self.verbose_timings,
        )


class DrawRequest(DetectionRequest):
    """POST /draw_detections (and the form fields of /multipart/draw_detections): the first image
    with its faces drawn, InsightFace-REST's options plus the 106 landmarks and gender/age."""

    draw_landmarks: bool | Literal["106"] = Field(
        True, description='Draw the 5 keypoints; "106": the 106 dense landmarks instead.'
    )
    draw_scores: bool = Field(True, description="Write each face's detection score.")
    draw_sizes: bool = Field(True, description="Write each face's box width in pixels.")
    draw_ga: bool = Field(False, description="Write each face's gender and age.")

    def options(self, max_faces: int) -> AnalysisOptions:
        return msgspec.structs.replace(
            super().options(max_faces),
            extract_embedding=False,
            return_landmarks=True,
            return_landmarks106=self.draw_landmarks == "106",
            extract_ga=self.draw_ga,
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
    """A face in the envelope (api_ver 2). The fields InsightFace-REST's current client reads
    come with the types it reads (integer pixels; null where not asked); the float geometry
    stays under its own names."""

    num_det: Annotated[int, Field(description="Index of the face in its image")]
    prob: Annotated[float, Field(description="Detection score")]
    bbox: Annotated[list[int], Field(description="x1, y1, x2, y2, original image pixels, rounded")]
    size: Annotated[int, Field(description="Box width in pixels, rounded (as InsightFace-REST)")]
    landmarks: Annotated[
        list[list[int]] | None, Field(description="The 5 keypoints, rounded, with return_landmarks")
    ]
    vec: Vector | None
    norm: Annotated[float | None, Field(description="Norm of the raw embedding (a quality hint)")]
    facedata: Annotated[str | None, Field(description="Aligned crop, base64 JPEG, with return_face_data")]
    mask_probs: Annotated[None, Field(description="Always null: mask detection is not supported")]
    bbox_float: Annotated[tuple[float, float, float, float], Field(description="x1, y1, x2, y2, unrounded")]
    size_wh: Annotated[list[float], Field(description="Box width and height in pixels, unrounded")]
    landmarks_float: NotRequired[list[Point]]
    gender: NotRequired[Literal["female", "male"]]
    gender_score: NotRequired[float]
    age: NotRequired[float]
    landmarks106: NotRequired[list[Point]]


@with_config(ConfigDict(extra="forbid"))
class ImageV2(TypedDict):
    status: Annotated[Literal["ok", "error"], Field(description='InsightFace-REST says "failed" for "error"')]
    took_ms: float
    faces: Annotated[list[FaceV2], Field(description="Empty for an image in error")]
    size: NotRequired[Annotated[tuple[int, int], Field(description="Image width and height")]]
    error: NotRequired[ErrorBody]
    timings: NotRequired[dict[str, float]]


class ModelV2(TypedDict):
    key: Annotated[str, Field(description="Request name: scrfd, retinaface, mtcnn, arcface, dlib")]
    name: str
    version: Annotated[str, Field(description="The package and version the weights come from")]
    license: str


class TookV2(TypedDict):
    total_ms: Annotated[float, Field(description="From the request's arrival to the answer")]
    worker_ms: NotRequired[Annotated[float, Field(description="The job's time in the worker")]]


@with_config(ConfigDict(extra="forbid"))
class ExtractV2(TypedDict):
    """The envelope: InsightFace-REST's current response, with facerest's fields next to it."""

    took: TookV2
    data: list[ImageV2]
    worker: str
    detector: ModelV2
    recognizer: Annotated[
        ModelV2, Field(description="Made the vectors; vectors of different recognizers never compare")
    ]
    warnings: NotRequired[
        Annotated[list[str], Field(description="Options asked for but not served (detect_masks)")]
    ]


# Recognition: requests (the images as in /extract) and answers.
NameText = Annotated[str, Field(pattern=NAME_PATTERN.pattern, description=NAME_RULE)]


class RecognitionRequest(QueuedBody):
    """What every recognition request shares: the images (read like /extract's, api/bodies.py),
    the detector and the answer options. Unknown fields are refused: no old client to serve."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    detector: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_]*$", max_length=32, description="As in /extract."
    )
    max_size: list[int] | int = Field(default=list(DEFAULT_MAX_SIZE), description="As in /extract.")
    det_threshold: Annotated[float, Field(ge=0.0, le=1.0, description="Detection score threshold.")] = (
        DEFAULT_THRESHOLD
    )

    @field_validator("max_size")
    @classmethod
    def _check_max_size(cls, value: list[int] | int) -> list[int] | int:
        return check_max_size(value)

    def options(self, max_faces: int) -> AnalysisOptions:
        return AnalysisOptions(
            max_size=max_size_pair(self.max_size),
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
    return_landmarks: bool | Literal["106"] = Field(
        False, description='As in /extract: true: the 5 keypoints; "106": also the 106 dense landmarks.'
    )
    extract_ga: bool = Field(False, description="As in /extract: gender (with its probability) and age.")

    def options(self, max_faces: int) -> AnalysisOptions:
        return msgspec.structs.replace(
            super().options(max_faces),
            return_landmarks=bool(self.return_landmarks),
            return_landmarks106=self.return_landmarks == "106",
            extract_ga=self.extract_ga,
        )


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
    norm: Annotated[float | None, Field(description="Norm of the raw embedding (a quality hint)")]
    landmarks: NotRequired[
        Annotated[list[Point], Field(description="The 5 keypoints, with return_landmarks")]
    ]
    landmarks106: NotRequired[Annotated[list[Point], Field(description='With return_landmarks "106"')]]
    gender: NotRequired[Annotated[Literal["female", "male"], Field(description="With extract_ga")]]
    gender_score: NotRequired[
        Annotated[float, Field(description="Probability of the reported gender, 0.5-1")]
    ]
    age: NotRequired[Annotated[float, Field(description="Years, with extract_ga")]]


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


class RenameRequest(BaseModel):
    """PATCH /collections/{c}/subjects/{s}: the subject's new name."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(description="The new name (the rule of every subject name)")


@with_config(ConfigDict(extra="forbid"))
class RenamedBody(TypedDict):
    subject: Annotated[str, Field(description="The new name")]
    faces: Annotated[int, Field(description="Faces that carry it now")]


@with_config(ConfigDict(extra="forbid"))
class CompactBody(TypedDict):
    collection: str
    faces: Annotated[int, Field(description="Faces kept: the collection's storage now holds only these")]
    log_flushed: Annotated[
        bool,
        Field(
            description="The database's WAL was flushed too (PostgreSQL: needs superuser or "
            "pg_checkpoint rights and wal_recycle=off; SQLite: always)"
        ),
    ]
    took: TookV2


RecognitionBody = EnrollBody | RecognizeBody | VerifyBody | ReindexBody | CompactBody


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


class InfoModels(TypedDict):
    """/info's ``models`` in InsightFace-REST's shape (its client's server_info() reads it), with
    every loaded model's license and SHA-256 under ``loaded``."""

    inference_backend: Annotated[str, Field(description="onnxruntime, openvino, or both (per model kind)")]
    det_name: Annotated[str | None, Field(description="The default detector's model (null: no worker)")]
    rec_name: str | None
    ga_name: str | None
    mask_detector: Annotated[None, Field(description="Always null: no mask model")]
    max_size: Annotated[list[int], Field(description="The default max_size of a request")]
    det_batch_size: Annotated[int, Field(description="Images per detector call, at most")]
    rec_batch_size: Annotated[int, Field(description="Faces per recognizer call, at most")]
    loaded: Annotated[
        list[dict[str, Any]], Field(description="Each loaded model with its license and SHA-256")
    ]


class InfoBody(TypedDict):
    name: str
    version: str
    api_versions: list[str]
    workers: Annotated[
        list[dict[str, Any]], Field(description="Each worker's heartbeat: device, models, concurrency")
    ]
    models: InfoModels
    defaults: Annotated[dict[str, Any], Field(description="The request defaults, as InsightFace-REST")]
    detectors: Annotated[list[str], Field(description="What every online worker can serve")]
    attributes: list[str]
    recognizers: Annotated[
        list[dict[str, Any]], Field(description="Vectors compare only within one recognizer")
    ]
    limits: dict[str, float]
    api_keys: Annotated[bool, Field(description="Whether keys are required; the keys are never shown")]
    queue_depth: Annotated[int, Field(description="Jobs queued and not yet taken by a worker")]
    flower_port: Annotated[int, Field(description="Flower's port on this host, for the page's link; 0: none")]
