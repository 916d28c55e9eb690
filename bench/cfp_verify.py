"""CFP frontal-profile (FP) and frontal-frontal (FF) 10-fold verification: the service's pipeline
against the plain insightface 0.7.3 reference, on every photo, with the photos where no face was
found and where the two part ways.

    python -m bench.cfp_verify [--root /work/data/cfp] [--cache /work/data/cfp_cache]
        [--variants service ref-native ref-640] [--base service --larger-than 320]
        [--pick largest|score|central] [--missing zero|error|leave-out]

CFP is rebuilt by bench/cfp.py (``python -m bench.cfp <DR-GAN mirror> --out /work/data/cfp``).
Variants (each photo once, the results cached per variant under --cache, so that a later run,
or another variant's comparison, costs nothing):

- ``service``: the worker's pipeline in-process (decode, detect with the coarse passes, align,
  embed), default request options, SCRFD-500M + ArcFace w600k_mbf (the insightface profile);
- ``ref-native``: insightface 0.7.3's SCRFD + ArcFaceONNX with the same files, as FaceAnalysis
  runs them (BGR from cv2.imread, norm_crop), detecting on the photo at its own scale (padded
  to the stride, no resizing);
- ``ref-640``: the same with FaceAnalysis's default det_size 640x640 (small photos upscaled).

Every face of a photo is kept with its embedding (and the mirror image's: ``flip`` is the
normalised sum). The pair score is the cosine similarity of one face per photo (by default the
largest; ``--pick score`` / ``central`` for the others), 0 where a photo has none; accuracy is
CFP's 10 folds, each judged at the threshold that is best on the other nine (the standard
protocol). ``--only`` runs the listed photo indices (Pair_list_F then Pair_list_P, 0-based)
again and keeps the rest from the cache: for trying a change on the photos it touches.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from bench.cfp_detection import _best_threshold, load_list, load_pairs
from shared.contract import AnalysisOptions
from shared.settings import load_settings
from worker.analyzer import FaceAnalyzer
from worker.inference.files import locate
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.pipeline import AnalyzedImage, Pipeline

MAX_IMAGE_PIXELS = 40_000_000
CHUNK = 16  # photos per pipeline run: the models batch across them
THRESHOLD = 0.5  # both sides' default
Pick = Literal["largest", "score", "central"]
# A pair with a photo without a face: similarity 0 (this bench's way), an error whatever the
# threshold, or left out of the protocol (as the issue's figures were counted, docs/accuracy.md).
Missing = Literal["zero", "error", "leave-out"]


@dataclass(frozen=True, slots=True)
class PhotoFaces:
    """Every face found in one photo, in the order the detector returned them."""

    width: int
    height: int
    boxes: NDArray[np.float32]  # (n, 4) full-size px
    scores: NDArray[np.float32]  # (n,)
    keypoints: NDArray[np.float32]  # (n, 5, 2)
    vectors: NDArray[np.float32]  # (n, 512) normalised
    flipped: NDArray[np.float32]  # (n, 512) normalised sum of the crop's and its mirror's


def _unit_rows(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    unit: NDArray[np.float32] = (vectors / norms).astype(np.float32)
    return unit


def _empty(width: int, height: int) -> PhotoFaces:
    return PhotoFaces(
        width, height, np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
        np.zeros((0, 5, 2), np.float32), np.zeros((0, 512), np.float32), np.zeros((0, 512), np.float32),
    )  # fmt: skip


Runner = Callable[[Sequence[Path]], list[PhotoFaces]]


def service_runner(analyzer: FaceAnalyzer, options: AnalysisOptions) -> Runner:
    models = analyzer.models
    pipeline = Pipeline(models, MAX_IMAGE_PIXELS)

    def run(paths: Sequence[Path]) -> list[PhotoFaces]:
        with models.job():
            outcomes = pipeline.run([path.read_bytes() for path in paths], options, "scrfd")
        results = []
        for path, outcome in zip(paths, outcomes, strict=True):
            assert isinstance(outcome, AnalyzedImage), path
            if not outcome.faces:
                results.append(_empty(outcome.width, outcome.height))
                continue
            crops = [face.crop for face in outcome.faces if face.crop is not None]
            plain = np.stack([face.embedding for face in outcome.faces if face.embedding is not None])
            mirrors = np.stack(models.embed([np.ascontiguousarray(crop[:, ::-1]) for crop in crops]))
            results.append(
                PhotoFaces(
                    outcome.width,
                    outcome.height,
                    np.stack([face.box for face in outcome.faces]),
                    np.array([face.score for face in outcome.faces], np.float32),
                    np.stack([face.keypoints for face in outcome.faces]),
                    _unit_rows(plain),
                    _unit_rows(plain + mirrors),
                )
            )
        return results

    return run


def reference_runner(size: tuple[int, int] | None) -> Runner:
    """insightface 0.7.3 as FaceAnalysis runs it; ``size`` None: the photo's own scale."""
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD
    from insightface.utils import face_align

    detector = SCRFD(model_file=str(locate(SCRFD_500M)))
    detector.prepare(-1, input_size=size or (640, 640), det_thresh=THRESHOLD)
    recognizer = ArcFaceONNX(model_file=str(locate(ARCFACE_MBF)))
    recognizer.prepare(-1)

    def one(path: Path) -> PhotoFaces:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert image is not None, path
        height, width = image.shape[:2]
        if size is None:
            # Padded at the right and bottom to the stride: insightface then detects at scale 1.
            padded = np.zeros((-(-height // 32) * 32, -(-width // 32) * 32, 3), np.uint8)
            padded[:height, :width] = image
            boxes, keypoints = detector.detect(padded, input_size=(padded.shape[1], padded.shape[0]))
        else:
            boxes, keypoints = detector.detect(image, input_size=size)
        if not len(boxes):
            return _empty(width, height)
        crops = [face_align.norm_crop(image, landmark=points) for points in keypoints]
        plain = np.asarray(recognizer.get_feat(crops), np.float32)
        mirrors = np.asarray(recognizer.get_feat([crop[:, ::-1] for crop in crops]), np.float32)
        return PhotoFaces(
            width, height, boxes[:, :4].astype(np.float32), boxes[:, 4].astype(np.float32),
            keypoints.astype(np.float32), _unit_rows(plain), _unit_rows(plain + mirrors),
        )  # fmt: skip

    def run(paths: Sequence[Path]) -> list[PhotoFaces]:
        return [one(path) for path in paths]

    return run


def variant_runner(name: str) -> Runner:
    """A variant by its name: ``service...`` (any suffix: a cache of its own), ``ref-native``
    or ``ref-640``."""
    if name.startswith("service"):
        settings = load_settings(
            profile="insightface", detectors="scrfd", recognizer="arcface", attributes=""
        )
        return service_runner(load_analyzer(settings, Device("cpu")), AnalysisOptions(threshold=THRESHOLD))
    return reference_runner(None if name == "ref-native" else (640, 640))


def pick_face(photo: PhotoFaces, pick: Pick) -> int:
    """The index of the face that stands for the photo (CFP photos show one person)."""
    boxes = photo.boxes
    if pick == "score":
        return int(photo.scores.argmax())
    if pick == "central":
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        return int(np.linalg.norm(centres - np.array([photo.width, photo.height]) / 2, axis=1).argmin())
    return int(((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).argmax())


def chosen_vectors(photos: Sequence[PhotoFaces], pick: Pick, flip: bool) -> NDArray[np.float32]:
    vectors = np.zeros((len(photos), 512), np.float32)
    for index, photo in enumerate(photos):
        if len(photo.scores):
            vectors[index] = (photo.flipped if flip else photo.vectors)[pick_face(photo, pick)]
    return vectors


def verification_accuracy(
    folds: list[list[tuple[int, int, bool]]],
    first: NDArray[np.float32],
    second: NDArray[np.float32],
    missing: Missing,
) -> tuple[float, float]:
    """Mean and standard deviation over the 10 folds, each judged at the threshold that is best
    on the other nine; a photo without a face has a zero vector."""
    scored = []
    for pairs in folds:
        scores = np.array([float(first[a] @ second[b]) for a, b, _ in pairs])
        same = np.array([same for *_, same in pairs])
        found = np.array([bool(first[a].any() and second[b].any()) for a, b, _ in pairs])
        scored.append((scores, same, found))
    accuracies = []
    for held_out, (scores, same, found) in enumerate(scored):
        others = [fold for index, fold in enumerate(scored) if index != held_out]
        kept = [np.ones_like(f) if missing == "zero" else f for _, _, f in others]
        best = _best_threshold(
            np.concatenate([s[k] for (s, _, _), k in zip(others, kept, strict=True)]),
            np.concatenate([t[k] for (_, t, _), k in zip(others, kept, strict=True)]),
        )
        right = (scores >= best) == same
        if missing == "error":
            right &= found
        elif missing == "leave-out":
            right = right[found]
        accuracies.append(float(right.mean()))
    return float(np.mean(accuracies)), float(np.std(accuracies))


def run_cached(
    name: str, runner: Runner, paths: Sequence[Path], cache: Path, only: set[int], base: Sequence[str]
) -> list[PhotoFaces]:
    """Every photo's faces, from the variant's cache where it has them (delete the file to run
    again); ``only``: run just these photos, and take the others from the variants ``base`` (the
    first that has them)."""
    file = cache / f"{name}.pkl"
    stored: dict[str, PhotoFaces] = pickle.loads(file.read_bytes()) if file.exists() else {}
    todo = [i for i, path in enumerate(paths) if str(path) not in stored and (i in only or not only)]
    start = time.perf_counter()
    for begin in range(0, len(todo), CHUNK):
        chunk = todo[begin : begin + CHUNK]
        for index, faces in zip(chunk, runner([paths[i] for i in chunk]), strict=True):
            stored[str(paths[index])] = faces
        if begin % (CHUNK * 50) == 0:
            print(f"  {name}: {begin + len(chunk)}/{len(todo)} photos", flush=True)
    if todo:
        print(f"  {name}: {len(todo)} photos in {time.perf_counter() - start:.0f} s", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        file.write_bytes(pickle.dumps(stored))
    for other in base:
        stored = pickle.loads((cache / f"{other}.pkl").read_bytes()) | stored
    return [stored[str(path)] for path in paths]


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path("/work/data/cfp"))
    parser.add_argument("--cache", type=Path, default=Path("/work/data/cfp_cache"))
    parser.add_argument("--variants", nargs="+", default=["service", "ref-native"])
    parser.add_argument("--pick", choices=["largest", "score", "central"], default="largest")
    parser.add_argument("--missing", choices=["zero", "error", "leave-out"], default="zero")
    parser.add_argument("--only", default="", help="photo indices to run again, comma-separated")
    parser.add_argument(
        "--base", nargs="*", default=[], help="variants whose caches fill in the photos --only leaves out"
    )
    parser.add_argument(
        "--larger-than", type=int, default=0, help="run again the photos with a longer side than this"
    )
    args = parser.parse_args()
    frontal, profile = load_list(args.root, "F", 500), load_list(args.root, "P", 500)
    paths = [photo.path for photo in (*frontal, *profile)]
    folds = {p: load_pairs(args.root, p, 500, {"F": 10, "P": 4}) for p in ("FF", "FP")}
    only = {int(v) for v in args.only.split(",") if v}
    if args.larger_than:
        only |= {i for i, path in enumerate(paths) if max(_size(path)) > args.larger_than}
    report: dict[str, dict[str, float]] = {}
    for name in args.variants:
        photos = run_cached(name, variant_runner(name), paths, args.cache, only, args.base)
        row: dict[str, float] = {
            "no_face_frontal": sum(not len(p.scores) for p in photos[: len(frontal)]),
            "no_face_profile": sum(not len(p.scores) for p in photos[len(frontal) :]),
            "several_faces": sum(len(p.scores) > 1 for p in photos),
        }
        for flip in (False, True):
            vectors = chosen_vectors(photos, args.pick, flip)
            front, side = vectors[: len(frontal)], vectors[len(frontal) :]
            for protocol, fold in folds.items():
                second = front if protocol == "FF" else side
                mean, std = verification_accuracy(fold, front, second, args.missing)
                label = f"{protocol}{'_flip' if flip else ''}"
                row[label], row[f"{label}_std"] = mean, std
        report[name] = row
        print(name, json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
    print(f"\n| variant (pick {args.pick}, no face: {args.missing}) | FP | FP flip | FF | FF flip ", end="")
    print("| no face: frontal, profile |")
    print("|---|---|---|---|---|---|")
    for name, r in report.items():
        print(
            f"| {name} | {r['FP']:.2%} | {r['FP_flip']:.2%} | {r['FF']:.2%} | {r['FF_flip']:.2%} "
            f"| {int(r['no_face_frontal'])}, {int(r['no_face_profile'])} |"
        )


if __name__ == "__main__":
    main()
