"""A queued job as /results answers it, and the 202 that queues it."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import (
    ConfigDict,
    Field,
    with_config,
)
from typing_extensions import TypedDict

from api.schemas.common import ErrorDetail, JobStatusName
from api.schemas.extract import ExtractV1, ExtractV2
from api.schemas.people import IngestBody, ReclusterBody
from api.schemas.recognition import RecognitionBody
from api.schemas.videos import VideoResultBody, VideoSegmentBody


@with_config(ConfigDict(extra="forbid"))
class JobAccepted(TypedDict):
    id: str
    # "queued" for a new job; a retry with the same Idempotency-Key gets the job's state now.
    status: JobStatusName
    status_url: str


@with_config(ConfigDict(extra="forbid"))
class CallbackBody(TypedDict):
    """The job's webhook delivery (docs/webhooks.md)."""

    status: Annotated[
        Literal["pending", "retrying", "delivered", "failed"],
        Field(description="pending until the first attempt ran; failed: refused, or out of retry time"),
    ]
    attempts: int
    last_error: Annotated[str | None, Field(description="Why the last attempt failed; null once delivered")]


@with_config(ConfigDict(extra="forbid"))
class ProgressBody(TypedDict):
    """How far a long job is (a re-cluster: photos clustered of those it clusters again)."""

    done: int
    total: int


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
            ExtractV1
            | ExtractV2
            | RecognitionBody
            | IngestBody
            | ReclusterBody
            | VideoResultBody
            | VideoSegmentBody,
            Field(description="When done: what the synchronous request returns"),
        ]
    ]
    error: NotRequired[ErrorDetail]
    callback: NotRequired[CallbackBody]
    progress: NotRequired[
        Annotated[
            ProgressBody,
            Field(
                description="Jobs that report it (a re-cluster), from when they start running: updated "
                "about twice a second, done == total when the work is done"
            ),
        ]
    ]
