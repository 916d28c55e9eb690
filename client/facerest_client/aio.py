"""The asyncio client: the same methods as FaceRest, awaited. Image paths are read with a
blocking read (small files); pass bytes where that matters."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from facerest_client._calls import Calls, DrawOptions, Endpoint, ExtractOptions
from facerest_client._wire import RETRY_STATUSES, Call, ImageInput, RetryPolicy, decode
from facerest_client.types import ExtractResult, Job, ServerInfo

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
