"""FaceAnalyzer: what a task calls. Checks a job's options against the loaded models once, runs
the pipeline and returns the wire records."""

from __future__ import annotations

from collections.abc import Sequence

from shared.availability import check_models
from shared.contract import AnalysisOptions, ImageResult, ModelRef
from shared.memory import trim_heap
from worker.batched import BatchedModels
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

    def check(self, options: AnalysisOptions) -> str:
        """The detector key for these options, after checking every model they need is loaded
        (the API's check, against this worker's models: the job may have been queued while no
        worker was online)."""
        detectors = list(self.loaded.detectors)
        check_models(options, detectors, self.loaded.attribute_keys())
        return options.detector or detectors[0]

    def models_for(self, options: AnalysisOptions) -> tuple[ModelRef, ModelRef]:
        """The detector and recognizer that answer a job with these options."""
        detector = self.loaded.detectors[self.check(options)]
        return detector.spec.to_ref(), self.loaded.recognizer.spec.to_ref()

    def analyze(
        self, images: Sequence[bytes], options: AnalysisOptions, request_id: str = ""
    ) -> list[ImageResult]:
        """One result per image, in order; a bad image fails alone (``request_id`` names the
        request in an internal error's message).

        Raises ModelNotLoaded (for the whole job) when the options need a model not loaded here.
        """
        detector = self.check(options)
        with self.models.job():
            outcomes = self._pipeline.run(images, options, detector, request_id)
        if any(isinstance(o, AnalyzedImage) and o.width * o.height > TRIM_AFTER_PIXELS for o in outcomes):
            trim_heap()
        return [image_result(outcome, options) for outcome in outcomes]
