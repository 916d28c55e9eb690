"""FaceAnalyzer: what a task calls. Checks a job's options against the loaded models once, runs
the pipeline and returns the wire records with the models that made them."""

from __future__ import annotations

from collections.abc import Sequence

from shared.availability import check_models
from shared.contract import AnalysisOptions, ImageResult
from shared.memory import trim_heap
from worker.analysis import Analysis
from worker.batched import BatchedModels
from worker.imaging.decode import RGBImage
from worker.models.base import LoadedModels
from worker.pipeline import AnalyzedImage, Pipeline
from worker.records import image_result

# A job with an image this large (full size) trims the heap after it (bench/memory.py: 8 jobs
# at once of 36 MP left the worker 240-310 MiB above its baseline without, 4-6 MiB with).
TRIM_AFTER_PIXELS = 3840 * 2160


class FaceAnalyzer:
    """Holds the loaded models; every per-request choice comes in as an argument."""

    def __init__(self, models: BatchedModels, max_pixels: int, flip: bool = False) -> None:
        self.models = models
        self._pipeline = Pipeline(models, max_pixels, flip)

    @property
    def loaded(self) -> LoadedModels:
        return self.models.loaded

    def close(self) -> None:
        self.models.close()

    def run(self, images: Sequence[bytes], options: AnalysisOptions, request_id: str = "") -> Analysis:
        """One result per image, in order, with the models that made them; a bad image fails
        alone (``request_id`` names the request in an internal error's message).

        Raises ModelNotLoaded (for the whole job) when the options need a model not loaded here:
        the API's check (shared/availability.py), run once per job against this worker's models,
        as the job may have been queued while no worker was online.
        """
        check_models(options, list(self.loaded.detectors), self.loaded.attribute_keys())
        detector = options.detector or next(iter(self.loaded.detectors))
        with self.models.job():
            outcomes = self._pipeline.run(images, options, detector, request_id)
        if any(isinstance(o, AnalyzedImage) and o.width * o.height > TRIM_AFTER_PIXELS for o in outcomes):
            trim_heap()
        return Analysis(
            [image_result(outcome, options) for outcome in outcomes],
            self.loaded.detectors[detector].spec.to_ref(),
            self.loaded.recognizer.spec.to_ref(),
        )

    def run_frames(
        self, frames: Sequence[RGBImage], options: AnalysisOptions, request_id: str = ""
    ) -> list[ImageResult]:
        """``run`` for a video's decoded, upright frames: one result per frame, in order."""
        check_models(options, list(self.loaded.detectors), self.loaded.attribute_keys())
        detector = options.detector or next(iter(self.loaded.detectors))
        with self.models.job():
            outcomes = self._pipeline.run_frames(frames, options, detector, request_id)
        return [image_result(outcome, options) for outcome in outcomes]

    def analyze(
        self, images: Sequence[bytes], options: AnalysisOptions, request_id: str = ""
    ) -> list[ImageResult]:
        """``run``'s images alone (tests and benchmarks)."""
        return self.run(images, options, request_id).images
