"""A typed client for facerest, sync (``FaceRest``) and asyncio (``AsyncFaceRest``).

MessagePack by default (images travel as raw bytes), JSON with ``use_msgpack=False``; retries
on 429, 503 and 504 honour ``Retry-After`` and resend the same ``Idempotency-Key``; answers come
as frozen dataclasses (``ExtractResult``, ``Face``, ``Job``, ``ServerInfo``).
"""

from facerest_client._calls import DrawOptions, ExtractOptions
from facerest_client._wire import RetryPolicy
from facerest_client.aio import AsyncFaceRest
from facerest_client.client import FaceRest
from facerest_client.errors import FaceRestError
from facerest_client.types import ExtractResult, Face, ImageError, ImageResult, Job, ModelRef, ServerInfo

__all__ = [
    "AsyncFaceRest",
    "DrawOptions",
    "ExtractOptions",
    "ExtractResult",
    "Face",
    "FaceRest",
    "FaceRestError",
    "ImageError",
    "ImageResult",
    "Job",
    "ModelRef",
    "RetryPolicy",
    "ServerInfo",
]
