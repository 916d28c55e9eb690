"""The asyncio client: the same methods as FaceRest, awaited. Image paths are read with a
blocking read (small files); pass bytes where that matters."""

from __future__ import annotations

import asyncio
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


class AsyncFaceRest:
    """facerest over HTTP: MessagePack by default, retries on 429, 503 and 504 after their
    ``Retry-After`` with the same ``Idempotency-Key`` (the retry answers the first attempt's job).

    ``async with AsyncFaceRest("http://localhost:18081") as api: faces = await api.extract(["photo.jpg"])``
    """

    def __init__(
        self,
        url: str = "http://localhost:18081",
        *,
        api_key: str | None = None,
        use_msgpack: bool = True,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s, transport=transport)
        self._calls = Calls(use_msgpack)
        self._retry = retry or RetryPolicy()

    async def extract(
        self, images: Sequence[ImageInput] = (), urls: Sequence[str] = (), **opts: Unpack[ExtractOptions]
    ) -> ExtractResult:
        """Faces of each image (bytes or a path) and URL, waiting for the result."""
        return await self._run(self._calls.extract(images, urls, opts))

    async def submit(
        self, images: Sequence[ImageInput] = (), urls: Sequence[str] = (), **opts: Unpack[ExtractOptions]
    ) -> Job:
        """Queue an extract job and return at once; ``result(job.id, wait_s=20)`` collects it."""
        return await self._run(self._calls.submit(images, urls, opts))

    async def result(self, job_id: str, wait_s: float = 0) -> Job:
        return await self._run(self._calls.result(job_id, wait_s))

    async def draw(self, image: ImageInput, **opts: Unpack[DrawOptions]) -> bytes:
        """The image as a PNG with its faces drawn on it."""
        return await self._run(self._calls.draw(image, opts))

    async def enroll(
        self,
        collection: str,
        subject: str,
        images: Sequence[ImageInput] = (),
        urls: Sequence[str] = (),
        **opts: Unpack[EnrollOptions],
    ) -> Enrollment:
        """Enroll the largest face of each image for ``subject`` (the collection is made on first use)."""
        return await self._run(self._calls.enroll(collection, subject, images, urls, opts))

    async def recognize(
        self,
        collection: str,
        images: Sequence[ImageInput] = (),
        urls: Sequence[str] = (),
        **opts: Unpack[RecognizeOptions],
    ) -> Recognition:
        """Every face of each image among the collection's subjects (1:N, open set)."""
        return await self._run(self._calls.recognize(collection, images, urls, opts))

    async def verify(
        self,
        images: Sequence[ImageInput] = (),
        urls: Sequence[str] = (),
        *,
        collection: str | None = None,
        subject: str | None = None,
        **opts: Unpack[VerifyOptions],
    ) -> Verification:
        """Two images the same person? Or one image against ``subject`` of ``collection``."""
        return await self._run(self._calls.verify(images, urls, collection, subject, opts))

    async def reindex(self, collection: str) -> Job:
        """Re-embed the collection's stored crops with the workers' recognizer (a job: ``result``)."""
        return await self._run(self._calls.reindex(collection))

    async def compact(self, collection: str) -> Job:
        """Erase deleted faces from the gallery's files (a job: ``result`` is ``Compacted``)."""
        return await self._run(self._calls.compact(collection))

    async def collections(self) -> tuple[Collection, ...]:
        return await self._run(self._calls.collections())

    async def subjects(self, collection: str, offset: int = 0, limit: int = 100) -> SubjectPage:
        return await self._run(self._calls.subjects(collection, offset, limit))

    async def subject(self, collection: str, subject: str) -> SubjectFaces:
        return await self._run(self._calls.subject(collection, subject))

    async def thumbnail(self, collection: str, face_id: str) -> bytes:
        """An enrolled face's aligned 112x112 crop, JPEG."""
        return await self._run(self._calls.thumbnail(collection, face_id))

    async def rename_subject(self, collection: str, subject: str, new_name: str) -> str:
        """Give a subject another name; the new name (409 subject_exists if taken)."""
        return await self._run(self._calls.rename_subject(collection, subject, new_name))

    async def delete_subject(self, collection: str, subject: str) -> int:
        return await self._run(self._calls.delete_subject(collection, subject))

    async def delete_face(self, collection: str, face_id: str) -> int:
        return await self._run(self._calls.delete_face(collection, face_id))

    async def delete_collection(self, collection: str) -> int:
        return await self._run(self._calls.delete_collection(collection))

    async def info(self) -> ServerInfo:
        return await self._run(self._calls.info())

    async def health(self) -> Any:
        return await self._run(self._calls.health())

    async def ready(self) -> Any:
        return await self._run(self._calls.ready())

    async def _run(self, endpoint: Endpoint[T]) -> T:
        return endpoint.parse(decode(await self._send(endpoint.call)))

    async def _send(self, call: Call) -> httpx.Response:
        for attempt in range(self._retry.attempts):
            last = attempt == self._retry.attempts - 1
            try:
                response = await self._http.request(
                    call.method, call.path, content=call.content, headers=call.headers, params=call.params
                )
            except httpx.TransportError:
                if last or not call.retry_safe:
                    raise
                await asyncio.sleep(self._retry.delay(attempt, None))
                continue
            if response.status_code not in RETRY_STATUSES or last or not call.retry_safe:
                return response
            await asyncio.sleep(self._retry.delay(attempt, response.headers.get("Retry-After")))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFaceRest:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()
