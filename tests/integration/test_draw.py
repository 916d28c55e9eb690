"""/draw_detections and /multipart/draw_detections: the photo comes back, its faces drawn on it."""

from __future__ import annotations

import base64
import io
from typing import Any, cast

import msgpack
import numpy as np
import requests
from numpy.typing import NDArray
from PIL import Image

from deploy.launcher import Stack
from testkit.photos import GROUP_PHOTOS, read_rgb, scaled_photo
from tests.faces import FACES_IN

PHOTO_PATH = GROUP_PHOTOS["t1.jpg"]
PHOTO = PHOTO_PATH.read_bytes()


def _decoded(data: bytes) -> NDArray[np.uint8]:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), np.uint8)


def _boxes(api: str, photo: bytes) -> list[list[int]]:
    body = {"images": {"data": [base64.b64encode(photo).decode()]}, "extract_embedding": False}
    (faces,) = requests.post(f"{api}/extract", json=body, timeout=120).json()
    assert len(faces) == FACES_IN["t1.jpg"]
    return [face["bbox"] for face in faces]


def _face_mask(shape: tuple[int, ...], boxes: list[list[int]]) -> NDArray[np.bool_]:
    """Where drawing may change pixels: each box with a margin for its strokes and dots, and the
    band above it where its label goes (the text is the photo's longer side / 50 px high, and
    "0.87 104px F 34" is some 9 such heights wide; near the right edge it moves left)."""
    font = max(shape[:2]) // 50
    margin = font // 2 + 4
    mask = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in boxes:
        mask[max(0, y1 - margin) : y2 + margin, max(0, x1 - margin) : x2 + margin] = True
        mask[max(0, y1 - 2 * font) : y1 + 2 * font, max(0, x1 - 10 * font) : x1 + 10 * font] = True
    return mask


def _changed(drawn: NDArray[np.uint8], original: NDArray[np.uint8], threshold: int) -> NDArray[np.bool_]:
    diff: NDArray[Any] = np.abs(drawn.astype(np.int16) - original.astype(np.int16)).max(axis=2)
    return np.asarray(diff > threshold)


def test_png_has_the_input_size_and_changes_only_around_the_faces(api: str) -> None:
    body = {"images": {"data": [base64.b64encode(PHOTO).decode()]}, "draw_ga": True}
    response = requests.post(f"{api}/draw_detections", json=body, timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    drawn = _decoded(response.content)
    original = read_rgb(PHOTO_PATH)
    assert drawn.shape == original.shape
    changed = _changed(drawn, original, 0)  # PNG is lossless: the JPEG's decoded pixels elsewhere
    boxes = _boxes(api, PHOTO)
    near_faces = _face_mask(drawn.shape, boxes)
    assert changed.sum() > 1000
    assert not changed[~near_faces].any()
    assert near_faces.mean() < 0.5  # the check above covers most of the photo
    # Every face got its box: its top edge's pixels changed.
    for x1, y1, x2, _ in boxes:
        assert changed[y1, x1:x2].mean() > 0.5


def test_multipart_answers_a_jpeg_of_the_same_size(api: str) -> None:
    response = requests.post(
        f"{api}/multipart/draw_detections",
        files={"file": ("t1.jpg", PHOTO, "image/jpeg")},
        data={"threshold": "0.6", "draw_landmarks": "true", "draw_scores": "true", "draw_sizes": "true"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/jpeg"
    drawn = _decoded(response.content)
    original = read_rgb(PHOTO_PATH)
    assert drawn.shape == original.shape
    near_faces = _face_mask(drawn.shape, _boxes(api, PHOTO))
    changed = _changed(drawn, original, 60)  # above JPEG's re-encoding noise
    assert changed[near_faces].mean() > 20 * max(changed[~near_faces].mean(), 1e-4)


def test_msgpack_body_and_106_landmarks_on_a_large_photo(api: str) -> None:
    large = scaled_photo("t1.jpg", (3840, 2658))
    req = {"images": {"data": [large]}, "draw_landmarks": "106", "max_size": [1280, 1280]}
    response = requests.post(
        f"{api}/draw_detections",
        data=msgpack.dumps(req),
        headers={"Content-Type": "application/msgpack"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    drawn = _decoded(response.content)
    assert drawn.shape == (2658, 3840, 3)
    # Strokes scale with the photo (8 px at 3840 px): a box edge is several pixels thick.
    changed = _changed(drawn, _decoded(large), 60)
    assert changed.sum() > 50_000


def test_no_image_and_bad_image_are_client_errors(api: str) -> None:
    empty = requests.post(f"{api}/draw_detections", json={"images": {"data": []}}, timeout=30)
    assert empty.status_code == 400 and empty.json()["code"] == "invalid_request"
    bad = requests.post(
        f"{api}/multipart/draw_detections",
        files={"file": ("x.jpg", b"not an image", "image/jpeg")},
        timeout=30,
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_image"


def test_a_retry_with_the_idempotency_key_draws_from_the_first_job(system: Stack) -> None:
    client = system.client()

    def jobs() -> set[str]:
        return {key.decode().split(":")[2] for key in cast(list[bytes], client.keys("facerest:job:*"))}

    before = jobs()
    body = {"images": {"data": [base64.b64encode(PHOTO).decode()]}, "draw_scores": False}
    headers = {"Idempotency-Key": "draw-retry-1"}
    first = requests.post(f"{system.api_url}/draw_detections", json=body, headers=headers, timeout=120)
    again = requests.post(f"{system.api_url}/draw_detections", json=body, headers=headers, timeout=120)
    assert first.status_code == again.status_code == 200
    assert again.headers["Content-Type"] == "image/png" and again.content == first.content
    assert len(jobs() - before) == 1, "the retry queued no job"
    other = requests.post(
        f"{system.api_url}/draw_detections", json=body | {"draw_sizes": False}, headers=headers, timeout=30
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
