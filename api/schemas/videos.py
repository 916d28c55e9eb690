"""POST /videos and GET /videos/{id} (docs/video.md)."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, field_validator, with_config
from typing_extensions import TypedDict

from api.schemas.common import ErrorDetail, JobStatusName, Vector
from api.schemas.images import CALLBACK_URL, check_max_size, max_size_pair
from shared.contract import DEFAULT_MAX_SIZE, DEFAULT_THRESHOLD, AnalysisOptions

DEFAULT_FPS = 2.0
MAX_FPS = 240.0
URL_MAX = 2048


class VideoRequest(BaseModel):
    """The options of POST /videos: as JSON with ``url``, or as the form fields beside ``file``."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str | None, Field(max_length=URL_MAX, description="Fetch the video from here")] = None
    fps: Annotated[
        float, Field(ge=0, le=MAX_FPS, description="Frames analysed per second of video; 0: every frame")
    ] = DEFAULT_FPS
    collection: Annotated[
        str | None,
        Field(max_length=64, description="Identify each track against this collection's subjects"),
    ] = None
    recognition_threshold: Annotated[
        float | None,
        Field(
            ge=-1.0,
            le=1.0,
            description="Similarity a track's best frames must reach to be named (the open-set "
            "threshold); the recognizer's default (/info) when omitted",
        ),
    ] = None
    embedding: Annotated[bool, Field(description="Return each track's embedding")] = False
    # The /extract options that apply to a video's frames.
    threshold: Annotated[float, Field(ge=0.0, le=1.0, description="Detection score threshold")] = (
        DEFAULT_THRESHOLD
    )
    limit_faces: Annotated[
        int, Field(ge=0, le=1024, description="Keep the N largest faces a frame; 0 = all")
    ] = 0
    min_face_size: Annotated[int, Field(ge=0, le=100_000, description="Drop faces narrower (px)")] = 0
    max_size: list[int] | int = Field(
        default=list(DEFAULT_MAX_SIZE),
        description="[width, height] a frame is scaled down to before detection (as /extract)",
    )
    detector: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$", max_length=32)
    flip: bool | None = Field(None, description="As /extract: embed each face and its mirror image")
    callback_url: CALLBACK_URL = Field(
        None, description="POST the finished video's /results envelope here, signed (docs/webhooks.md)"
    )

    @field_validator("max_size")
    @classmethod
    def _check_max_size(cls, value: list[int] | int) -> list[int] | int:
        return check_max_size(value)

    def options(self, max_faces: int) -> AnalysisOptions:
        return AnalysisOptions(
            max_size=max_size_pair(self.max_size),
            threshold=self.threshold,
            limit_faces=min(self.limit_faces or max_faces, max_faces),
            min_face_size=self.min_face_size,
            detector=self.detector,
            flip=self.flip,
        )


@with_config(ConfigDict(extra="forbid"))
class VideoAccepted(TypedDict):
    id: str
    # "queued" for a new video; a retry with the same Idempotency-Key gets the video's state now.
    status: JobStatusName
    status_url: Annotated[str, Field(description="GET it for progress and tracks (/videos/{id})")]


@with_config(ConfigDict(extra="forbid"))
class VideoDeleted(TypedDict):
    id: str
    deleted: Literal[True]


@with_config(ConfigDict(extra="forbid"))
class VideoProgressBody(TypedDict):
    segments_done: int
    segments: int
    frames_done: Annotated[int, Field(description="Frames analysed in the segments done")]
    frames: Annotated[int, Field(description="Frames to analyse: an estimate until the video is done")]


@with_config(ConfigDict(extra="forbid"))
class TrackFaceBody(TypedDict):
    time_s: float
    bbox: Annotated[tuple[float, float, float, float], Field(description="x1, y1, x2, y2, upright frame px")]
    prob: float
    quality: float
    thumbnail_url: str


@with_config(ConfigDict(extra="forbid"))
class TrackBody(TypedDict):
    track: Annotated[
        int, Field(description="Its place in the list, by start (it may move while the video runs)")
    ]
    start_s: float
    end_s: float
    frames: Annotated[int, Field(description="Analysed frames it is in")]
    best: Annotated[TrackFaceBody, Field(description="The frame where quality x prob is highest")]
    subject: Annotated[str | None, Field(description="With collection: who it is, from its best frames")]
    similarity: Annotated[float | None, Field(description="The best subject's similarity")]
    embedding: NotRequired[
        Annotated[Vector, Field(description="With embedding: the mean of its best frames")]
    ]


@with_config(ConfigDict(extra="forbid"))
class VideoBody(TypedDict):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    created: float
    finished: float | None
    duration_s: float
    progress: VideoProgressBody
    tracks: Annotated[list[TrackBody], Field(description="So far while it runs (partial), all once done")]
    collection: str | None
    error: NotRequired[ErrorDetail]


@with_config(ConfigDict(extra="forbid"))
class VideoResultBody(TypedDict):
    """A finished video in /results and its webhook (GET /videos/{id} says more)."""

    video_id: str
    duration_s: float
    segments: int
    frames: int
    tracks: list[TrackBody]
    collection: str | None


@with_config(ConfigDict(extra="forbid"))
class VideoSegmentBody(TypedDict):
    """One segment's job (never polled by clients: its video is)."""

    video_id: str
    index: int
    frames: int
    tracks: list[TrackBody]
