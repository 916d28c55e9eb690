"""Profile faces: detection threshold 0.5 vs 0.6, the coarse passes and "flip" on CFP.

CFP (Celebrities in Frontal-Profile, Sengupta et al., WACV 2016): 500 people, 10 frontal and 4
profile photos each, with 30 hand-marked fiducial points per photo and a 10-fold frontal-frontal
(FF) and frontal-profile (FP) verification protocol of 7,000 pairs each. Nothing of it is in
this repository: fetch github:zhangjunh/DR-GAN-by-pytorch and rebuild it with
``python -m bench.cfp <mirror or checkout>`` (bench/cfp.py; its --out is this script's --root).

Each photo goes through the worker's pipeline in-process (decode, detect, align, embed) as a
request with default options would, except for the variant's threshold and coarse passes:

- recall: photos where a detected box holds the centre of the marked points and is of their
  size (0.5 to 4 times the width of their bounding box);
- extra faces: other detections per photo (background people included, so an upper bound on
  false positives), and detections in the package photos without faces (skimage, sklearn);
- verification: the largest face of each photo (none found: the pair counts as different),
  cosine similarity, 10-fold accuracy with the threshold chosen on the other nine folds; with
  flip, the mean embedding of the aligned crop and its mirror (the pipeline's ``flip``).

python -m bench.cfp_detection --root /work/data/cfp          # every photo (7,000; about 10 min a variant)
python -m bench.cfp_detection --root /work/data/cfp --people 100
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from shared.contract import AnalysisOptions
from shared.settings import load_settings
from testkit.coarse import main_pass_only
from testkit.photos import package_dir
from worker.analyzer import FaceAnalyzer
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.pipeline import AnalyzedImage, Pipeline

RESULTS = Path(__file__).parent / "results" / "cfp"
MAX_IMAGE_PIXELS = 40_000_000
CHUNK = 16  # photos per pipeline run: the models batch across them
# Package photos with no face in them, for false positives.
NO_FACE_PHOTOS = (
    *(
        ("skimage", f"data/{name}")
        for name in (
            "coffee.png", "chelsea.png", "rocket.jpg", "coins.png", "moon.png", "hubble_deep_field.jpg",
            "page.png", "text.png", "brick.png", "grass.png", "gravel.png", "motorcycle_left.png",
            "motorcycle_right.png", "retina.jpg", "ihc.png", "cell.png", "color.png", "clock_motion.png",
        )
    ),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    threshold: float
    coarse: bool = True


VARIANTS = (Variant("0.6", 0.6), Variant("0.5", 0.5), Variant("0.6-main-pass-only", 0.6, coarse=False))


@dataclass(frozen=True, slots=True)
class Photo:
    path: Path
    points: NDArray[np.float32]  # (30, 2) the marked fiducials, image px


def _folder(root: Path, person: str) -> Path:
    """The DR-GAN copy splits the people into train/ and test/; the original has them at the top."""
    for split in ("", "train", "test"):
        folder = root / "Data" / "Images" / split / person
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"person {person} not under {root / 'Data' / 'Images'}")


def load_list(root: Path, kind: str, people: int) -> list[Photo]:
    """Pair_list_F.txt (frontal) or Pair_list_P.txt (profile), in order, of the first ``people``."""
    photos = []
    for line in (root / "Protocol" / f"Pair_list_{kind}.txt").read_text().split("\n"):
        if not line.strip():
            continue
        _, relative = line.split()
        person, pose, name = Path(relative).parts[-3:]
        if int(person) > people:
            break
        marks = root / "Data" / "Fiducials" / person / pose / name.replace(".jpg", ".txt")
        points = np.loadtxt(marks, delimiter=",", dtype=np.float32).reshape(-1, 2)
        photos.append(Photo(_folder(root, person) / pose / name, points))
    return photos


def load_pairs(
    root: Path, protocol: str, people: int, per_person: dict[str, int]
) -> list[list[tuple[int, int, bool]]]:
    """The 10 folds of FF or FP: (first index, second index, same person), 1-based list indices
    made 0-based; pairs with a photo beyond ``people`` left out."""
    first_list, second_list = ("F", "F") if protocol == "FF" else ("F", "P")
    folds = []
    for fold in range(1, 11):
        pairs = []
        for kind, same in (("same", True), ("diff", False)):
            text = (root / "Protocol" / "Split" / protocol / f"{fold:02d}" / f"{kind}.txt").read_text()
            for line in text.split():
                a, b = (int(v) - 1 for v in line.split(","))
                if a < per_person[first_list] * people and b < per_person[second_list] * people:
                    pairs.append((a, b, same))
        folds.append(pairs)
    return folds


@dataclass
class Found:
    """One variant's results per photo, in list order."""

    recalled: NDArray[np.bool_]
    extra: NDArray[np.int32]
    vectors: NDArray[np.float32]  # the largest face's, normalised; zeros where none
    flipped: NDArray[np.float32]  # the same with flip
    has_face: NDArray[np.bool_]
    seconds: float


def _marked_box(points: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def _matches(boxes: NDArray[np.float32], marked: NDArray[np.float32]) -> NDArray[np.bool_]:
    centre = (marked[:2] + marked[2:]) / 2
    inside = np.all((boxes[:, :2] <= centre) & (centre <= boxes[:, 2:]), axis=1)
    ratio = (boxes[:, 2] - boxes[:, 0]) / max(float(marked[2] - marked[0]), 1.0)
    matched: NDArray[np.bool_] = inside & (ratio >= 0.5) & (ratio <= 4.0)
    return matched


def _unit(vector: NDArray[np.float32]) -> NDArray[np.float32]:
    unit: NDArray[np.float32] = vector / max(float(np.linalg.norm(vector)), 1e-12)
    return unit


def run_variant(analyzer: FaceAnalyzer, variant: Variant, photos: Sequence[Photo]) -> Found:
    models = analyzer.models
    if not variant.coarse:
        models = main_pass_only(models, "scrfd")
    pipeline = Pipeline(models, MAX_IMAGE_PIXELS)
    options = AnalysisOptions(threshold=variant.threshold)
    count = len(photos)
    found = Found(
        np.zeros(count, bool), np.zeros(count, np.int32), np.zeros((count, 512), np.float32),
        np.zeros((count, 512), np.float32), np.zeros(count, bool), 0.0,
    )  # fmt: skip
    start = time.perf_counter()
    for begin in range(0, count, CHUNK):
        chunk = photos[begin : begin + CHUNK]
        with models.job():
            outcomes = pipeline.run([photo.path.read_bytes() for photo in chunk], options, "scrfd")
        largest_crops = []
        for offset, (photo, outcome) in enumerate(zip(chunk, outcomes, strict=True)):
            assert isinstance(outcome, AnalyzedImage), photo.path
            index = begin + offset
            if not outcome.faces:
                continue
            boxes = np.stack([face.box for face in outcome.faces])
            matched = _matches(boxes, _marked_box(photo.points))
            found.recalled[index] = bool(matched.any())
            found.extra[index] = int((~matched).sum())
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            largest = outcome.faces[int(areas.argmax())]
            assert largest.embedding is not None and largest.crop is not None
            found.has_face[index] = True
            found.vectors[index] = _unit(largest.embedding)
            largest_crops.append((index, largest.embedding, largest.crop))
        # flip as the pipeline does it: the mean of the crop's and its mirror's raw embeddings
        mirrors = models.embed([np.ascontiguousarray(crop[:, ::-1]) for _, _, crop in largest_crops])
        for (index, plain, _), mirror in zip(largest_crops, mirrors, strict=True):
            found.flipped[index] = _unit(np.asarray((plain + mirror) / 2, np.float32))
        if begin % 800 == 0:
            print(f"  {variant.name}: {begin + len(chunk)}/{count} photos", flush=True)
    found.seconds = time.perf_counter() - start
    if models is not analyzer.models:
        models.close()
    return found


def verification_accuracy(
    folds: list[list[tuple[int, int, bool]]], first: NDArray[np.float32], second: NDArray[np.float32]
) -> tuple[float, float]:
    """Mean and standard deviation over the 10 folds, each judged with the threshold that is
    best on the other nine. A photo without a face has a zero vector: similarity 0."""
    scored = [
        (np.array([float(first[a] @ second[b]) for a, b, _ in pairs]), np.array([same for *_, same in pairs]))
        for pairs in folds
    ]
    accuracies = []
    for held_out in range(len(scored)):
        scores, same = scored[held_out]
        if not len(scores):  # a fold of people beyond --people
            continue
        best = _best_threshold(
            np.concatenate([s for i, (s, _) in enumerate(scored) if i != held_out]),
            np.concatenate([t for i, (_, t) in enumerate(scored) if i != held_out]),
        )
        accuracies.append(float(((scores >= best) == same).mean()))
    return float(np.mean(accuracies)), float(np.std(accuracies))


def _best_threshold(scores: NDArray[np.floating], same: NDArray[np.bool_]) -> float:
    """The similarity threshold (same person at or above it) that classifies most pairs right."""
    order = np.argsort(scores)
    ranked, ranked_same = scores[order], same[order]
    # Threshold at position i: pairs before it are called different, from it on the same.
    same_before = np.concatenate([[0], np.cumsum(ranked_same)])
    different_before = np.arange(len(ranked) + 1) - same_before
    correct = different_before + (same_before[-1] - same_before)
    best = int(np.argmax(correct))
    return float(ranked[best]) if best < len(ranked) else float("inf")


def no_face_detections(analyzer: FaceAnalyzer, threshold: float) -> int:
    photos = [(package_dir(package) / path).read_bytes() for package, path in NO_FACE_PHOTOS]
    return sum(
        len(r.faces)
        for r in analyzer.analyze(photos, AnalysisOptions(threshold=threshold, extract_embedding=False))
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path("/work/data/cfp"), help="the cfp-dataset folder")
    parser.add_argument("--people", type=int, default=500, help="the first N people (500: all)")
    parser.add_argument(
        "--variants", nargs="+", default=[v.name for v in VARIANTS], choices=[v.name for v in VARIANTS]
    )
    args = parser.parse_args()
    frontal, profile = load_list(args.root, "F", args.people), load_list(args.root, "P", args.people)
    folds = {p: load_pairs(args.root, p, args.people, {"F": 10, "P": 4}) for p in ("FF", "FP")}
    analyzer = load_analyzer(
        load_settings(profile="insightface", detectors="scrfd", recognizer="arcface", attributes=""),
        Device("cpu"),
    )
    print(f"CFP at {args.root}: {len(frontal)} frontal, {len(profile)} profile photos; {platform.machine()}")
    report: dict[str, dict[str, float]] = {}
    for variant in (v for v in VARIANTS if v.name in args.variants):
        front, side = run_variant(analyzer, variant, frontal), run_variant(analyzer, variant, profile)
        row: dict[str, float] = {
            "profile_recall": float(side.recalled.mean()),
            "frontal_recall": float(front.recalled.mean()),
            "profile_no_face": float((~side.has_face).mean()),
            "extra_per_profile_photo": float(side.extra.mean()),
            "extra_per_frontal_photo": float(front.extra.mean()),
            "no_face_photo_detections": no_face_detections(analyzer, variant.threshold)
            if variant.coarse
            else -1,
            "ms_per_photo": 1000 * (front.seconds + side.seconds) / (len(frontal) + len(profile)),
        }
        for protocol, fold in folds.items():
            first = front
            second = front if protocol == "FF" else side
            for label, a, b in (
                ("", first.vectors, second.vectors),
                ("_flip", first.flipped, second.flipped),
            ):
                mean, std = verification_accuracy(fold, a, b)
                row[f"{protocol}{label}"], row[f"{protocol}{label}_std"] = mean, std
        report[variant.name] = row
        print(variant.name, json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
    print(
        "\n| threshold | coarse passes | profile recall | frontal recall | extra faces / profile photo "
        "| detections in 20 no-face photos | CFP-FP acc | CFP-FP flip | CFP-FF acc | CFP-FF flip |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant in (v for v in VARIANTS if v.name in report):
        r = report[variant.name]
        print(
            f"| {variant.threshold} | {'yes' if variant.coarse else 'no'} | {r['profile_recall']:.2%} "
            f"| {r['frontal_recall']:.2%} | {r['extra_per_profile_photo']:.3f} "
            f"| {int(r['no_face_photo_detections']) if r['no_face_photo_detections'] >= 0 else '-'} "
            f"| {r['FP']:.2%} ± {r['FP_std']:.2%} | {r['FP_flip']:.2%} | {r['FF']:.2%} | {r['FF_flip']:.2%} |"
        )
    analyzer.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"cfp-{args.people}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
