"""Failures stay per image: an unexpected exception in a decoder or a model fails its image only,
as an internal_error naming the request, with the traceback in the worker log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from shared.contract import AnalysisOptions
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS, encode
from tests.faces import FACES_IN
from worker import pipeline
from worker.analyzer import FaceAnalyzer
from worker.batched import BatchedModels
from worker.imaging.decode import DecodedImage, ScaleRule, decode_image
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.models.base import Detections

PHOTO = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
FACES = FACES_IN["yaoming.jpg"]
# A grey picture: no face, and easy to tell from the photo in a stand-in.
GREY = encode(np.full((240, 320, 3), 128, np.uint8))
EXPECTED = "internal error on this image; request id req-42"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FaceAnalyzer]:
    built = load_analyzer(
        load_settings(profile="insightface", detectors="scrfd", recognizer="arcface"), Device("cpu")
    )
    yield built
    built.close()


def test_detector_exception_fails_its_image_alone(
    analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = BatchedModels.detect

    def detect(
        self: BatchedModels, detector: str, canvases: Sequence[NDArray[np.uint8]], threshold: float
    ) -> list[Detections]:
        if np.all((canvases[0] == 128) | (canvases[0] == 0)):  # the grey picture on its letterbox
            raise RuntimeError("ONNXRuntimeError: secret library detail")
        return real(self, detector, canvases, threshold)

    monkeypatch.setattr(BatchedModels, "detect", detect)
    bad, good = analyzer.analyze([GREY, PHOTO], AnalysisOptions(), "req-42")
    assert bad.status == "error" and bad.error is not None
    assert (bad.error.code, bad.error.message) == ("internal_error", EXPECTED)
    assert good.status == "ok" and len(good.faces) == FACES
    assert any("secret library detail" in (r.exc_text or "") for r in caplog.records)


def test_decoder_exception_fails_its_image_alone(
    analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = decode_image

    def decode(data: bytes, max_pixels: int, min_scale: ScaleRule | None = None) -> DecodedImage:
        if data == GREY:
            raise MemoryError("numpy could not allocate")
        return real(data, max_pixels, min_scale)

    monkeypatch.setattr(pipeline, "decode_image", decode)
    bad, good = analyzer.analyze([GREY, PHOTO], AnalysisOptions(), "req-42")
    assert bad.error is not None and (bad.error.code, bad.error.message) == ("internal_error", EXPECTED)
    assert good.status == "ok" and len(good.faces) == FACES


def test_embedding_failure_fails_the_images_with_faces_not_the_job(
    analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def embed(self: BatchedModels, crops: Sequence[NDArray[np.uint8]]) -> list[NDArray[np.float32]]:
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(BatchedModels, "embed", embed)
    with_faces, without = analyzer.analyze([PHOTO, GREY], AnalysisOptions(), "req-42")
    assert with_faces.error is not None
    assert (with_faces.error.code, with_faces.error.message) == ("internal_error", EXPECTED)
    assert without.status == "ok" and without.faces == ()
