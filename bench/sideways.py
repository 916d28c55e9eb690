"""Photos turned on their side or upside down, with no EXIF orientation to undo it: how many of
their faces the pipeline finds, and what reading them turned upright costs.

    python -m bench.sideways [--rounds 5]

A phone photo whose EXIF orientation was stripped (or a scan fed in sideways) reaches the
detector turned a quarter or a half. SCRFD then finds a few of its faces, lying; the pipeline
turns the photo upright and detects it again where most faces found lie the same way and leave
room for more (worker/pipeline.py: ``_find_faces``). For each package photo with faces
(testkit/photos.py: ``GROUP_PHOTOS``) turned 0, 1, 2 and 3 quarters counter-clockwise (np.rot90,
JPEG-encoded again), this prints:

- the faces SCRFD finds on the photo as it is (one pass over the letterboxed photo, the
  reference's way), and the faces the pipeline returns;
- how many of the pipeline's faces are the upright photo's: the same face's embedding at
  cosine 0.5 or more (far above ArcFace's different-person range);
- the pipeline's detection time (``detect_ms``, median of ``--rounds``): an upright photo takes
  the same path as before, a turned one that triggers pays for one more set of passes.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from numpy.typing import NDArray

from shared.contract import AnalysisOptions
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from worker.imaging.resize import letterbox
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.pipeline import AnalyzedImage, Pipeline

DETECTOR = "scrfd"
OPTIONS = AnalysisOptions(verbose_timings=True)
MAX_IMAGE_PIXELS = 40_000_000
SAME_FACE = 0.5


def _embeddings(outcome: AnalyzedImage) -> NDArray[np.float32]:
    vectors = [face.embedding for face in outcome.faces if face.embedding is not None]
    if not vectors:
        return np.zeros((0, 512), np.float32)
    stacked = np.stack(vectors).astype(np.float32)
    unit: NDArray[np.float32] = stacked / np.linalg.norm(stacked, axis=1, keepdims=True)
    return unit


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per photo and turn")
    args = parser.parse_args()
    settings = load_settings(profile="insightface", detectors=DETECTOR, recognizer="arcface", attributes="")
    analyzer = load_analyzer(settings, Device("cpu"))
    models = analyzer.models
    pipeline = Pipeline(models, MAX_IMAGE_PIXELS)
    print(
        "| photo | quarter turns | faces upright | SCRFD on it as it is | the pipeline "
        "| of them the upright photo's | detect ms (median) |"
    )
    print("|---|---|---|---|---|---|---|")
    with models.job():
        for name, path in GROUP_PHOTOS.items():
            photo = read_rgb(path)
            upright: NDArray[np.float32] | None = None
            for quarters in range(4):
                image = np.ascontiguousarray(np.rot90(photo, quarters))
                data = encode(image)
                (as_it_is,) = models.detect(
                    DETECTOR, [letterbox(image, OPTIONS.max_size).canvas], OPTIONS.threshold
                )
                times, outcome = [], None
                for _ in range(args.rounds):
                    (outcome,) = pipeline.run([data], OPTIONS, DETECTOR)
                    assert isinstance(outcome, AnalyzedImage)
                    times.append(outcome.timings["detect_ms"])
                assert isinstance(outcome, AnalyzedImage)
                vectors = _embeddings(outcome)
                if upright is None:
                    upright = vectors
                same = int(((vectors @ upright.T).max(axis=1, initial=-1.0) >= SAME_FACE).sum())
                print(
                    f"| {name} | {quarters} | {len(upright)} | {len(as_it_is)} | {len(outcome.faces)} | "
                    f"{same} | {statistics.median(times):.1f} |"
                )


if __name__ == "__main__":
    main()
