"""Every endpoint once, as a ``Call`` and the parser of its answer; the sync and asyncio clients
(client.py, aio.py) wrap each in one line. Adding an endpoint (the recognition ones: enrol,
recognize, verify) is a method here, a typed result in types.py, and a line in each client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypedDict, TypeVar

from facerest_client._wire import Call, ImageInput, body_call, image_bytes
from facerest_client.types import ExtractResult, Job, ServerInfo

T = TypeVar("T")


class ExtractOptions(TypedDict, total=False):
    """/extract's options (README, POST /extract); left out: the service's default."""

    max_size: tuple[int, int] | int
    threshold: float
    limit_faces: int
    min_face_size: int
    extract_embedding: bool
    return_landmarks: bool | Literal["106"]
    extract_ga: bool
    return_face_data: bool
    embed_only: bool
    detector: str
    verbose_timings: bool
    img_req_headers: dict[str, str]


class DrawOptions(TypedDict, total=False):
    """/draw_detections' options."""

    max_size: tuple[int, int] | int
    threshold: float
    limit_faces: int
    min_face_size: int
    detector: str
    draw_landmarks: bool | Literal["106"]
    draw_scores: bool
    draw_sizes: bool
    draw_ga: bool


class Endpoint(Generic[T]):
    """A call and how to read its answer."""

    __slots__ = ("call", "parse")

    def __init__(self, call: Call, parse: Callable[[Any], T]) -> None:
        self.call = call
        self.parse = parse


def _raw(body: Any) -> Any:
    return body


def _bytes(body: Any) -> bytes:
    if not isinstance(body, bytes):
        raise TypeError(f"expected an image, got {type(body).__name__}")
    return body


class Calls:
    """Request building for every endpoint; holds only the client's wire format."""

    def __init__(self, use_msgpack: bool) -> None:
        self.use_msgpack = use_msgpack

    def extract(
        self, images: Sequence[ImageInput], urls: Sequence[str], opts: ExtractOptions
    ) -> Endpoint[ExtractResult]:
        return Endpoint(self._extract(images, urls, opts, run_async=False), ExtractResult.from_wire)

    def submit(
        self, images: Sequence[ImageInput], urls: Sequence[str], opts: ExtractOptions
    ) -> Endpoint[Job]:
        return Endpoint(self._extract(images, urls, opts, run_async=True), Job.from_wire)

    def _extract(
        self, images: Sequence[ImageInput], urls: Sequence[str], opts: ExtractOptions, run_async: bool
    ) -> Call:
        fields: dict[str, Any] = {k: v for k, v in opts.items() if v is not None}
        if isinstance(fields.get("max_size"), tuple):
            fields["max_size"] = list(fields["max_size"])
        # Always the envelope: per-image status, and the recognizer that made the vectors.
        fields["api_ver"] = "2"
        if run_async:
            fields["async"] = True
        return body_call("/extract", fields, images, urls, self.use_msgpack)

    def draw(self, image: ImageInput, opts: DrawOptions) -> Endpoint[bytes]:
        fields: dict[str, Any] = {k: v for k, v in opts.items() if v is not None}
        if isinstance(fields.get("max_size"), tuple):
            fields["max_size"] = list(fields["max_size"])
        # Drawing queues no job a retry could duplicate: no Idempotency-Key needed.
        call = body_call(
            "/draw_detections", fields, [image_bytes(image)], (), self.use_msgpack, idempotent=False
        )
        return Endpoint(call, _bytes)

    def result(self, job_id: str, wait_s: float = 0) -> Endpoint[Job]:
        params = {"wait": wait_s} if wait_s else {}
        return Endpoint(Call("GET", f"/results/{job_id}", params=params), Job.from_wire)

    def info(self) -> Endpoint[ServerInfo]:
        return Endpoint(Call("GET", "/info"), ServerInfo.from_wire)

    def health(self) -> Endpoint[Any]:
        return Endpoint(Call("GET", "/health"), _raw)

    def ready(self) -> Endpoint[Any]:
        return Endpoint(Call("GET", "/ready"), _raw)
