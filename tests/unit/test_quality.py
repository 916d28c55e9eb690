"""Face quality (worker/quality.py) on the package photos, through the real pipeline: a blurred or
shrunken copy scores lower, a turned photo's roll is the turn, a mirrored photo's yaw changes sign,
and the pose of the alignment template itself is frontal."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from shared.contract import AnalysisOptions, FaceQuality, ImageResult
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from worker.analyzer import FaceAnalyzer
from worker.imaging.align import ARCFACE_DST
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.quality import pose

pytestmark = pytest.mark.slow
SETTINGS = {"profile": "insightface", "detectors": "scrfd", "recognizer": "arcface", "attributes": ""}
QUALITY = AnalysisOptions(return_quality=True, extract_embedding=False)


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FaceAnalyzer]:
    built = load_analyzer(load_settings(**SETTINGS), Device("cpu"))
    yield built
    built.close()


def _qualities(result: ImageResult) -> list[FaceQuality]:
    assert result.status == "ok" and result.faces
    return [face.quality for face in result.faces if face.quality is not None]


def _largest_first(result: ImageResult) -> list[FaceQuality]:
    faces = sorted(result.faces, key=lambda f: -(f.bbox[2] - f.bbox[0]))
    return [f.quality for f in faces if f.quality is not None]


def test_quality_comes_only_on_request_and_stays_in_range(analyzer: FaceAnalyzer) -> None:
    photo = GROUP_PHOTOS["players.jpg"].read_bytes()
    (plain,) = analyzer.analyze([photo], AnalysisOptions())
    assert all(face.quality is None for face in plain.faces)
    (asked,) = analyzer.analyze([photo], QUALITY)
    qualities = _qualities(asked)
    assert len(qualities) == len(asked.faces) == len(plain.faces)
    assert all(0.0 <= q.quality <= 1.0 and 0.0 <= q.sharpness <= 1.0 for q in qualities)
    # The 13-20 px faces at the back of players.jpg score under the 37-46 px ones in front.
    by_size = sorted(qualities, key=lambda q: q.size)
    assert by_size[0].size < 21 and by_size[-1].size > 36
    assert np.mean([q.quality for q in by_size[:5]]) < np.mean([q.quality for q in by_size[-5:]]) / 2


def test_a_blurred_copy_scores_lower_on_every_face(analyzer: FaceAnalyzer) -> None:
    rgb = read_rgb(GROUP_PHOTOS["t1.jpg"])
    blurred = np.asarray(cv2.GaussianBlur(rgb, (0, 0), 3), np.uint8)
    sharp, soft = analyzer.analyze([encode(rgb), encode(blurred)], QUALITY)
    assert len(sharp.faces) == len(soft.faces) == 6
    before, after = _largest_first(sharp), _largest_first(soft)
    assert min(q.sharpness for q in before) > 0.5
    assert max(q.sharpness for q in after) < 0.2
    assert min(q.quality for q in before) > max(q.quality for q in after) * 2


def test_a_shrunken_copy_scores_lower(analyzer: FaceAnalyzer) -> None:
    rgb = read_rgb(GROUP_PHOTOS["t1.jpg"])
    small = np.asarray(cv2.resize(rgb, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA), np.uint8)
    full, shrunk = analyzer.analyze([encode(rgb), encode(small)], QUALITY)
    assert (
        np.mean([q.quality for q in _qualities(shrunk)]) < np.mean([q.quality for q in _qualities(full)]) / 2
    )
    assert max(q.size for q in _qualities(shrunk)) < 35 < min(q.size for q in _qualities(full))


def test_a_turned_photo_reports_the_turn_as_roll(analyzer: FaceAnalyzer) -> None:
    rgb = read_rgb(GROUP_PHOTOS["yaoming.jpg"])
    height, width = rgb.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), -20, 1.0)  # clockwise on the image
    turned = np.asarray(cv2.warpAffine(rgb, turn, (width, height), borderMode=cv2.BORDER_REFLECT), np.uint8)
    (upright,), (rotated,) = (_qualities(r) for r in analyzer.analyze([encode(rgb), encode(turned)], QUALITY))
    assert rotated.roll - upright.roll == pytest.approx(20, abs=4)
    assert abs(rotated.yaw - upright.yaw) < 8


def test_a_mirrored_photo_turns_the_yaw_the_other_way(analyzer: FaceAnalyzer) -> None:
    rgb = read_rgb(GROUP_PHOTOS["gdp.jpg"])
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    plain, flipped = analyzer.analyze([encode(rgb), encode(mirrored)], QUALITY)
    for face in plain.faces[:3]:
        assert face.quality is not None
        # The same face in the mirrored photo: its box mirrored.
        x = rgb.shape[1] - (face.bbox[0] + face.bbox[2]) / 2
        twin = min(flipped.faces, key=lambda f: abs((f.bbox[0] + f.bbox[2]) / 2 - x))
        assert twin.quality is not None
        # The detector's keypoints on mirrored pixels differ by a pixel or two.
        assert twin.quality.yaw == pytest.approx(-face.quality.yaw, abs=4)
        assert twin.quality.roll == pytest.approx(-face.quality.roll, abs=5)
    # gdp.jpg's third face looks aside: about 49 degrees either way.
    yaws = [abs(f.quality.yaw) for f in plain.faces[:3] if f.quality is not None]
    assert min(yaws) < 5 and max(yaws) > 40


def test_the_alignment_template_is_frontal_and_turning_it_is_roll() -> None:
    assert pose(ARCFACE_DST) == pytest.approx((0.0, 0.0, 0.0), abs=0.5)
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    yaw, pitch, roll = pose((ARCFACE_DST @ rotation.T).astype(np.float32))
    assert (yaw, pitch, roll) == pytest.approx((0.0, 0.0, 30.0), abs=0.5)
    # The nose tip moved half the eye span to the image's right: yaw 45 degrees by the model.
    shifted = ARCFACE_DST.copy()
    shifted[2, 0] += (ARCFACE_DST[1, 0] - ARCFACE_DST[0, 0]) / 2
    assert pose(shifted)[0] == pytest.approx(45, abs=1)
