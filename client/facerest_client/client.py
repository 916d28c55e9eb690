"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from facerest_client._calls import (
    Calls,
    DrawOptions,
    Endpoint,
    EnrollOptions,
    ExtractOptions,
    RecognizeOptions,
    VerifyOptions,
)
from facerest_client._wire import RETRY_STATUSES, Call, ImageInput, RetryPolicy, decode
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
)

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 120.0


class FaceRest:
    """facerest over HTTP: MessagePack by default, retries on 429, 503 and 504 after their
    ``Retry-After`` with the same ``Idempotency-Key`` (the retry answers the first attempt's job).

    ``with FaceRest("http://localhost:18081") as api: faces = api.extract(["photo.jpg"])``
    """

    def __init__(
        self,
        url: str = "http://localhost:18081",
        *,
        api_key: str | None = None,
        use_msgpack: bool = True,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s, transport=transport)
        self._calls = Calls(use_msgpack)
        self._retry = retry or RetryPolicy()

    def extract(
        self, images: Sequence[ImageInput] = (), urls: Sequence[str] = (), **opts: Unpack[ExtractOptions]
    ) -> ExtractResult:
        """Faces of each image (bytes or a path) and URL, waiting for the result."""
        return self._run(self._calls.extract(images, urls, opts))

    def submit(
        self, images: Sequence[ImageInput] = (), urls: Sequence[str] = (), **opts: Unpack[ExtractOptions]
    ) -> Job:
        """Queue an extract job and return at once; ``result(job.id, wait_s=20)`` collects it."""
        return self._run(self._calls.submit(images, urls, opts))

    def result(self, job_id: str, wait_s: float = 0) -> Job:
        return self._run(self._calls.result(job_id, wait_s))

    def draw(self, image: ImageInput, **opts: Unpack[DrawOptions]) -> bytes:
        """The image as a PNG with its faces drawn on it."""
        return self._run(self._calls.draw(image, opts))

    def enroll(
        self,
        collection: str,
        subject: str,
        images: Sequence[ImageInput] = (),
        urls: Sequence[str] = (),
        **opts: Unpack[EnrollOptions],
    ) -> Enrollment:
        """Enroll the largest face of each image for ``subject`` (the collection is made on first use)."""
        return self._run(self._calls.enroll(collection, subject, images, urls, opts))

    def recognize(
        self,
        collection: str,
        images: Sequence[ImageInput] = (),
        urls: Sequence[str] = (),
        **opts: Unpack[RecognizeOptions],
    ) -> Recognition:
        """Every face of each image among the collection's subjects (1:N, open set)."""
        return self._run(self._calls.recognize(collection, images, urls, opts))

    def verify(
        self,
        images: Sequence[ImageInput] = (),
        urls: Sequence[str] = (),
        *,
        collection: str | None = None,
        subject: str | None = None,
        **opts: Unpack[VerifyOptions],
    ) -> Verification:
        """Two images the same person? Or one image against ``subject`` of ``collection``."""
        return self._run(self._calls.verify(images, urls, collection, subject, opts))

    def reindex(self, collection: str) -> Job:
        """Re-embed the collection's stored crops with the workers' recognizer (a job: ``result``)."""
        return self._run(self._calls.reindex(collection))

    def compact(self, collection: str) -> Job:
        """Erase deleted faces from the gallery's files (a job: ``result`` is ``Compacted``)."""
        return self._run(self._calls.compact(collection))

    def collections(self) -> tuple[Collection, ...]:
        return self._run(self._calls.collections())

    def subjects(self, collection: str, offset: int = 0, limit: int = 100) -> SubjectPage:
        return self._run(self._calls.subjects(collection, offset, limit))

    def subject(self, collection: str, subject: str) -> SubjectFaces:
        return self._run(self._calls.subject(collection, subject))

    def thumbnail(self, collection: str, face_id: str) -> bytes:
        """An enrolled face's aligned 112x112 crop, JPEG."""
        return self._run(self._calls.thumbnail(collection, face_id))

    def rename_subject(self, collection: str, subject: str, new_name: str) -> str:
        """Give a subject another name; the new name (409 subject_exists if taken)."""
        return self._run(self._calls.rename_subject(collection, subject, new_name))

    def delete_subject(self, collection: str, subject: str) -> int:
        return self._run(self._calls.delete_subject(collection, subject))

    def delete_face(self, collection: str, face_id: str) -> int:
        return self._run(self._calls.delete_face(collection, face_id))

    def delete_collection(self, collection: str) -> int:
        return self._run(self._calls.delete_collection(collection))

    def info(self) -> ServerInfo:
        return self._run(self._calls.info())

    def health(self) -> Any:
        return self._run(self._calls.health())

    def ready(self) -> Any:
        return self._run(self._calls.ready())

    def _run(self, endpoint: Endpoint[T]) -> T:
        return endpoint.parse(decode(self._send(endpoint.call)))

    def _send(self, call: Call) -> httpx.Response:
        for attempt in range(self._retry.attempts):
            last = attempt == self._retry.attempts - 1
            try:
                response = self._http.request(
                    call.method, call.path, content=call.content, headers=call.headers, params=call.params
                )
            except httpx.TransportError:
                if last or not call.retry_safe:
                    raise
                time.sleep(self._retry.delay(attempt, None))
                continue
            if response.status_code not in RETRY_STATUSES or last or not call.retry_safe:
                return response
            time.sleep(self._retry.delay(attempt, response.headers.get("Retry-After")))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FaceRest:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
