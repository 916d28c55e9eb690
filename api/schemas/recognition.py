"""Enroll, recognize, verify, reindex and compact: requests (the images as in /extract) and answers."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

import msgspec
from pydantic import (
    ConfigDict,
    Field,
    with_config,
)
from typing_extensions import TypedDict

from api.schemas.collections import ThumbnailFace
from api.schemas.common import ErrorBody, ModelV2, Point, QualityBody, TookV2
from api.schemas.images import DETECTION_SCORE, QUALITY_DESCRIPTION, DetectorBody, QueuedBody
from shared.contract import DEFAULT_THRESHOLD, AnalysisOptions
from shared.recognition import DEFAULT_LIMIT, MAX_LIMIT, NAME_PATTERN, NAME_RULE

NameText = Annotated[str, Field(pattern=NAME_PATTERN.pattern, description=NAME_RULE)]


class RecognitionRequest(DetectorBody, QueuedBody):
    """What every recognition request shares: the images (read like /extract's, api/bodies.py),
    the detector's options (as /extract's, with the detection score as det_threshold: threshold
    is a similarity here) and the answer options. Unknown fields are refused: no old client to
    serve."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    det_threshold: Annotated[
        float,
        Field(ge=0.0, le=1.0, description=f"{DETECTION_SCORE}: /extract's threshold under its own name."),
    ] = DEFAULT_THRESHOLD

    def options(self, max_faces: int) -> AnalysisOptions:
        return self.detection(self.det_threshold, max_faces)


class EnrollRequest(RecognitionRequest):
    face: Literal["largest", "only"] = Field(
        "largest",
        description='Which face of each image to enroll: the largest, or "only" (a photo with several '
        "faces is refused with 422 several_faces).",
    )
    min_quality: Annotated[
        float,
        Field(
            ge=0.0,
            le=1.0,
            description="The enrolled face's quality (docs/recognition.md#face-quality) must reach this; "
            "an image whose face scores under it is refused with 422 low_quality. 0: any face.",
        ),
    ] = 0.0


SimilarityThreshold = Annotated[
    float | None,
    Field(
        ge=-1.0,
        le=1.0,
        description="Match threshold: the cosine similarity (-1 to 1) at or above which a face is "
        "the subject, not a detection score (that is det_threshold; /extract's threshold is one). "
        "Default: the recognizer's calibrated threshold (docs/recognition.md); the answer's "
        "threshold says which was used.",
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
    return_quality: bool = Field(False, description=QUALITY_DESCRIPTION)

    def options(self, max_faces: int) -> AnalysisOptions:
        return msgspec.structs.replace(
            super().options(max_faces),
            # The worker embeds every face to search; this asks it to return the vectors too,
            # which /collections' answer has no place for (api/compat/ asks for them).
            extract_embedding=False,
            return_landmarks=bool(self.return_landmarks),
            return_landmarks106=self.return_landmarks == "106",
            extract_ga=self.extract_ga,
            return_quality=self.return_quality,
        )


class VerifyRequest(RecognitionRequest):
    threshold: SimilarityThreshold = None
    collection: NameText | None = Field(None, description="With subject: compare one image with a subject.")
    subject: NameText | None = None


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
    quality: NotRequired[Annotated[QualityBody, Field(description="With return_quality")]]


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
    redis_rewritten: Annotated[
        bool,
        Field(
            description="The collection's finished jobs were deleted from Redis and Redis's files "
            "(AOF, and RDB snapshot where save points are set) rewritten from the keys left, so "
            "they hold no photo or name of a deleted face either (docs/security.md)"
        ),
    ]
    took: TookV2


RecognitionBody = EnrollBody | RecognizeBody | VerifyBody | ReindexBody | CompactBody
