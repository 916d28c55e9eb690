"""/extract through the real API, Redis and a worker process."""

from __future__ import annotations

import base64
import time
from typing import Any

import cv2
import msgpack
import numpy as np
import pytest
import requests
from insightface.model_zoo.scrfd import SCRFD as ReferenceSCRFD

from testkit.photos import ALIGNED_CROP, GROUP_PHOTOS, encode, read_rgb
from tests.client import extract, file2base64, vectors
from tests.faces import FACES_IN
from worker.inference.files import locate
from worker.inference.registry import SCRFD_500M
from worker.models.postprocess import box_iou


@pytest.fixture(scope="module")
def reference_detector() -> ReferenceSCRFD:
    detector = ReferenceSCRFD(model_file=str(locate(SCRFD_500M)))
    detector.prepare(-1, input_size=(640, 640), det_thresh=0.5)  # both sides' default
    return detector


def _boxes(faces: list[dict[str, Any]], key: str = "bbox") -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([face[key] for face in faces], dtype=np.float64).reshape(-1, 4)


@pytest.mark.parametrize("photo", ["t1.jpg", "players.jpg"])
def test_extract_finds_the_faces_the_reference_finds(
    api: str, photo: str, reference_detector: ReferenceSCRFD
) -> None:
    path = GROUP_PHOTOS[photo]
    expected, _ = reference_detector.detect(cv2.imread(str(path)), input_size=(640, 640))
    response = extract(api, [path.read_bytes()], api_ver="2")
    assert response.status_code == 200, response.text
    faces = response.json()["data"][0]["faces"]
    assert len(faces) == len(expected)
    # api_ver 2's float boxes, not the integers InsightFace-REST's clients read: a pixel of
    # rounding moves the IoU of players.jpg's 24 px background faces down to 0.90.
    iou = box_iou(_boxes(faces, "bbox_float"), expected[:, :4])
    assert np.all(iou.max(axis=1) >= 0.99), iou.max(axis=1)


def test_legacy_format_field_by_field(api: str) -> None:
    response = extract(api, [GROUP_PHOTOS["t1.jpg"].read_bytes(), GROUP_PHOTOS["yaoming.jpg"].read_bytes()])
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    images = response.json()
    assert isinstance(images, list) and len(images) == 2
    assert len(images[0]) == FACES_IN["t1.jpg"] and len(images[1]) == FACES_IN["yaoming.jpg"]
    height, width = read_rgb(GROUP_PHOTOS["t1.jpg"]).shape[:2]
    for faces in images:
        for index, face in enumerate(faces):
            assert set(face) == {"vec", "det", "prob", "bbox"}
            assert face["det"] == index
            assert 0.5 <= face["prob"] <= 1.0
            assert len(face["bbox"]) == 4 and all(isinstance(v, int) for v in face["bbox"])
            x1, y1, x2, y2 = face["bbox"]
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            assert len(face["vec"]) == 512
            assert abs(np.linalg.norm(face["vec"]) - 1.0) < 1e-3
        probs = [face["prob"] for face in faces]
        assert probs == sorted(probs, reverse=True)


def test_original_client_code_works_unchanged(api: str) -> None:
    req = {"images": {"data": [file2base64(GROUP_PHOTOS["gdp.jpg"])]}, "max_size": [640, 480]}
    resp = requests.post(f"{api}/extract", json=req, timeout=60)
    assert resp.status_code == 200
    assert len(resp.json()[0]) >= 1


def test_bbox_is_in_original_pixels_whatever_max_size(api: str) -> None:
    data = GROUP_PHOTOS["t1.jpg"].read_bytes()
    (large,) = extract(api, [data], max_size=[1280, 1280]).json()
    (small,) = extract(api, [data], max_size=[640, 480]).json()
    (unscaled,) = extract(api, [data], max_size=0).json()
    reference = _boxes(large)
    for other in (small, unscaled):
        iou = box_iou(_boxes(other), reference)
        assert np.all(iou.max(axis=1) >= 0.8), iou.max(axis=1)
    assert len(small) >= len(large) - 1


def test_same_person_matches_and_different_people_do_not(api: str) -> None:
    rgb = read_rgb(GROUP_PHOTOS["t1.jpg"])
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    resized = np.asarray(cv2.resize(rgb, (rgb.shape[1] * 3 // 5, rgb.shape[0] * 3 // 5)), np.uint8)
    response = extract(api, [encode(rgb), encode(flipped), encode(resized)], api_ver="2")
    assert response.status_code == 200
    data = response.json()["data"]
    original, mirror, smaller = (image["faces"] for image in data)
    width = rgb.shape[1]
    vec = vectors(original)
    # Different people in the group photo are far apart.
    similarity = vec @ vec.T
    off_diagonal = similarity[~np.eye(len(vec), dtype=bool)]
    assert off_diagonal.max() < 0.35, off_diagonal.max()
    # Each face matches its mirrored and its rescaled copy.
    for face, face_vec in zip(original, vec, strict=True):
        x1, y1, x2, y2 = face["bbox"]
        mirrored_box = np.array([[width - x2, y1, width - x1, y2]])
        match = int(box_iou(_boxes(mirror), mirrored_box).argmax())
        assert float(face_vec @ np.array(mirror[match]["vec"])) > 0.8
        scaled_box = np.array([face["bbox"]]) * 0.6
        match = int(box_iou(_boxes(smaller), scaled_box).argmax())
        assert float(face_vec @ np.array(smaller[match]["vec"])) > 0.8


def test_async_submit_and_poll_give_the_sync_result(api: str) -> None:
    photo = GROUP_PHOTOS["players.jpg"].read_bytes()
    sync = extract(api, [photo]).json()
    accepted = extract(api, [photo], **{"async": True})
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["status_url"] == f"/results/{body['id']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = requests.get(f"{api}{body['status_url']}", timeout=10).json()
        assert state["status"] in {"queued", "running", "done"}
        if state["status"] == "done":
            break
        time.sleep(0.1)
    assert state["status"] == "done"
    assert state["result"] == sync


def test_long_poll_returns_the_finished_job_in_one_call(api: str) -> None:
    photo = GROUP_PHOTOS["t1.jpg"].read_bytes()
    body = extract(api, [photo], **{"async": True}).json()
    state = requests.get(f"{api}{body['status_url']}", params={"wait": 25}, timeout=60).json()
    assert state["status"] == "done"
    assert len(state["result"][0]) == FACES_IN["t1.jpg"]
    # A finished job answers a long poll at once, as often as asked.
    again = requests.get(f"{api}{body['status_url']}", params={"wait": 25}, timeout=5).json()
    assert again["result"] == state["result"]


@pytest.mark.parametrize("wait", ["-1", "soon", "nan", "100000"])
def test_long_poll_refuses_a_bad_wait(api: str, wait: str) -> None:
    body = extract(api, [GROUP_PHOTOS["yaoming.jpg"].read_bytes()], **{"async": True}).json()
    response = requests.get(f"{api}{body['status_url']}", params={"wait": wait}, timeout=10)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert "wait" in response.json()["message"]


def test_unknown_job_is_404(api: str) -> None:
    response = requests.get(f"{api}/results/0123456789abcdef", timeout=10)
    assert response.status_code == 404
    assert response.json()["code"] == "job_not_found"


def test_v2_reports_a_bad_image_and_answers_the_others(api: str) -> None:
    good = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
    body = {
        "images": {"data": [base64.b64encode(good).decode(), base64.b64encode(b"not an image").decode()]},
        "api_ver": "2",
        "return_landmarks": True,
        "verbose_timings": True,
    }
    response = requests.post(f"{api}/extract", json=body, timeout=60)
    assert response.status_code == 200
    first, second = response.json()["data"]
    assert first["status"] == "ok" and len(first["faces"]) == FACES_IN["yaoming.jpg"]
    face = first["faces"][0]
    assert len(face["landmarks"]) == 5 and len(face["vec"]) == 512 and face["norm"] > 1
    assert set(first["timings"]) >= {"decode_ms", "detect_ms", "embed_ms"}
    assert second["status"] == "error"
    assert second["error"]["code"] == "invalid_image"
    assert "images.data[1]" in second["error"]["message"]


def test_msgpack_response_carries_the_same_faces(api: str) -> None:
    photo = GROUP_PHOTOS["gdp.jpg"].read_bytes()
    body = {"images": {"data": [base64.b64encode(photo).decode()]}}
    response = requests.post(
        f"{api}/extract", json=body, headers={"Accept": "application/x-msgpack"}, timeout=60
    )
    assert response.headers["Content-Type"] == "application/x-msgpack"
    (faces,) = msgpack.unpackb(response.content)
    (json_faces,) = extract(api, [photo]).json()
    assert [f["bbox"] for f in faces] == [f["bbox"] for f in json_faces]
    np.testing.assert_allclose(vectors(faces), vectors(json_faces), atol=1e-6)


def test_detection_only_and_face_data(api: str) -> None:
    response = extract(
        api, [GROUP_PHOTOS["yaoming.jpg"].read_bytes()], extract_embedding=False, return_face_data=True
    )
    (faces,) = response.json()
    assert faces[0]["vec"] is None
    crop = cv2.imdecode(np.frombuffer(base64.b64decode(faces[0]["facedata"]), np.uint8), cv2.IMREAD_COLOR)
    assert crop is not None and crop.shape == (112, 112, 3)


def test_embed_only_matches_the_embedding_of_the_detected_face(api: str) -> None:
    crop = ALIGNED_CROP.read_bytes()
    (embedded,) = extract(api, [crop], embed_only=True).json()
    assert len(embedded) == 1 and len(embedded[0]["vec"]) == 512
    # The aligned crop, padded and detected again, gives nearly the same vector.
    rgb = read_rgb(ALIGNED_CROP)
    padded = np.asarray(
        cv2.copyMakeBorder(rgb, 56, 56, 56, 56, cv2.BORDER_CONSTANT, value=(0, 0, 0)), np.uint8
    )
    (detected,) = extract(api, [encode(padded, ".png")]).json()
    assert len(detected) == FACES_IN[ALIGNED_CROP.name]
    assert float(np.dot(embedded[0]["vec"], detected[0]["vec"])) > 0.8


def test_limit_faces_keeps_the_largest(api: str) -> None:
    photo = GROUP_PHOTOS["t1.jpg"].read_bytes()
    (all_faces,) = extract(api, [photo]).json()
    (two,) = extract(api, [photo], limit_faces=2).json()
    areas = sorted(((b[2] - b[0]) * (b[3] - b[1]) for b in (f["bbox"] for f in all_faces)), reverse=True)
    assert len(two) == 2
    assert (
        sorted(((b[2] - b[0]) * (b[3] - b[1]) for b in (f["bbox"] for f in two)), reverse=True) == areas[:2]
    )
    (none_small,) = extract(api, [photo], min_face_size=10_000).json()
    assert none_small == []


def test_flip_gives_each_face_the_mean_of_its_crop_and_its_mirror(api: str) -> None:
    """Same faces, boxes and scores; vectors that differ from the plain ones but still match them
    (the mirror image of a face is the same person)."""
    photo = GROUP_PHOTOS["t1.jpg"].read_bytes()
    plain, flipped = (extract(api, [photo], flip=flip).json()[0] for flip in (False, True))
    assert len(flipped) == len(plain) == FACES_IN["t1.jpg"]
    assert [face["bbox"] for face in flipped] == [face["bbox"] for face in plain]
    cosines = np.sum(vectors(plain) * vectors(flipped), axis=1)
    assert np.all((cosines > 0.9) & (cosines < 0.9999)), cosines


def test_misspelt_options_are_ignored_and_named_in_the_warnings(api: str) -> None:
    body = {
        "images": {"data": [file2base64(GROUP_PHOTOS["yaoming.jpg"])]},
        "api_ver": "2",
        "extract_embedding": False,
        "treshold": 0.99,
        "return_landmark": True,
    }
    response = requests.post(f"{api}/extract", json=body, timeout=60)
    assert response.status_code == 200
    answer = response.json()
    assert len(answer["data"][0]["faces"]) == FACES_IN["yaoming.jpg"]  # threshold stayed 0.5
    expected = (
        "unknown fields ignored: return_landmark (did you mean return_landmarks?), "
        "treshold (did you mean threshold?)"
    )
    assert answer["warnings"] == [expected]
    assert response.headers["X-Facerest-Warning"] == expected
