"""Detector choice, gender/age, 106 landmarks and the permissive profile through the real API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from deploy.launcher import Stack, running_system
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from tests.client import extract, vectors
from tests.faces import FACES_IN
from worker.inference.registry import ARCFACE_MBF, RETINAFACE_MNET, SFACE, all_entries
from worker.models.postprocess import box_iou


def _boxes(faces: list[dict[str, Any]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([face["bbox"] for face in faces], dtype=np.float64).reshape(-1, 4)


def _faces(api: str, photo: bytes, **options: Any) -> dict[str, Any]:
    response = extract(api, [photo], api_ver="2", **options)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("detector", ["retinaface", "mtcnn"])
def test_request_chooses_the_detector_and_it_finds_scrfds_faces(api: str, detector: str) -> None:
    photo = GROUP_PHOTOS["gdp.jpg"].read_bytes()
    reference = _faces(api, photo, max_size=0)
    chosen = _faces(api, photo, max_size=0, detector=detector)
    assert reference["detector"]["key"] == "scrfd"
    assert chosen["detector"]["key"] == detector
    assert chosen["recognizer"] == reference["recognizer"]
    (expected,) = (image["faces"] for image in reference["data"])
    (found,) = (image["faces"] for image in chosen["data"])
    # Clear faces only: at the default threshold (0.5) SCRFD also reports a 0.5-scored blur that
    # another detector need not share.
    large = [face for face in expected if face["size"] >= 30 and face["prob"] >= 0.6]
    assert len(large) >= 3
    iou = box_iou(_boxes(large), _boxes(found))
    assert np.all(iou.max(axis=1) >= 0.7), iou
    matched = [found[i] for i in iou.argmax(axis=1)]
    cosine = np.sum(vectors(large) * vectors(matched), axis=1)
    assert np.all(cosine >= 0.9), cosine


def test_gender_age_and_106_landmarks_on_request(api: str) -> None:
    photo = GROUP_PHOTOS["t1.jpg"].read_bytes()
    plain = _faces(api, photo)["data"][0]["faces"]
    assert not {"gender", "age", "landmarks106"} & set(plain[0])
    body = _faces(api, photo, extract_ga=True, return_landmarks="106")
    faces = body["data"][0]["faces"]
    assert len(faces) == len(plain) == FACES_IN["t1.jpg"]
    for face in faces:
        assert face["gender"] in {"female", "male"}
        assert 0.5 <= face["gender_score"] <= 1.0
        assert 1 <= face["age"] <= 80
        assert len(face["landmarks"]) == 5
        dense = np.array(face["landmarks106"])
        assert dense.shape == (106, 2)
        # The dense points cover the face: their centre is inside the box, their spread near its size.
        x1, y1, x2, y2 = face["bbox"]
        cx, cy = dense.mean(axis=0)
        assert x1 < cx < x2 and y1 < cy < y2
        assert 0.6 < (dense[:, 0].max() - dense[:, 0].min()) / (x2 - x1) < 1.4
    # The legacy format carries gender and age too, and the 5 keypoints only.
    (legacy,) = extract(api, [photo], extract_ga=True, return_landmarks=True).json()
    assert [f["gender"] for f in legacy] == [f["gender"] for f in faces]
    assert all(len(f["landmarks"]) == 5 and "landmarks106" not in f for f in legacy)


def test_info_names_the_recognizer_the_detectors_and_each_license(api: str) -> None:
    info = requests.get(f"{api}/info", timeout=10).json()
    assert info["detectors"] == ["scrfd", "retinaface", "mtcnn"]
    assert info["attributes"] == ["genderage", "landmarks106"]
    (recognizer,) = info["recognizers"]
    assert recognizer["name"] == ARCFACE_MBF.name and recognizer["version"] == ARCFACE_MBF.version
    assert recognizer["dimension"] == 512
    registered = {spec.name: spec for entry in all_entries() for spec in entry.specs}
    for model in info["models"]["loaded"]:
        spec = registered[model["name"]]
        assert model["license"] == spec.license and model["commercial_use"] == spec.commercial_use


@pytest.fixture(scope="module")
def permissive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_system(Path(tmp_path_factory.mktemp("permissive")), profile="permissive") as running:
        yield running


def test_permissive_profile_serves_extract_end_to_end(permissive: Stack) -> None:
    api = permissive.api_url
    info = requests.get(f"{api}/info", timeout=10).json()
    assert info["detectors"] == ["retinaface"]
    assert {model["name"] for model in info["models"]["loaded"]} >= {RETINAFACE_MNET.name, SFACE.name}
    assert all(model["commercial_use"] for model in info["models"]["loaded"])

    rgb = read_rgb(GROUP_PHOTOS["t1.jpg"])
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    response = extract(api, [encode(rgb), encode(mirrored)], api_ver="2", extract_ga=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["recognizer"]["key"] == "sface" and body["recognizer"]["name"] == SFACE.name
    assert body["detector"]["key"] == "retinaface"
    original, flipped = (image["faces"] for image in body["data"])
    assert len(original) == FACES_IN["t1.jpg"]
    assert all(len(face["vec"]) == 128 and "age" in face and "gender" in face for face in original)
    # Each face's vector is nearer to its own mirror image than to anyone else's.
    width = rgb.shape[1]
    mirrored_boxes = _boxes(original)[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [width, 0, width, 0]
    match = box_iou(mirrored_boxes, _boxes(flipped)).argmax(axis=1)
    similarity = vectors(original) @ vectors(flipped).T
    assert np.array_equal(similarity.argmax(axis=1), match), similarity


def test_a_model_no_worker_loaded_is_a_clear_400(permissive: Stack) -> None:
    photo = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
    response = extract(permissive.api_url, [photo], detector="scrfd")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "model_not_loaded"
    assert "scrfd" in body["message"] and "retinaface" in body["message"]
    assert body["available"] == ["retinaface"]
    dense = extract(permissive.api_url, [photo], return_landmarks="106")
    assert dense.status_code == 400 and "landmarks106" in dense.json()["message"]
