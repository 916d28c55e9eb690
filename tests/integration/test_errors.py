"""Every bad input gets its documented 4xx with a JSON {code, message}; the worker survives."""

from __future__ import annotations

import base64
import io
import time

import cv2
import numpy as np
import psutil
import pytest
import requests
from PIL import Image

from deploy.launcher import Stack
from testkit.photos import GROUP_PHOTOS, encode
from tests import hostile
from tests.client import b64, extract
from tests.faces import FACES_IN

PHOTO = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
FACES = FACES_IN["yaoming.jpg"]
GOOD = b64(PHOTO)
TRUNCATED_JPEG = PHOTO[:300]


def _saved(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _photo() -> Image.Image:
    with Image.open(io.BytesIO(PHOTO)) as image:
        return image.convert("RGB")


def _exif_rotated() -> bytes:
    """The photo stored turned on its side, with EXIF orientation 6 saying how to show it upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _saved(_photo().transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=95)


def _animated(fmt: str) -> bytes:
    blank = Image.new("RGB", _photo().size, (0, 0, 0))
    return _saved(_photo(), fmt, save_all=True, append_images=[blank], duration=100, loop=0)


def _png_16_bit() -> bytes:
    """A 16-bit-per-channel RGB PNG using the full 0..65535 range, as scanners and RAW tools write."""
    wide = np.asarray(_photo(), np.uint16)[..., ::-1] * 257
    ok, data = cv2.imencode(".png", np.ascontiguousarray(wide))
    assert ok
    return data.tobytes()


PNG = _saved(_photo(), "PNG")
# 10000x10000 of one colour: 100 Mpx (the limit is 40) in about 100 KB, for the containers below.
HUGE_PNG = hostile.one_colour_png(10000, 10000)

# Every kind of hostile or unusual image: (name, base64 text, status, error code, faces expected).
# Decodable images must give the photo's FACES; broken ones their 4xx, naming the image.
IMAGES: list[tuple[str, str, int, str | None, int]] = [
    ("zero bytes", "", 422, "invalid_image", 0),
    ("not an image", b64(b"hello world, not a picture"), 422, "invalid_image", 0),
    ("PDF bytes", b64(b"%PDF-1.4\n%\xe2\xe3\n1 0 obj"), 422, "invalid_image", 0),
    ("JPEG marker then garbage", b64(b"\xff\xd8\xff\xe0" + bytes(100)), 422, "invalid_image", 0),
    ("truncated JPEG", b64(TRUNCATED_JPEG), 422, "invalid_image", 0),
    ("truncated PNG", b64(PNG[: len(PNG) // 2]), 422, "invalid_image", 0),
    (
        "corrupt PNG",
        b64(PNG[:200] + bytes(b ^ 0x5A for b in PNG[200:400]) + PNG[400:]),
        422,
        "invalid_image",
        0,
    ),
    ("1x1 PNG", b64(_saved(Image.new("RGB", (1, 1)), "PNG")), 200, None, 0),
    ("1x1 JPEG", b64(_saved(Image.new("RGB", (1, 1)), "JPEG")), 200, None, 0),
    ("grayscale JPEG", b64(_saved(_photo().convert("L"), "JPEG")), 200, None, FACES),
    ("CMYK JPEG", b64(_saved(_photo().convert("CMYK"), "JPEG")), 200, None, FACES),
    ("16-bit RGB PNG", b64(_png_16_bit()), 200, None, FACES),
    (
        "16-bit grayscale PNG",
        b64(_saved(Image.fromarray(np.asarray(_photo().convert("L"), np.uint16) * 257), "PNG")),
        200,
        None,
        FACES,
    ),
    ("RGBA PNG", b64(_saved(_photo().convert("RGBA"), "PNG")), 200, None, FACES),
    ("animated GIF", b64(_animated("GIF")), 200, None, FACES),
    ("animated WebP", b64(_animated("WEBP")), 200, None, FACES),
    ("EXIF-rotated JPEG", b64(_exif_rotated()), 200, None, FACES),
    ("BMP", b64(_saved(_photo(), "BMP")), 200, None, FACES),
    ("TIFF", b64(_saved(_photo(), "TIFF")), 200, None, FACES),
    (
        "base64 with line breaks",
        "\n".join(GOOD[i : i + 76] for i in range(0, len(GOOD), 76)),
        200,
        None,
        FACES,
    ),
    ("data: URL prefix", "data:image/jpeg;base64," + GOOD, 200, None, FACES),
    ("bad base64", "@@@not base64@@@", 422, "invalid_image", 0),
    # Containers whose directory lies: refused by the format allow-list before any parser runs.
    ("ICO wrapping a 10000x10000 PNG", b64(hostile.ico_wrapping(HUGE_PNG)), 422, "invalid_image", 0),
    (
        "ICNS saying 1024x1024 holding a 10000x10000 PNG",
        b64(hostile.icns_wrapping(HUGE_PNG)),
        422,
        "invalid_image",
        0,
    ),
    ("tiny ICNS claiming 30000x30000", b64(hostile.icns_bomb()), 422, "invalid_image", 0),
    ("TIFF bomb header 100000x100000", b64(hostile.tiff_bomb_header()), 413, "limit_exceeded", 0),
    ("GIF with 500 frames", b64(hostile.gif_with_frames(_photo(), 500)), 200, None, FACES),
]

# Growth of the API's memory (gunicorn and its workers) one image may cause: the ICO above,
# decoded by the old probe, took the API from 81 to 464 MB.
MAX_API_GROWTH = 150 * 2**20

CASES: list[tuple[str, bytes | dict[str, object], int, str, str]] = [
    ("malformed JSON", b'{"images": {"data": [', 400, "invalid_request", "not valid JSON"),
    ("JSON not an object", b"[1, 2, 3]", 422, "validation_error", "body"),
    ("missing images", {"max_size": [640, 640]}, 422, "validation_error", "images"),
    ("images.data not a list", {"images": {"data": "abc"}}, 422, "validation_error", "images.data"),
    ("empty image list", {"images": {"data": []}}, 400, "invalid_request", "images.data is empty"),
    ("bad base64", {"images": {"data": ["@@@not base64@@@"]}}, 422, "invalid_image", "base64"),
    ("zero bytes", {"images": {"data": [""]}}, 422, "invalid_image", "empty"),
    ("images.urls not a list", {"images": {"urls": "http://x"}}, 422, "validation_error", "images.urls"),
    ("unknown images field", {"images": {"data": [GOOD], "files": []}}, 422, "validation_error", "files"),
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
    (
        "too many images and URLs together",
        {"images": {"data": [GOOD] * 60, "urls": ["http://127.0.0.1/a.jpg"] * 5}},
        413,
        "limit_exceeded",
        "max_images=64",
    ),
    (
        "limit_faces above max_faces",
        {"images": {"data": [GOOD]}, "limit_faces": 1000},
        422,
        "validation_error",
        "max_faces=256",
    ),
    (
        "image over max_image_bytes",
        {"images": {"data": ["A" * (23 * 1024 * 1024)]}},
        413,
        "limit_exceeded",
        "max_image_bytes",
    ),
    (
        "deeply nested JSON",
        b"[" * 5000 + b"]" * 5000,
        400,
        "invalid_request",
        "not valid JSON: nested too deep",
    ),
    # orjson's own text was "str is not valid UTF-8: surrogates not allowed".
    ("JSON not UTF-8", b'{"images": {"data": ["\xed\xa0\x80"]}}', 400, "invalid_request", "not UTF-8"),
]


def _worker(system: Stack) -> None:
    worker = system.service("worker")
    assert worker.process.poll() is None, worker.tail()


def _api_rss(system: Stack) -> int:
    """Resident memory of the API service: gunicorn's arbiter and its workers."""
    api = system.service("api")
    assert api.process.poll() is None, api.tail()
    root = psutil.Process(api.process.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


@pytest.mark.parametrize(("name", "text", "status", "code", "faces"), IMAGES, ids=[c[0] for c in IMAGES])
def test_hostile_image_gets_its_documented_answer(
    api: str, system: Stack, name: str, text: str, status: int, code: str | None, faces: int
) -> None:
    before = _api_rss(system)
    start = time.perf_counter()
    response = requests.post(f"{api}/extract", json={"images": {"data": [text]}}, timeout=60)
    print(f"{name}: {response.status_code} in {time.perf_counter() - start:.3f} s")
    assert response.status_code == status, response.text
    assert _api_rss(system) - before < MAX_API_GROWTH
    assert response.headers["Content-Type"] == "application/json"
    if code is None:
        (found,) = response.json()
        assert len(found) == faces
    else:
        assert response.json()["code"] == code
        assert "images.data[0]" in response.json()["message"]
    _worker(system)


@pytest.mark.parametrize(("name", "text", "status", "code", "faces"), IMAGES, ids=[c[0] for c in IMAGES])
def test_hostile_image_fails_alone_in_api_v2(
    api: str, system: Stack, name: str, text: str, status: int, code: str | None, faces: int
) -> None:
    body = {"images": {"data": [text, GOOD]}, "api_ver": "2"}
    before = _api_rss(system)
    response = requests.post(f"{api}/extract", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert _api_rss(system) - before < MAX_API_GROWTH
    hostile, good = response.json()["data"]
    assert good["status"] == "ok" and len(good["faces"]) == FACES
    if code is None:
        assert hostile["status"] == "ok" and len(hostile["faces"]) == faces
    else:
        assert hostile["status"] == "error" and hostile["error"]["code"] == code
    _worker(system)


def test_a_bad_image_after_a_good_one_fails_an_api_ver_1_request_naming_it(api: str) -> None:
    """The original format's rule (one bad image fails the request), whatever the bad image's
    place: found by the schema test's fuzzing, a refused image after an accepted one was a 500."""
    for data in ([GOOD, "bm90IGFuIGltYWdl"], [GOOD, GOOD, "bm90IGFuIGltYWdl", GOOD]):
        response = requests.post(
            f"{api}/extract", json={"images": {"data": data}, "api_ver": "1"}, timeout=60
        )
        assert response.status_code == 422, response.text
        bad = data.index("bm90IGFuIGltYWdl")
        assert f"images.data[{bad}]" in response.json()["message"]
    # A refused URL after accepted data images: the same rule, the URL's own code.
    body = {"images": {"data": [GOOD, GOOD], "urls": ["http://127.0.0.1/a.jpg"]}, "api_ver": "1"}
    response = requests.post(f"{api}/extract", json=body, timeout=60)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "url_refused"
    assert "images.urls[0]" in response.json()["message"]


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


def test_bodies_that_cannot_be_read_are_described_in_our_words(api: str) -> None:
    """Issue 24: msgpack's "exceeds max_array_len(5)", and a multipart rename answered "not valid JSON"."""
    lying = requests.post(
        f"{api}/extract",
        data=b"\xdd\xff\xff\xff\xff",
        headers={"Content-Type": "application/msgpack"},
        timeout=10,
    )
    assert lying.status_code == 400 and lying.json() == {
        "code": "invalid_request",
        "message": "body is not valid MessagePack: it ends before the values it declares are complete",
    }
    rename = requests.patch(
        f"{api}/collections/errors/subjects/someone", files={"subject": (None, "other")}, timeout=10
    )
    assert rename.status_code == 415, rename.text
    assert rename.json()["code"] == "unsupported_media_type"
    assert "takes a JSON or MessagePack body" in rename.json()["message"]


def test_body_over_the_limit_is_413(api: str) -> None:
    body = b'{"images": {"data": ["' + b"A" * (65 * 1024 * 1024) + b'"]}}'
    headers = {"Content-Type": "application/json"}
    response = requests.post(f"{api}/extract", data=body, headers=headers, timeout=60)
    assert response.status_code == 413
    assert response.json()["code"] == "request_entity_too_large"
    assert "max_body_bytes=67108864" in response.json()["message"]


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
    assert "POST" in wrong.headers["Allow"]


def test_worker_survives_bad_input_and_keeps_serving(api: str, system: Stack) -> None:
    worker = system.service("worker")
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
    assert len(faces) == FACES


def test_container_formats_are_refused_by_name_from_the_header(api: str, system: Stack) -> None:
    """The ICO holding 100 Mpx used to be decoded by the API's probe (0.4 s, +380 MB) before
    its 413; now its header's magic refuses it, naming the formats that are accepted."""
    start = time.perf_counter()
    response = extract(api, [hostile.ico_wrapping(HUGE_PNG)])
    assert time.perf_counter() - start < 0.3
    assert response.status_code == 422
    assert response.json() == {
        "code": "invalid_image",
        "message": "images.data[0]: format ICO is not accepted; "
        "accepted: JPEG, PNG, WEBP, BMP, TIFF, GIF, MPO",
    }
    _worker(system)
