"""InsightFace-REST's clients against the real system: today's (0.9.5, ``ifr_clients``) and 2020's.

The requests are built here byte for byte as today's client builds them (from the facts of its
protocol, not from its code): a MessagePack map whose ``images.data`` holds raw bytes, sent as
``Content-Type: application/msgpack`` with ``Accept: application/x-msgpack``; the same map in
JSON with base64 strings; ``images.urls`` with ``img_req_headers``. Its answers are validated as
that client validates them: a pydantic model whose ``Optional`` fields have no default, so each
key must be present (null allowed), ``took.total_ms`` and ``data[].status`` included.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import msgpack
import numpy as np
import pytest
import requests
from pydantic import BaseModel, ConfigDict

from shared.contract import DEFAULT_THRESHOLD
from testkit.photos import GROUP_PHOTOS
from tests.client import vectors
from tests.faces import FACES_IN
from tests.localserver import LocalServer, body
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M

PHOTO = GROUP_PHOTOS["t1.jpg"].read_bytes()
FACES = FACES_IN["t1.jpg"]
TOKEN = "Bearer s3cret"


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Took(Lenient):
    total_ms: float | None


class FaceAnswer(Lenient):
    num_det: int | None
    prob: float | None
    size: int | None
    bbox: list[int] | None
    landmarks: list[list[Any]] | None
    norm: float | None
    vec: list[Any] | None
    facedata: str | None


class ImageAnswer(Lenient):
    status: str
    took_ms: float | None
    faces: list[FaceAnswer] | None


class Envelope(Lenient):
    took: Took
    data: list[ImageAnswer]


def client_request(images: dict[str, Any], use_msgpack: bool, **options: Any) -> dict[str, Any]:
    """The map today's client sends from IFRClient.extract's arguments (its defaults)."""
    return {
        "images": images,
        "threshold": 0.6,
        "extract_ga": False,
        "extract_embedding": True,
        "return_face_data": False,
        "return_landmarks": False,
        "embed_only": False,
        "limit_faces": 0,
        "min_face_size": 0,
        "msgpack": use_msgpack,
        "img_req_headers": {},
        **options,
    }


def post_msgpack(api: str, req: dict[str, Any], path: str = "/extract") -> requests.Response:
    return requests.post(
        f"{api}{path}",
        data=msgpack.dumps(req),
        headers={"content-type": "application/msgpack", "accept": "application/x-msgpack"},
        timeout=120,
    )


def read_answer(response: requests.Response) -> Any:
    """As today's client reads an answer: MessagePack only when the Content-Type says exactly so."""
    assert response.status_code == 200, response.content[:300]
    if response.headers["content-type"] == "application/x-msgpack":
        return msgpack.loads(response.content)
    return response.json()


def test_msgpack_body_with_raw_bytes_gets_the_envelope_the_client_validates(api: str) -> None:
    response = post_msgpack(api, client_request({"data": [PHOTO]}, use_msgpack=True))
    assert response.headers["content-type"] == "application/x-msgpack"
    answer = read_answer(response)
    envelope = Envelope.model_validate(answer)
    (image,) = envelope.data
    assert image.status == "ok" and image.faces is not None and len(image.faces) == FACES
    assert envelope.took.total_ms is not None and envelope.took.total_ms > 0
    for index, face in enumerate(image.faces):
        assert face.num_det == index and face.vec is not None and len(face.vec) == 512
        assert face.bbox is not None and face.size == round(answer["data"][0]["faces"][index]["size_wh"][0])
        assert face.landmarks is None and face.facedata is None  # not asked for: null, yet present
    # The float geometry facerest has always had, under its own names.
    raw_face = answer["data"][0]["faces"][0]
    assert [round(v) for v in raw_face["bbox_float"]] == raw_face["bbox"]


def test_json_base64_gets_the_same_faces_as_msgpack(api: str) -> None:
    req = client_request({"data": [base64.b64encode(PHOTO).decode("ascii")]}, use_msgpack=False)
    response = requests.post(f"{api}/extract", json=req, timeout=120)
    assert response.headers["content-type"] == "application/json"
    answer = read_answer(response)
    (image,) = Envelope.model_validate(answer).data
    packed = read_answer(post_msgpack(api, client_request({"data": [PHOTO]}, use_msgpack=True)))
    assert [f["bbox"] for f in answer["data"][0]["faces"]] == [f["bbox"] for f in packed["data"][0]["faces"]]
    np.testing.assert_allclose(
        vectors(answer["data"][0]["faces"]), vectors(packed["data"][0]["faces"]), atol=1e-6
    )
    assert image.faces is not None and len(image.faces) == FACES


def test_null_options_as_the_asyncio_client_sends_them(api: str) -> None:
    """IFRClientAsync sends ``"img_req_headers": null`` when no headers are given."""
    for use_msgpack in (True, False):
        req = client_request({"data": [PHOTO]}, use_msgpack, img_req_headers=None)
        if use_msgpack:
            response = post_msgpack(api, req)
        else:
            req["images"] = {"data": [base64.b64encode(PHOTO).decode("ascii")]}
            response = requests.post(f"{api}/extract", json=req, timeout=120)
        (image,) = Envelope.model_validate(read_answer(response)).data
        assert image.faces is not None and len(image.faces) == FACES


def test_landmarks_and_face_data_as_the_client_reads_them(api: str) -> None:
    req = client_request({"data": [PHOTO]}, use_msgpack=True, return_landmarks=True, return_face_data=True)
    answer = read_answer(post_msgpack(api, req))
    (image,) = Envelope.model_validate(answer).data
    assert image.faces is not None
    for face in image.faces:
        assert face.landmarks is not None and len(face.landmarks) == 5
        assert all(isinstance(v, int) for point in face.landmarks for v in point)
        assert face.facedata is not None and base64.b64decode(face.facedata)[:2] == b"\xff\xd8"


@pytest.fixture(scope="module")
def images_needing_a_token() -> Iterator[LocalServer]:
    """Serves the photo only to requests that carry the client's img_req_headers."""

    def guarded(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Authorization") != TOKEN or handler.headers.get("User-Agent") != "ifr-test":
            body(b"forbidden", 403)(handler)
            return
        body(PHOTO)(handler)

    with LocalServer() as server:
        server.routes["/t1.jpg"] = guarded
        yield server


def test_url_mode_sends_img_req_headers_to_the_image_server(
    allowing_api: str, images_needing_a_token: LocalServer
) -> None:
    url = images_needing_a_token.url("/t1.jpg")
    headers = {"Authorization": TOKEN, "User-Agent": "ifr-test"}
    req = client_request({"urls": [url]}, use_msgpack=True, img_req_headers=headers)
    (image,) = Envelope.model_validate(read_answer(post_msgpack(allowing_api, req))).data
    assert image.status == "ok" and image.faces is not None and len(image.faces) == FACES

    without = client_request({"urls": [url]}, use_msgpack=False)
    answer = read_answer(requests.post(f"{allowing_api}/extract", json=without, timeout=120))
    (refused,) = Envelope.model_validate(answer).data
    assert refused.status == "error" and refused.faces == []
    assert answer["data"][0]["error"]["code"] == "url_fetch_failed"
    assert "HTTP status 403" in answer["data"][0]["error"]["message"]


def test_fetcher_headers_cannot_be_overridden(api: str) -> None:
    req = client_request(
        {"urls": ["http://127.0.0.1:9/a.jpg"]}, use_msgpack=False, img_req_headers={"Host": "x"}
    )
    response = requests.post(f"{api}/extract", json=req, timeout=60)
    assert response.status_code == 422
    assert "img_req_headers" in response.json()["message"] and "'Host'" in response.json()["message"]


def test_2020_request_still_gets_the_bare_list(api: str) -> None:
    req = {"images": {"data": [base64.b64encode(PHOTO).decode()]}, "max_size": [640, 480]}
    response = requests.post(f"{api}/extract", json=req, timeout=120)
    assert response.status_code == 200
    (faces,) = response.json()
    assert len(faces) == FACES
    assert set(faces[0]) == {"vec", "det", "prob", "bbox"}


def test_explicit_api_ver_wins_over_the_generation(api: str) -> None:
    listed = read_answer(post_msgpack(api, {**client_request({"data": [PHOTO]}, True), "api_ver": "1"}))
    assert isinstance(listed, list) and len(listed[0]) == FACES
    req_2020 = {"images": {"data": [base64.b64encode(PHOTO).decode()]}, "api_ver": 2}
    enveloped = requests.post(f"{api}/extract", json=req_2020, timeout=120).json()
    assert len(Envelope.model_validate(enveloped).data[0].faces or []) == FACES


def test_detect_masks_is_answered_as_not_supported(api: str) -> None:
    response = post_msgpack(api, client_request({"data": [PHOTO]}, True, detect_masks=True))
    answer = read_answer(response)
    assert any("detect_masks: not supported" in text for text in answer["warnings"])
    assert "detect_masks: not supported" in response.headers["X-Facerest-Warning"]
    assert all(face["mask_probs"] is None for face in answer["data"][0]["faces"])


def test_info_has_the_models_object_the_client_prints(api: str) -> None:
    info = requests.get(f"{api}/info", timeout=10).json()
    models = info["models"]
    # What IFRClient.server_info(show=True) reads, each a real value.
    assert models["det_name"] == SCRFD_500M.name and models["rec_name"] == ARCFACE_MBF.name
    assert models["inference_backend"] == "onnxruntime+openvino"  # auto on a CPU
    assert models["max_size"] == [640, 640]
    assert models["det_batch_size"] == 8 and models["rec_batch_size"] == 8
    assert models["mask_detector"] is None and models["ga_name"]
    assert {m["key"] for m in models["loaded"]} >= {"scrfd", "arcface", "genderage"}
    assert info["version"] and info["defaults"]["det_thresh"] == DEFAULT_THRESHOLD == 0.5


def test_multipart_extract_equals_json_extract(api: str) -> None:
    uploaded = requests.post(
        f"{api}/extract",
        files=[("file", ("t1.jpg", PHOTO, "image/jpeg"))],
        data={"return_landmarks": "true", "max_size": "640,640"},
        timeout=120,
    )
    assert uploaded.status_code == 200, uploaded.text
    json_body = {
        "images": {"data": [base64.b64encode(PHOTO).decode()]},
        "return_landmarks": True,
        "api_ver": "2",
    }
    sent = requests.post(f"{api}/extract", json=json_body, timeout=120).json()
    multipart_faces = uploaded.json()["data"][0]["faces"]  # a multipart body gets the envelope
    json_faces = sent["data"][0]["faces"]
    assert len(multipart_faces) == FACES
    assert [f["bbox"] for f in multipart_faces] == [f["bbox"] for f in json_faces]
    assert [f["landmarks"] for f in multipart_faces] == [f["landmarks"] for f in json_faces]
    np.testing.assert_allclose(vectors(multipart_faces), vectors(json_faces), atol=1e-6)


def test_multipart_extract_takes_several_files_in_order(api: str) -> None:
    single = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
    response = requests.post(
        f"{api}/extract",
        files=[("file", ("a.jpg", single, "image/jpeg")), ("file", ("b.jpg", PHOTO, "image/jpeg"))],
        data={"api_ver": "1"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert [len(faces) for faces in response.json()] == [FACES_IN["yaoming.jpg"], FACES]
