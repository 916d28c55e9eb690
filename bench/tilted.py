"""Small photos of tilted faces, and small photos of no face: what the turned copies and the
upright refinement of lying faces add.

    python -m bench.tilted [--root /work/data/cfp] [--people 30] [--tilts 25 45 60 75 90] [--seed 1]

The pipeline detects a small photo where no face was found upright (at its own scale, then at
twice it) again turned 45 degrees either way (worker/pipeline.py: ``_turned``), and detects a
face whose landmarks lie more than 45 degrees from upright again in its window turned upright
(``_refine``). This bench measures, on crops it builds from CFP and package photos:

- **tilted faces**: the face of each frontal CFP photo of the first ``--people`` (bench/cfp.py
  rebuilds CFP), cut out as a square crop 80 to 300 px wide (never enlarged) around the face
  (1.1 to 1.6 times its box), tilted either way by an angle in each band of ``--tilts``. Found
  upright (the passes before the turns: SCRFD on the letterboxed crop, then at twice its scale)
  against found by the pipeline; for the faces found each way, the keypoints' error against
  the tilted truth (mean px over the face box's side) and how many are usable: the embedding's
  cosine similarity to the same face's in the upright photo at least 0.3 (ArcFace's range for
  the same person);
- **no face**: 50 crops of each package photo without a face (bench/cfp_detection.py), 64 to
  320 px, 1 to 3 times that cut from the photo: detections upright against the pipeline's, and
  the time detection takes on them each way (the turns' cost).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from bench.cfp_detection import NO_FACE_PHOTOS, load_list
from shared.contract import AnalysisOptions
from shared.settings import load_settings
from testkit.photos import encode, package_dir, read_rgb, tilted_crop
from worker.batched import BatchedModels
from worker.imaging.resize import enlarged, letterbox
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.pipeline import AnalyzedImage, Pipeline

DETECTOR = "scrfd"
OPTIONS = AnalysisOptions()
TIMED = AnalysisOptions(verbose_timings=True)
MAX_IMAGE_PIXELS = 40_000_000


@dataclass(frozen=True, slots=True)
class Face:
    """The face of a frontal CFP photo, as the pipeline found it upright."""

    photo: NDArray[np.uint8]
    box: NDArray[np.float32]
    keypoints: NDArray[np.float32]
    embedding: NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Crop:
    image: NDArray[np.uint8]
    keypoints: NDArray[np.float32]  # the face's, in the crop's px (NaN for a faceless crop)
    face: Face | None


def _unit(vector: NDArray[np.float32]) -> NDArray[np.float32]:
    unit: NDArray[np.float32] = vector / max(float(np.linalg.norm(vector)), 1e-12)
    return unit


def frontal_faces(pipeline: Pipeline, root: Path, people: int) -> list[Face]:
    """The largest face of each of the first ``people``'s frontal CFP photos, found upright."""
    faces = []
    for photo in load_list(root, "F", people):
        image = read_rgb(photo.path)
        (outcome,) = pipeline.run([photo.path.read_bytes()], OPTIONS, DETECTOR)
        assert isinstance(outcome, AnalyzedImage)
        found = [f for f in outcome.faces if f.embedding is not None]
        if found:
            face = max(found, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
            assert face.embedding is not None
            faces.append(Face(image, face.box, face.keypoints, _unit(face.embedding)))
    return faces


def tilted(face: Face, rng: np.random.Generator, tilt: tuple[float, float]) -> Crop:
    degrees = float(rng.uniform(*tilt) * rng.choice([-1, 1]))
    margin = float(rng.uniform(1.1, 1.6))
    region = float(max(face.box[2] - face.box[0], face.box[3] - face.box[1])) * margin
    side = min(int(rng.integers(80, 300)), round(region))  # never enlarged: no blur
    image, matrix = tilted_crop(face.photo, face.box, degrees, side, margin)
    keypoints = face.keypoints @ matrix[:, :2].T + matrix[:, 2]
    return Crop(image, keypoints.astype(np.float32), face)


def faceless_crops(rng: np.random.Generator, per_photo: int = 50) -> list[Crop]:
    crops = []
    for package, resource in NO_FACE_PHOTOS:
        photo = read_rgb(package_dir(package) / resource)
        height, width = photo.shape[:2]
        for _ in range(per_photo):
            side = int(rng.integers(64, 320))
            cut_w = min(width, int(side * rng.uniform(1, 3)))
            cut_h = min(height, int(side * rng.uniform(1, 3)))
            x, y = int(rng.integers(0, width - cut_w + 1)), int(rng.integers(0, height - cut_h + 1))
            scale = side / max(cut_w, cut_h)
            size = (max(8, int(cut_w * scale)), max(8, int(cut_h * scale)))
            image = cv2.resize(photo[y : y + cut_h, x : x + cut_w], size, interpolation=cv2.INTER_AREA)
            crops.append(Crop(np.asarray(image, np.uint8), np.full((5, 2), np.nan, np.float32), None))
    return crops


def found_upright(models: BatchedModels, image: NDArray[np.uint8]) -> int:
    """Faces the passes before the turns find: the letterboxed photo, then at twice its scale."""
    boxed = letterbox(image, OPTIONS.max_size)
    (first,) = models.detect(DETECTOR, [boxed.canvas], OPTIONS.threshold)
    if len(first):
        return len(first)
    (again,) = models.detect(DETECTOR, [enlarged(image, boxed, 2).canvas], OPTIONS.threshold)
    return len(again)


@dataclass
class Tally:
    crops: int = 0
    upright: int = 0
    pipeline: int = 0
    # (keypoint error / face side, cosine to the upright photo's face) of the faces found
    upright_quality: list[tuple[float, float]] = field(default_factory=list)
    # Milliseconds per crop: the upright passes' two detector calls, and the pipeline's detection
    upright_ms: list[float] = field(default_factory=list)
    detect_ms: list[float] = field(default_factory=list)
    turned_quality: list[tuple[float, float]] = field(default_factory=list)


def measure(models: BatchedModels, pipeline: Pipeline, crops: Sequence[Crop]) -> Tally:
    tally = Tally()
    for crop in crops:
        tally.crops += 1
        start = time.perf_counter()
        upright = found_upright(models, crop.image)
        tally.upright_ms.append((time.perf_counter() - start) * 1000)
        (outcome,) = pipeline.run([encode(crop.image, ".png")], TIMED, DETECTOR)
        assert isinstance(outcome, AnalyzedImage)
        tally.detect_ms.append(outcome.timings["detect_ms"])
        tally.upright += upright > 0
        tally.pipeline += len(outcome.faces) > 0
        if crop.face is None or not outcome.faces:
            continue
        face = max(outcome.faces, key=lambda f: f.score)
        side = float(max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
        error = float(np.linalg.norm(face.keypoints - crop.keypoints, axis=1).mean()) / side
        similarity = float(_unit(face.embedding) @ crop.face.embedding) if face.embedding is not None else 0.0
        (tally.upright_quality if upright else tally.turned_quality).append((error, similarity))
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path("/work/data/cfp"), help="CFP (bench/cfp.py)")
    parser.add_argument("--people", type=int, default=30, help="CFP's first N people, 10 frontal photos each")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--tilts", type=float, nargs="+", default=[25, 45, 60, 75, 90], help="tilt bands' edges, degrees"
    )
    args = parser.parse_args()
    settings = load_settings(profile="insightface", detectors=DETECTOR, recognizer="arcface", attributes="")
    analyzer = load_analyzer(settings, Device("cpu"))
    models = analyzer.models
    pipeline = Pipeline(models, MAX_IMAGE_PIXELS)
    rng = np.random.default_rng(args.seed)
    bands = list(pairwise(args.tilts))
    with models.job():
        faces = frontal_faces(pipeline, args.root, args.people)
        tallies = {
            f"tilted {low:g}-{high:g} degrees": measure(
                models, pipeline, [tilted(face, rng, (low, high)) for face in faces]
            )
            for low, high in bands
        }
        tallies["no face"] = measure(models, pipeline, faceless_crops(rng))
    print(f"{len(faces)} frontal CFP faces (a crop of each per tilt band); faceless crops of package photos")
    print(
        "| crops | how many | a face found upright | found with the turns | upright: keypoint error "
        "(median), usable (cosine >= 0.3) | only by the turns: keypoint error, usable |"
    )
    print("|---|---|---|---|---|---|")
    for name, tally in tallies.items():
        print(
            f"| {name} | {tally.crops} | {tally.upright} | {tally.pipeline} | "
            f"{_quality(tally.upright_quality)} | {_quality(tally.turned_quality)} |"
        )
    faceless = tallies["no face"]
    print(
        f"detection per faceless crop, median: the upright passes {np.median(faceless.upright_ms):.1f} ms, "
        f"the pipeline with the turns {np.median(faceless.detect_ms):.1f} ms"
    )


def _quality(found: list[tuple[float, float]]) -> str:
    """Median keypoint error over the face's side, and the share of faces whose embedding is
    at least 0.3 from the upright photo's (ArcFace's same-person range)."""
    if not found:
        return "-"
    errors, similarities = np.array(found).T
    return f"{np.median(errors):.3f}, {(similarities >= 0.3).mean():.0%} of {len(found)}"


if __name__ == "__main__":
    main()
