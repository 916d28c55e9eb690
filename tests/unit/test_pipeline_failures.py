"""Failures stay per image: an unexpected exception in a decoder or a model fails its image only,
as an internal_error naming the request, with the traceback in the worker log."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from shared.availability import check_models as shared_check
from shared.contract import AnalysisOptions, ErrorInfo, ExtractJob, ExtractResult, Job, JobResult
from shared.errors import LimitExceeded, ModelNotLoaded
from shared.jobs import Claim
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS, encode
from tests.faces import FACES_IN
from worker import analyzer as analyzer_module
from worker import pipeline
from worker.analyzer import FaceAnalyzer
from worker.batched import BatchedModels
from worker.imaging.decode import DecodedImage, ScaleRule, decode_image
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.models.base import Detections
from worker.tasks import WorkerRuntime

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


class OneJobStore:
    """The job store as a task sees it, holding one job."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.finished: list[JobResult | ErrorInfo] = []

    def load_input(self, job_id: str) -> Job | None:
        return self.job

    def claim(self, job_id: str, worker: str) -> Claim:
        return Claim(True, attempts=1)

    def mark_running(self, job_id: str, worker: str) -> None:
        pass

    def finish(self, job_id: str, outcome: JobResult | ErrorInfo, worker: str = "") -> bool:
        self.finished.append(outcome)
        return True

    def progress_reporter(self, job_id: str, every_s: float = 0.5) -> Callable[[int, int], None]:
        return lambda done, total: None


def test_a_job_checks_its_models_once_and_names_the_ones_that_answered(
    analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[AnalysisOptions] = []

    def check_models(options: AnalysisOptions, detectors: Sequence[str], attributes: Sequence[str]) -> None:
        checked.append(options)
        shared_check(options, detectors, attributes)

    monkeypatch.setattr(analyzer_module, "check_models", check_models)
    store = OneJobStore(ExtractJob([PHOTO], AnalysisOptions(), "req-1"))
    WorkerRuntime("w1", analyzer, store).run_job("j")
    (result,) = store.finished
    assert isinstance(result, ExtractResult) and len(result.images[0].faces) == FACES
    assert (result.detector.key, result.recognizer.key) == ("scrfd", "arcface")
    assert checked == [AnalysisOptions()]


def test_a_detector_not_loaded_fails_the_job_naming_the_loaded_ones(
    analyzer: FaceAnalyzer,
) -> None:
    with pytest.raises(ModelNotLoaded) as refused:
        analyzer.run([PHOTO], AnalysisOptions(detector="mtcnn"))
    assert refused.value.message == "detector 'mtcnn' is not loaded by the workers; available: scrfd"
    assert refused.value.available == ["scrfd"]


def test_a_job_past_max_faces_total_fails_before_any_face_is_embedded(
    analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded: list[int] = []
    real = BatchedModels.embed

    def embed(self: BatchedModels, crops: list[NDArray[np.uint8]]) -> list[NDArray[np.float32]]:
        embedded.append(len(crops))
        return real(self, crops)

    monkeypatch.setattr(BatchedModels, "embed", embed)
    at_most = AnalysisOptions(max_faces_total=2 * FACES - 1)
    with pytest.raises(LimitExceeded) as refused:
        analyzer.analyze([PHOTO, GREY, PHOTO, PHOTO], at_most, "req-42")
    assert refused.value.message.startswith(f"{2 * FACES} faces found in 3 of the request's 4 images")
    assert f"max_faces_per_request={2 * FACES - 1};" in refused.value.message
    assert embedded == []  # refused after the third image's detection
    exactly = analyzer.analyze([PHOTO, PHOTO], AnalysisOptions(max_faces_total=2 * FACES), "req-42")
    assert [len(image.faces) for image in exactly] == [FACES, FACES]
