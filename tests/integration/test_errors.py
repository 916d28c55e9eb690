"""Every bad input gets its documented 4xx with a JSON {code, message}; the worker survives."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import requests

from tests.client import b64, extract
from tests.images import GROUP_PHOTOS, encode
from tests.processes import Stack

GOOD = b64(GROUP_PHOTOS["yaoming.jpg"].read_bytes())
TRUNCATED_JPEG = GROUP_PHOTOS["yaoming.jpg"].read_bytes()[:300]

CASES: list[tuple[str, bytes | dict[str, object], int, str, str]] = [
    ("malformed JSON", b'{"images": {"data": [', 400, "invalid_request", "not valid JSON"),
    ("JSON not an object", b"[1, 2, 3]", 422, "validation_error", "body"),
    ("missing images", {"max_size": [640, 640]}, 422, "validation_error", "images"),
    ("images.data not a list", {"images": {"data": "abc"}}, 422, "validation_error", "images.data"),
    ("empty image list", {"images": {"data": []}}, 400, "invalid_request", "images.data is empty"),
    ("bad base64", {"images": {"data": ["@@@not base64@@@"]}}, 422, "invalid_image", "base64"),
    (
        "not an image",
        {"images": {"data": [b64(b"hello world, not a picture")]}},
        422,
        "invalid_image",
        "images.data[0]",
    ),
    ("zero bytes", {"images": {"data": [""]}}, 422, "invalid_image", "empty"),
    ("truncated JPEG", {"images": {"data": [b64(TRUNCATED_JPEG)]}}, 422, "invalid_image", "images.data[0]"),
    ("bad max_size", {"images": {"data": [GOOD]}, "max_size": [640]}, 422, "validation_error", "max_size"),
    (
        "negative limit_faces",
        {"images": {"data": [GOOD]}, "limit_faces": -1},
        422,
        "validation_error",
        "limit_faces",
    ),
    ("threshold above 1", {"images": {"data": [GOOD]}, "threshold": 3}, 422, "validation_error", "threshold"),
    ("unknown api_ver", {"images": {"data": [GOOD]}, "api_ver": "7"}, 422, "validation_error", "api_ver"),
    ("too many images", {"images": {"data": [GOOD] * 65}}, 413, "limit_exceeded", "max_images=64"),
]


@pytest.mark.parametrize(("name", "body", "status", "code", "mentions"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_its_4xx(
    api: str, name: str, body: bytes | dict[str, object], status: int, code: str, mentions: str
) -> None:
    if isinstance(body, bytes):
        response = requests.post(
            f"{api}/extract", data=body, headers={"Content-Type": "application/json"}, timeout=60
        )
    else:
        response = requests.post(f"{api}/extract", json=body, timeout=60)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()
    assert error["code"] == code
    assert mentions in error["message"]


def test_body_over_the_limit_is_413(api: str) -> None:
    body = b'{"images": {"data": ["' + b"A" * (65 * 1024 * 1024) + b'"]}}'
    response = requests.post(f"{api}/extract", data=body, timeout=60)
    assert response.status_code == 413
    assert response.json()["code"] == "request_entity_too_large"


def test_decompression_bomb_is_refused_before_decoding(api: str) -> None:
    # A 9000x9000 PNG of zeros compresses to a few hundred KB but holds 81 Mpx.
    bomb = encode(np.zeros((9000, 9000, 3), np.uint8), ".png")
    response = extract(api, [bomb])
    assert response.status_code == 413
    assert "max_image_pixels" in response.json()["message"]


def test_unknown_route_and_method_are_json(api: str) -> None:
    missing = requests.get(f"{api}/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = requests.get(f"{api}/extract", timeout=10)
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"


def test_worker_survives_bad_input_and_keeps_serving(api: str, system: Stack) -> None:
    worker = next(s for s in system.services if s.name == "worker")
    weird = [
        encode(np.zeros((1, 1, 3), np.uint8), ".png"),
        encode(np.zeros((5, 3000, 3), np.uint8), ".png"),
        base64.b64decode(b64(TRUNCATED_JPEG)) + b"\xff\xd9",
    ]
    response = extract(api, weird, api_ver="2")
    assert response.status_code == 200
    statuses = [image["status"] for image in response.json()["data"]]
    assert statuses[:2] == ["ok", "ok"]
    assert worker.process.poll() is None
    (faces,) = extract(api, [GROUP_PHOTOS["yaoming.jpg"].read_bytes()]).json()
    assert len(faces) == 1
