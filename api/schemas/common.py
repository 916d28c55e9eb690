"""Response pieces every resource uses: errors, the models that answered, timings, vectors."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    ConfigDict,
    Field,
    WithJsonSchema,
    with_config,
)
from typing_extensions import TypedDict

# Response bodies. Embeddings leave as numpy arrays (orjson and the MessagePack encoder write
# them as lists of numbers); the schema says so.
Vector = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "number"},
            "description": "L2-normalised embedding (ArcFace 512-d; SFace (permissive profile), dlib 128-d)",
        }
    ),
]


Point = tuple[float, float]
# A job's (and a video's) status as answered.
JobStatusName = Literal["queued", "running", "done", "failed"]


@with_config(ConfigDict(extra="forbid"))
class QualityBody(TypedDict):
    """A face's quality (return_quality; docs/recognition.md#face-quality)."""

    quality: Annotated[
        float,
        Field(
            description="0-1: sharpness x cos(yaw) x cos(pitch) x size factor; under 0.3: hard to recognise"
        ),
    ]
    sharpness: Annotated[
        float, Field(description="0-1: variance of the Laplacian of the aligned crop, squashed")
    ]
    yaw: Annotated[float, Field(description="Degrees, from the 5 keypoints; +: nose to the image's right")]
    pitch: Annotated[float, Field(description="Degrees; +: looking up")]
    roll: Annotated[float, Field(description="Degrees; +: eye line turned clockwise")]
    size: Annotated[float, Field(description="The box's shorter side, original-image pixels")]


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


class ModelV2(TypedDict):
    key: Annotated[str, Field(description="Request name: scrfd, retinaface, arcface, sface, ...")]
    name: str
    version: Annotated[str, Field(description="The package and version the weights come from")]
    license: str


class TookV2(TypedDict):
    total_ms: Annotated[float, Field(description="From the request's arrival to the answer")]
    worker_ms: NotRequired[Annotated[float, Field(description="The job's time in the worker")]]
