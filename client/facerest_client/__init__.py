"""A typed client for facerest, sync (``FaceRest``) and asyncio (``AsyncFaceRest``).

MessagePack by default (images travel as raw bytes), JSON with ``use_msgpack=False``; retries
on 429, 503 and 504 honour ``Retry-After`` and resend the same ``Idempotency-Key``; answers come
as frozen dataclasses (``ExtractResult``, ``Face``, ``Job``, ``ServerInfo``; for recognition
``Enrollment``, ``Recognition``, ``Verification``, ``Collection``, ``SubjectPage``; for videos
``Video`` and its ``Track``s). Names and
ids the service would refuse raise ``InvalidName`` (a ValueError) before anything is sent. The
``facerest`` command (enroll a folder, recognize, verify, video) is ``facerest_client.cli``.
"""

from facerest_client._calls import (
    DrawOptions,
    EnrollOptions,
    ExtractOptions,
    RecognitionOptions,
    RecognizeOptions,
    VerifyOptions,
    VideoOptions,
)
from facerest_client._wire import RetryPolicy
from facerest_client.aio import AsyncFaceRest
from facerest_client.client import FaceRest
from facerest_client.errors import FaceRestError, InvalidName
from facerest_client.types import (
    Callback,
    Collection,
    Compacted,
    EnrolledFace,
    Enrollment,
    ExtractResult,
    Face,
    ImageError,
    ImageResult,
    IngestedFace,
    IngestedPhoto,
    Ingestion,
    Job,
    JobResult,
    Match,
    ModelRef,
    Quality,
    Recognition,
    RecognizedFace,
    RecognizedImage,
    Recognizer,
    Reindexed,
    ServerInfo,
    Subject,
    SubjectFaces,
    SubjectPage,
    Track,
    TrackFace,
    Verification,
    Video,
    VideoProgress,
    VideoSubmitted,
)

__all__ = [
    "AsyncFaceRest",
    "Callback",
    "Collection",
    "Compacted",
    "DrawOptions",
    "EnrollOptions",
    "EnrolledFace",
    "Enrollment",
    "ExtractOptions",
    "ExtractResult",
    "Face",
    "FaceRest",
    "FaceRestError",
    "ImageError",
    "ImageResult",
    "IngestedFace",
    "IngestedPhoto",
    "Ingestion",
    "InvalidName",
    "Job",
    "JobResult",
    "Match",
    "ModelRef",
    "Quality",
    "Recognition",
    "RecognitionOptions",
    "RecognizeOptions",
    "RecognizedFace",
    "RecognizedImage",
    "Recognizer",
    "Reindexed",
    "RetryPolicy",
    "ServerInfo",
    "Subject",
    "SubjectFaces",
    "SubjectPage",
    "Track",
    "TrackFace",
    "Verification",
    "VerifyOptions",
    "Video",
    "VideoOptions",
    "VideoProgress",
    "VideoSubmitted",
]
