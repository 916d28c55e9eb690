"""facerest_client without a server: request bodies, Retry-After, the retry loop (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import time

import httpx
import msgpack
import pytest
from facerest_client import AsyncFaceRest, FaceRest, FaceRestError, RetryPolicy
from facerest_client._wire import body_call, parse_retry_after

JPEG = b"\xff\xd8\xff raw"
ANSWER = {
    "took": {"total_ms": 12.5},
    "data": [
        {
            "status": "ok",
            "took_ms": 3.0,
            "size": [640, 480],
            "faces": [
                {
                    "num_det": 0,
                    "prob": 0.9,
                    "bbox": [10, 20, 110, 140],
                    "bbox_float": [10.4, 19.6, 110.2, 140.0],
                    "size": 100,
                    "landmarks": None,
                    "vec": [0.6, 0.8],
                    "norm": 21.5,
                    "facedata": None,
                    "mask_probs": None,
                }
            ],
        }
    ],
}


def test_msgpack_body_carries_raw_bytes_and_an_idempotency_key() -> None:
    call = body_call("/extract", {"threshold": 0.5}, [JPEG], ["http://a.example/b.jpg"], use_msgpack=True)
    assert call.headers["Content-Type"] == "application/msgpack"
    assert call.headers["Accept"] == "application/x-msgpack"
    assert len(call.headers["Idempotency-Key"]) == 32
    assert call.content is not None
    body = msgpack.unpackb(call.content)
    assert body == {"images": {"data": [JPEG], "urls": ["http://a.example/b.jpg"]}, "threshold": 0.5}


def test_json_body_carries_base64() -> None:
    call = body_call("/extract", {}, [JPEG], [], use_msgpack=False, idempotent=False)
    assert call.content is not None and "Idempotency-Key" not in call.headers
    assert json.loads(call.content)["images"]["data"] == [base64.b64encode(JPEG).decode()]


def test_retry_after_as_seconds_or_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = parse_retry_after(later)
    assert seconds is not None and 28 <= seconds <= 31
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    policy = RetryPolicy(backoff_s=0.5, max_delay_s=10)
    assert policy.delay(0, "3") == 3.0 and policy.delay(2, None) == 2.0 and policy.delay(0, "600") == 10


def _server(statuses: list[int], seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses[len(seen) - 1]
        if status != 200:
            body = {"code": "overloaded", "message": "full", "retry_after_s": 0}
            return httpx.Response(status, json=body, headers={"Retry-After": "0"})
        return httpx.Response(
            200, content=msgpack.packb(ANSWER), headers={"Content-Type": "application/x-msgpack"}
        )

    return httpx.MockTransport(answer)


def test_sync_client_retries_503_with_the_same_key_and_body() -> None:
    seen: list[httpx.Request] = []
    with FaceRest("http://facerest.test", transport=_server([503, 503, 200], seen)) as client:
        result = client.extract([JPEG])
    assert len(seen) == 3
    assert len({r.headers["Idempotency-Key"] for r in seen}) == 1
    assert len({r.content for r in seen}) == 1
    (face,) = result.images[0].faces
    assert face.bbox == (10.4, 19.6, 110.2, 140.0) and face.vec == (0.6, 0.8)
    assert result.images[0].size == (640, 480) and result.total_ms == 12.5


def test_sync_client_gives_up_after_its_attempts_with_the_service_error() -> None:
    seen: list[httpx.Request] = []
    transport = _server([503, 503], seen)
    client = FaceRest("http://facerest.test", transport=transport, retry=RetryPolicy(attempts=2))
    with client, pytest.raises(FaceRestError) as raised:
        client.extract([JPEG])
    assert raised.value.status == 503 and raised.value.code == "overloaded" and len(seen) == 2


def test_async_client_retries_too() -> None:
    seen: list[httpx.Request] = []

    async def run() -> int:
        async with AsyncFaceRest("http://facerest.test", transport=_server([429, 200], seen)) as client:
            result = await client.extract([JPEG])
            return len(result.images[0].faces)

    assert asyncio.run(run()) == 1 and len(seen) == 2
