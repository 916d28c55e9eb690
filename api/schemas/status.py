"""/health, /ready and /info."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    Field,
)
from typing_extensions import TypedDict


class HealthBody(TypedDict):
    status: Literal["ok", "error", "draining"]
    redis: NotRequired[str]


class ReadyBody(TypedDict):
    ready: bool
    workers: NotRequired[int]
    draining: NotRequired[bool]
    redis: NotRequired[str]  # why Redis could not be read


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
    defaults: Annotated[
        dict[str, Any],
        Field(
            description="The request defaults, as InsightFace-REST names them: threshold and "
            "det_thresh are both /extract's detection score threshold (det_threshold in recognition "
            "requests), not a similarity"
        ),
    ]
    detectors: Annotated[list[str], Field(description="What every online worker can serve")]
    attributes: list[str]
    recognizers: Annotated[
        list[dict[str, Any]], Field(description="Vectors compare only within one recognizer")
    ]
    limits: dict[str, float]
    api_keys: Annotated[bool, Field(description="Whether keys are required; the keys are never shown")]
    queue_depth: Annotated[int, Field(description="Jobs queued and not yet taken by a worker")]
    video_queue_depth: Annotated[
        int, Field(description="Video segments queued (their own lane, not counted in queue_depth)")
    ]
    flower_port: Annotated[int, Field(description="Flower's port on this host, for the page's link; 0: none")]
