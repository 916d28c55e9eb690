"""Mirror-augmented embeddings ("flip"): same-person similarities rise, different-person ones do
not, a mirrored photo gives the same vectors, and FACEREST_FLIP sets the default."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from shared.contract import AnalysisOptions
from shared.settings import load_settings
from testkit.flip import similarities, vectors
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from worker.analyzer import FaceAnalyzer
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.models.postprocess import box_iou

pytestmark = pytest.mark.slow
SETTINGS = {"profile": "insightface", "detectors": "scrfd", "recognizer": "arcface", "attributes": ""}


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FaceAnalyzer]:
    built = load_analyzer(load_settings(**SETTINGS), Device("cpu"))
    yield built
    built.close()


def test_flip_raises_same_person_similarity_and_not_different_people(analyzer: FaceAnalyzer) -> None:
    """t1.jpg's six faces against altered copies of the photo (rotated, half size, JPEG 15,
    darker), and every pair of different people in t1.jpg, gdp.jpg and players.jpg."""
    plain, flipped = similarities(analyzer, flip=False), similarities(analyzer, flip=True)
    assert flipped.same.mean() > plain.same.mean()
    assert flipped.same.min() > plain.same.min() - 0.02
    assert flipped.different.mean() <= plain.different.mean() + 0.005
    assert flipped.different.max() < 0.4


def test_flip_brings_a_mirrored_photo_s_vectors_closer(analyzer: FaceAnalyzer) -> None:
    """Each face's vector and its mirror image's: one vector from both halves the difference
    (what is left comes from the detector's keypoints on the mirrored pixels)."""
    rgb = read_rgb(GROUP_PHOTOS["t1.jpg"])
    photos = [encode(rgb), encode(np.ascontiguousarray(rgb[:, ::-1]))]
    width = rgb.shape[1]
    cosines = {}
    for flip in (False, True):
        original, mirrored = analyzer.analyze(photos, AnalysisOptions(flip=flip))
        boxes = np.array(
            [[width - f.bbox[2], f.bbox[1], width - f.bbox[0], f.bbox[3]] for f in mirrored.faces]
        )
        match = box_iou(np.array([f.bbox for f in original.faces]), boxes).argmax(axis=1)
        cosines[flip] = np.sum(vectors(original) * vectors(mirrored)[match], axis=1)
    assert np.all(cosines[True] > cosines[False]), cosines
    assert cosines[True].min() > 0.95, cosines


def test_flip_setting_is_the_default_a_request_can_override(analyzer: FaceAnalyzer) -> None:
    photo = GROUP_PHOTOS["gdp.jpg"].read_bytes()
    flipping = load_analyzer(load_settings(**SETTINGS, flip=True), Device("cpu"))
    try:
        (by_default,) = flipping.analyze([photo], AnalysisOptions())
        (turned_off,) = flipping.analyze([photo], AnalysisOptions(flip=False))
    finally:
        flipping.close()
    (asked,) = analyzer.analyze([photo], AnalysisOptions(flip=True))
    (plain,) = analyzer.analyze([photo], AnalysisOptions())
    np.testing.assert_allclose(vectors(by_default), vectors(asked), atol=1e-6)
    np.testing.assert_allclose(vectors(turned_off), vectors(plain), atol=1e-6)
    assert not np.allclose(vectors(asked), vectors(plain), atol=1e-3)
