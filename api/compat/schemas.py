"""The drop-in protocols' wire types, for the drop-in server's OpenAPI document (GET /openapi.json
on FACEREST_COMPAT_PORT, built by api/openapi.py from the routes' ``@documented`` operations).

The routes read their forms and query parameters themselves, as each protocol names and checks
them (deepstack.py, compreface.py); these types describe those fields and the answers the routes
build, for the document only. docs/integrations.md has each endpoint's rules in words.
"""

from __future__ import annotations

from typing import Annotated, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from api.openapi import Query

FILE = "An image file (JPEG, PNG, WebP, BMP, TIFF, GIF)"
KEY = "The API key when FACEREST_API_KEYS is set (DeepStack's form field)"
# The answers' types refuse unknown keys: a test validating a real answer fails on a field the
# route sends but the document lacks.
FORBID = with_config(ConfigDict(extra="forbid"))


# DeepStack / CodeProject.AI: multipart forms in, {"success", ...} out.


class DeepstackImageForm(BaseModel):
    image: bytes = Field(description=FILE)
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="Detection score (detect) or calibrated confidence (recognize, 0.67)"
    )
    api_key: str | None = Field(None, description=KEY)


class DeepstackRegisterForm(BaseModel):
    image: bytes = Field(description=f"{FILE}; also image1 ... imageN (CodeProject.AI), each adds a face")
    userid: str = Field(description="The person's name (a subject)")
    api_key: str | None = Field(None, description=KEY)


class DeepstackUserForm(BaseModel):
    userid: str = Field(description="The person's name (a subject)")
    api_key: str | None = Field(None, description=KEY)


class DeepstackKeyForm(BaseModel):
    api_key: str | None = Field(None, description=KEY)


class DeepstackMatchForm(BaseModel):
    image1: bytes = Field(description=FILE)
    image2: bytes = Field(description=FILE)
    api_key: str | None = Field(None, description=KEY)


@FORBID
class DeepstackPrediction(TypedDict):
    confidence: float
    userid: NotRequired[Annotated[str, Field(description='recognize: the name, or "unknown"')]]
    x_min: int
    y_min: int
    x_max: int
    y_max: int


@FORBID
class DeepstackAnswer(TypedDict):
    success: bool
    code: Annotated[int, Field(description="The HTTP status (CodeProject.AI)")]
    predictions: NotRequired[list[DeepstackPrediction]]
    count: NotRequired[int]
    message: NotRequired[str]
    faces: NotRequired[Annotated[list[str], Field(description="list: the registered names")]]
    similarity: NotRequired[Annotated[float, Field(description="match: calibrated confidence")]]
    inferenceMs: NotRequired[int]
    processMs: NotRequired[int]


@FORBID
class DeepstackError(TypedDict):
    success: bool
    error: str
    code: int


# CompreFace: the x-api-key header, images as a multipart "file" or base64 JSON, options as queries.


class CompreFaceFileForm(BaseModel):
    file: bytes = Field(description=FILE)


class CompreFaceVerifyForm(BaseModel):
    source_image: bytes = Field(description=FILE)
    target_image: bytes = Field(description=FILE)


@FORBID
class CompreFaceFileBody(TypedDict):
    file: Annotated[str, Field(description="The image in base64")]


@FORBID
class CompreFaceVerifyBody(TypedDict):
    source_image: Annotated[str, Field(description="The image in base64")]
    target_image: Annotated[str, Field(description="The image in base64")]


@FORBID
class CompreFaceSubjectBody(TypedDict):
    subject: str


@FORBID
class CompreFaceBox(TypedDict):
    probability: float | None
    x_min: int
    y_min: int
    x_max: int
    y_max: int


@FORBID
class CompreFaceMatch(TypedDict):
    subject: str
    similarity: float


@FORBID
class CompreFaceAge(TypedDict):
    probability: None
    low: int
    high: int


@FORBID
class CompreFaceGender(TypedDict):
    probability: float
    value: str


@FORBID
class CompreFacePose(TypedDict):
    pitch: float
    roll: float
    yaw: float


@FORBID
class CompreFaceFace(TypedDict):
    box: CompreFaceBox
    subjects: NotRequired[Annotated[list[CompreFaceMatch], Field(description="recognize only")]]
    execution_time: dict[str, float]
    age: NotRequired[CompreFaceAge]
    gender: NotRequired[CompreFaceGender]
    landmarks: NotRequired[list[list[int]]]
    pose: NotRequired[CompreFacePose]
    embedding: NotRequired[list[float]]


@FORBID
class CompreFaceResult(TypedDict):
    result: list[CompreFaceFace]


@FORBID
class CompreFaceFaceMatch(TypedDict):
    box: CompreFaceBox
    similarity: float


@FORBID
class CompreFaceSourceFace(TypedDict):
    box: CompreFaceBox


@FORBID
class CompreFacePair(TypedDict):
    source_image_face: CompreFaceSourceFace
    face_matches: list[CompreFaceFaceMatch]


@FORBID
class CompreFaceVerification(TypedDict):
    result: list[CompreFacePair]


@FORBID
class CompreFaceVerifiedFace(TypedDict):
    box: CompreFaceBox
    subject: str
    similarity: float


@FORBID
class CompreFaceFaceVerification(TypedDict):
    result: list[CompreFaceVerifiedFace]


@FORBID
class CompreFaceImage(TypedDict):
    image_id: str
    subject: str


@FORBID
class CompreFaceFacePage(TypedDict):
    faces: list[CompreFaceImage]
    page_number: int
    page_size: int
    total_pages: int
    total_elements: int


@FORBID
class CompreFaceDeleted(TypedDict):
    deleted: int


@FORBID
class CompreFaceSubject(TypedDict):
    subject: str


@FORBID
class CompreFaceSubjects(TypedDict):
    subjects: list[str]


@FORBID
class CompreFaceUpdated(TypedDict):
    updated: bool


@FORBID
class CompreFaceError(TypedDict):
    message: str
    code: Annotated[int, Field(description="CompreFace's error code (docs/integrations.md); 28: no face")]


def _query(name: str, description: str, kind: str) -> Query:
    return Query(name, description, {"type": kind})


SUBJECT_QUERY = _query("subject", "The subject's name", "string")
DET_QUERY = _query("det_prob_threshold", "Detection score a face must reach, 0 to 1", "number")
LIMIT_QUERY = _query("limit", "The largest N faces; 0: all", "integer")
PLUGINS_QUERY = _query("face_plugins", "Comma-separated: age, gender, landmarks, calculator, pose", "string")
COUNT_QUERY = _query("prediction_count", "Subjects per face, best first (1)", "integer")
PAGE_QUERIES = (
    _query("page", "Page number, from 0", "integer"),
    _query("size", "Faces per page (20, at most 1000)", "integer"),
    SUBJECT_QUERY,
)
