"""What a job's work needs of the analyzer (worker/analyzer.py's FaceAnalyzer), as one protocol
for the tasks and the recognition jobs, so a unit test can stand in for the models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.contract import AnalysisOptions, ImageResult, ModelRef


@dataclass(frozen=True, slots=True)
class Analysis:
    """A job's images analysed, in order, and the models that answered them."""

    images: list[ImageResult]
    detector: ModelRef
    recognizer: ModelRef


class Analyzer(Protocol):
    def run(self, images: Sequence[bytes], options: AnalysisOptions, request_id: str = "") -> Analysis:
        """Check once that the options name loaded models (ModelNotLoaded for the whole job),
        then analyse every image; a bad image fails alone."""
        ...
