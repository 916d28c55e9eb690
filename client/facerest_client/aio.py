"""The asyncio client: the methods of ``Endpoints`` (_calls.py), as FaceRest's, awaited. Image
paths are read with a blocking read (small files); pass bytes where that matters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

import httpx

from facerest_client._calls import Endpoint, Endpoints
from facerest_client._wire import (
    API_KEY_HEADER,
    DEFAULT_TIMEOUT_S,
    RETRY_STATUSES,
    Call,
    RetryPolicy,
    decode,
    request_args,
)
from facerest_client.types import Video

T = TypeVar("T")


class AsyncFaceRest(Endpoints):
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
        super().__init__(use_msgpack)
        headers = {API_KEY_HEADER: api_key} if api_key else {}
        self._http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s, transport=transport)
        self._retry = retry or RetryPolicy()

    async def _run(self, endpoint: Endpoint[T]) -> T:
        return endpoint.parse(decode(await self._send(endpoint.call)))

    async def _send(self, call: Call) -> httpx.Response:
        for attempt in range(self._retry.attempts):
            last = attempt == self._retry.attempts - 1
            try:
                with request_args(call) as args:
                    response = await self._http.request(call.method, call.path, **args)
            except httpx.TransportError:
                if last or not call.retry_safe:
                    raise
                await asyncio.sleep(self._retry.delay(attempt, None))
                continue
            if response.status_code not in RETRY_STATUSES or last or not call.retry_safe:
                return response
            await asyncio.sleep(self._retry.delay(attempt, response.headers.get("Retry-After")))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def wait_video(
        self,
        video_id: str,
        progress: Callable[[Video], object] | None = None,
        interval_s: float = 1.0,
    ) -> Video:
        """Follow a video until it is done or failed: ``progress`` gets its state (progress,
        tracks so far) about every ``interval_s`` (the service's long poll waits that long, and
        answers at once when the video ends)."""
        while True:
            video = await self.video(video_id, wait_s=interval_s)
            if progress is not None:
                progress(video)
            if video.finished:
                return video

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFaceRest:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()
