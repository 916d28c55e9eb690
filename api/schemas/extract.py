"""POST /extract: the request in InsightFace-REST's format and its two answers (api_ver 1 and 2)."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

import msgspec
from pydantic import (
    ConfigDict,
    Field,
    with_config,
)
from typing_extensions import TypedDict

from api.schemas.common import ErrorBody, ModelV2, Point, QualityBody, TookV2, Vector
from api.schemas.images import QUALITY_DESCRIPTION, DetectionRequest, QueuedBody
from shared.contract import AnalysisOptions


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
    return_quality: bool = Field(False, description=QUALITY_DESCRIPTION)

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
            return_quality=self.return_quality,
        )


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
    quality: NotRequired[Annotated[QualityBody, Field(description="With return_quality")]]


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
    quality: NotRequired[Annotated[QualityBody, Field(description="With return_quality")]]


@with_config(ConfigDict(extra="forbid"))
class ImageV2(TypedDict):
    status: Annotated[Literal["ok", "error"], Field(description='InsightFace-REST says "failed" for "error"')]
    took_ms: float
    faces: Annotated[list[FaceV2], Field(description="Empty for an image in error")]
    size: NotRequired[Annotated[tuple[int, int], Field(description="Image width and height")]]
    error: NotRequired[ErrorBody]
    timings: NotRequired[dict[str, float]]


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
