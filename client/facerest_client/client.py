"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from facerest_client._calls import Calls, DrawOptions, Endpoint, ExtractOptions
from facerest_client._wire import RETRY_STATUSES, Call, ImageInput, RetryPolicy, decode
from facerest_client.types import ExtractResult, Job, ServerInfo

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
