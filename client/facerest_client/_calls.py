"""Every endpoint once, as a ``Call`` and the parser of its answer; the sync and asyncio clients
(client.py, aio.py) wrap each in one line. Adding an endpoint is a method here, a typed result in
types.py, and a line in each client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Literal, TypedDict, TypeVar
from urllib.parse import quote

from facerest_client._wire import IDEMPOTENCY_HEADER, Call, ImageInput, body_call, image_bytes
from facerest_client.types import (
    Collection,
    Enrollment,
    ExtractResult,
    Job,
    Recognition,
    ServerInfo,
    SubjectFaces,
    SubjectPage,
    Verification,
    collections_from_wire,
    deleted_from_wire,
)

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


class RecognitionOptions(TypedDict, total=False):
    """What enroll, recognize and verify share (docs/recognition.md); left out: the default."""

    max_size: tuple[int, int] | int
    det_threshold: float
    detector: str
    img_req_headers: dict[str, str]


class EnrollOptions(RecognitionOptions, total=False):
    face: Literal["largest", "only"]  # "only": a photo with several faces is refused


class RecognizeOptions(RecognitionOptions, total=False):
    limit: int  # matches per face
    threshold: float  # similarity to name a subject; default: the recognizer's calibrated one
    return_landmarks: bool | Literal["106"]  # as extract's
    extract_ga: bool  # gender and age, as extract's


class VerifyOptions(RecognitionOptions, total=False):
    threshold: float


class Endpoint(Generic[T]):
    """A call and how to read its answer."""

    __slots__ = ("call", "parse")

    def __init__(self, call: Call, parse: Callable[[Any], T]) -> None:
        self.call = call
        self.parse = parse


def _raw(body: Any) -> Any:
    return body


def _fields(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Options as body fields: the ones given, tuples as lists (MessagePack and JSON arrays)."""
    fields = {k: v for k, v in opts.items() if v is not None}
    if isinstance(fields.get("max_size"), tuple):
        fields["max_size"] = list(fields["max_size"])
    return fields


def _name(name: str) -> str:
    """A collection, subject or face id as one path segment."""
    return quote(name, safe="")


def _renamed(body: Mapping[str, Any]) -> str:
    return str(body["subject"])


def _bytes(body: Any) -> bytes:
    if not isinstance(body, bytes):
        raise TypeError(f"expected an image, got {type(body).__name__}")
    return body


def _collection_job(collection: str, action: str) -> Endpoint[Job]:
    """POST /collections/{c}/{action}: no options, an empty JSON object; its Idempotency-Key
    makes a retried call one job."""
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: uuid.uuid4().hex}
    call = Call("POST", f"/collections/{_name(collection)}/{action}", content=b"{}", headers=headers)
    return Endpoint(call, Job.from_wire)


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
        fields = _fields(opts)
        # Always the envelope: per-image status, and the recognizer that made the vectors.
        fields["api_ver"] = "2"
        if run_async:
            fields["async"] = True
        return body_call("/extract", fields, images, urls, self.use_msgpack)

    def draw(self, image: ImageInput, opts: DrawOptions) -> Endpoint[bytes]:
        fields = _fields(opts)
        # Drawing queues no job a retry could duplicate: no Idempotency-Key needed.
        call = body_call(
            "/draw_detections", fields, [image_bytes(image)], (), self.use_msgpack, idempotent=False
        )
        return Endpoint(call, _bytes)

    def enroll(
        self,
        collection: str,
        subject: str,
        images: Sequence[ImageInput],
        urls: Sequence[str],
        opts: EnrollOptions,
    ) -> Endpoint[Enrollment]:
        path = f"/collections/{_name(collection)}/subjects/{_name(subject)}/faces"
        return Endpoint(body_call(path, _fields(opts), images, urls, self.use_msgpack), Enrollment.from_wire)

    def recognize(
        self, collection: str, images: Sequence[ImageInput], urls: Sequence[str], opts: RecognizeOptions
    ) -> Endpoint[Recognition]:
        path = f"/collections/{_name(collection)}/recognize"
        return Endpoint(body_call(path, _fields(opts), images, urls, self.use_msgpack), Recognition.from_wire)

    def verify(
        self,
        images: Sequence[ImageInput],
        urls: Sequence[str],
        collection: str | None,
        subject: str | None,
        opts: VerifyOptions,
    ) -> Endpoint[Verification]:
        fields = _fields(opts) | _fields({"collection": collection, "subject": subject})
        return Endpoint(body_call("/verify", fields, images, urls, self.use_msgpack), Verification.from_wire)

    def reindex(self, collection: str) -> Endpoint[Job]:
        return _collection_job(collection, "reindex")

    def compact(self, collection: str) -> Endpoint[Job]:
        return _collection_job(collection, "compact")

    def collections(self) -> Endpoint[tuple[Collection, ...]]:
        return Endpoint(Call("GET", "/collections"), collections_from_wire)

    def subjects(self, collection: str, offset: int, limit: int) -> Endpoint[SubjectPage]:
        params = {"offset": offset, "limit": limit}
        call = Call("GET", f"/collections/{_name(collection)}/subjects", params=params)
        return Endpoint(call, SubjectPage.from_wire)

    def subject(self, collection: str, subject: str) -> Endpoint[SubjectFaces]:
        call = Call("GET", f"/collections/{_name(collection)}/subjects/{_name(subject)}")
        return Endpoint(call, SubjectFaces.from_wire)

    def thumbnail(self, collection: str, face_id: str) -> Endpoint[bytes]:
        call = Call("GET", f"/collections/{_name(collection)}/faces/{_name(face_id)}/thumbnail")
        return Endpoint(call, _bytes)

    def rename_subject(self, collection: str, subject: str, new_name: str) -> Endpoint[str]:
        content = json.dumps({"subject": new_name}).encode()
        path = f"/collections/{_name(collection)}/subjects/{_name(subject)}"
        call = Call("PATCH", path, content=content, headers={"Content-Type": "application/json"})
        return Endpoint(call, _renamed)

    def delete_subject(self, collection: str, subject: str) -> Endpoint[int]:
        call = Call("DELETE", f"/collections/{_name(collection)}/subjects/{_name(subject)}")
        return Endpoint(call, deleted_from_wire)

    def delete_face(self, collection: str, face_id: str) -> Endpoint[int]:
        call = Call("DELETE", f"/collections/{_name(collection)}/faces/{_name(face_id)}")
        return Endpoint(call, deleted_from_wire)

    def delete_collection(self, collection: str) -> Endpoint[int]:
        return Endpoint(Call("DELETE", f"/collections/{_name(collection)}"), deleted_from_wire)

    def result(self, job_id: str, wait_s: float = 0) -> Endpoint[Job]:
        params = {"wait": wait_s} if wait_s else {}
        return Endpoint(Call("GET", f"/results/{job_id}", params=params), Job.from_wire)

    def info(self) -> Endpoint[ServerInfo]:
        return Endpoint(Call("GET", "/info"), ServerInfo.from_wire)

    def health(self) -> Endpoint[Any]:
        return Endpoint(Call("GET", "/health"), _raw)

    def ready(self) -> Endpoint[Any]:
        return Endpoint(Call("GET", "/ready"), _raw)
