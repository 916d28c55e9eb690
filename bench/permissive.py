"""The permissively licensed recognizers, alone and fused, on CFP: which one the permissive profile uses.

    python -m bench.cfp /path/to/DR-GAN-by-pytorch          # once: the photos, outside the repo
    python -m bench.permissive [--cfp /work/data/cfp] [--recognizers arcface,sface,dlib] [--cache DIR]
    python -m bench.permissive --timing arcface,sface,dlib   # only the cost per face

Each recognizer runs with its profile's detector (arcface: scrfd; sface and dlib: retinaface) through
FaceAnalyzer.analyze, the worker's own code path, on all 7,000 CFP photos (5,000 frontal, 2,000
profile); the largest face of each photo is its face, and a photo with no face at the default
max_size is tried again at 320 and 160 (bench/calibrate_recognition.py's ``embed_largest_faces``).
Embeddings are cached under --cache, so a second run only redoes the statistics.

Per recognizer (arcface, the insightface profile's, for reference), and per fusion of two
permissively licensed ones (the weighted mean of both cosines: the cosine of the
concatenated vectors, each scaled by the square root of its weight, so a fusion is itself a
vector the gallery searches as it searches any other):
- CFP's own 10-fold protocol, frontal-frontal (FF) and frontal-profile (FP), 7,000 pairs each:
  accuracy with the threshold chosen on the other nine folds (bench/cfp_detection.py's rule);
- on the 4,972 distinct frontal photos, every genuine and impostor pair (docs/calibration.md's
  method, bench/calibrate_recognition.py's ``calibrate``): EER, the threshold at a per-comparison
  FAR of 1e-6 (ArcFace's default: about 1 % per query against 10,000 people) and the TAR there,
  the operating points 1e-3 ... 1e-6, per-query FAR for galleries of 100 and 499 people.

Writes bench/results/permissive.json and prints the tables of docs/calibration.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from numpy.typing import NDArray

from bench.calibrate_recognition import (
    Embedded,
    cached_embeddings,
    calibrate,
    cpu_name,
    distinct,
    equal_error_rate,
    operating_points,
    pair_scores,
    print_operating_points,
)
from bench.cfp import DEFAULT_OUT, Photo, photos
from bench.cfp_detection import load_list, load_pairs, verification_accuracy
from bench.timing import alternating_ms
from shared.contract import AnalysisOptions
from shared.settings import PROFILES, load_settings
from testkit.photos import GROUP_PHOTOS, read_rgb
from worker.imaging.align import warp_to_template
from worker.imaging.resize import letterbox
from worker.inference.registry import DETECTORS, RECOGNIZERS
from worker.inference.session import Device

RESULTS = Path(__file__).parent / "results"
DEFAULT_CACHE = Path("/work/data/permissive-embeddings")
DETECTOR = "retinaface"  # the permissive profile's (shared/settings.py PROFILES)
RETRY_SIZES = (320, 160)
# Weights of the first recognizer in a fusion; the second gets 1 - w.
FUSION_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PEOPLE = 500
# bench/calibrate_recognition.py's defaults: ArcFace's threshold was set at this FAR.
TARGET_FAR = 1e-6
TRIALS = 200_000
REPEATS = 10

CPU = Device("cpu")

FloatArray = NDArray[np.float32]
Folds = list[list[tuple[int, int, bool]]]


@dataclass(frozen=True, slots=True)
class Vectors:
    """One recognizer's unit vectors for every CFP photo, zeros where no face was found."""

    model: str
    by_path: dict[str, FloatArray]
    embedded: Embedded

    def rows(self, paths: Sequence[str], dimension: int) -> FloatArray:
        zero = np.zeros(dimension, np.float32)
        return np.stack([self.by_path.get(path, zero) for path in paths])


def embed_all(cache: Path, recognizer: str, everything: Sequence[Photo], batch: int) -> Vectors:
    sizes = [AnalysisOptions().max_size[0], *RETRY_SIZES]
    # Each with its profile's detector (arcface: scrfd), a recognizer of no profile with the permissive one's.
    detector = next((p.detectors[0] for p in PROFILES.values() if p.recognizer == recognizer), DETECTOR)
    embedded = cached_embeddings(cache, recognizer, detector, everything, sizes, batch)
    by_path = dict(zip(embedded.paths, embedded.vectors, strict=True))
    return Vectors(embedded.model, by_path, embedded)


def fused(first: Vectors, second: Vectors, weight: float) -> Vectors:
    """The concatenation of both unit vectors scaled by sqrt(weight) and sqrt(1 - weight): its dot
    product with another is weight * cos_first + (1 - weight) * cos_second, and it is a unit
    vector. A photo one recognizer has no face for has none here either."""
    by_path = {
        path: np.concatenate([math.sqrt(weight) * vector, math.sqrt(1 - weight) * second.by_path[path]])
        for path, vector in first.by_path.items()
        if path in second.by_path
    }
    model = f"{weight:.2f} x {first.model} + {1 - weight:.2f} x {second.model}"
    embedded = dataclasses.replace(
        first.embedded, model=model, seconds=first.embedded.seconds + second.embedded.seconds
    )
    return Vectors(model, by_path, embedded)


def znorm_weight(first: Vectors, second: Vectors, frontal: Sequence[Photo]) -> float:
    """The weight of ``first`` that sums z-normalised scores: (cos - mean) / sd of each one's
    impostor scores; up to a constant that is weights proportional to 1 / sd."""
    sds = []
    for vectors in (first, second):
        kept = [p for p in frontal if str(p.path) in vectors.by_path]
        matrix = np.stack([vectors.by_path[str(p.path)] for p in kept])
        people = np.array([p.person for p in kept])
        similarity = matrix @ matrix.T
        impostor = similarity[np.triu(people[:, None] != people[None, :], 1)]
        sds.append(float(impostor.std()))
    return (1 / sds[0]) / (1 / sds[0] + 1 / sds[1])


def frontal_set(vectors: Vectors, frontal: Sequence[Photo]) -> Embedded:
    """The distinct frontal photos with a face, grouped by person: calibrate()'s input."""
    kept = [p for p in frontal if str(p.path) in vectors.by_path]
    return dataclasses.replace(
        vectors.embedded,
        model=vectors.model,
        vectors=np.stack([vectors.by_path[str(p.path)] for p in kept]),
        people=np.array([p.person for p in kept], np.intp),
        paths=[str(p.path) for p in kept],
        missed=[str(p.path) for p in frontal if str(p.path) not in vectors.by_path],
    )


def evaluate(
    vectors: Vectors,
    frontal: Sequence[Photo],
    protocol: dict[str, tuple[list[str], list[str], Folds]],
    full: bool,
) -> dict[str, object]:
    """The protocol's accuracies and the frontal set's pair statistics; ``full`` adds
    calibrate()'s per-query FAR and identification (minutes: only for the candidates reported)."""
    dimension = len(next(iter(vectors.by_path.values())))
    row: dict[str, object] = {"model": vectors.model}
    for name, (first, second, folds) in protocol.items():
        mean, sd = verification_accuracy(
            folds, vectors.rows(first, dimension), vectors.rows(second, dimension)
        )
        row[name], row[f"{name}_sd"] = mean, sd
        row[f"{name}_no_face"] = sum(path not in vectors.by_path for path in {*first, *second})
    embedded = frontal_set(vectors, frontal)
    if full:
        stats = calibrate(embedded, TARGET_FAR, TRIALS, REPEATS)
        # The full curve and the accepted pairs are calibration.json's; here the summary.
        return row | {k: v for k, v in stats.items() if k not in ("curve", "accepted_impostors", "missed")}
    scores = pair_scores(embedded.vectors @ embedded.vectors.T, embedded.people)
    threshold = scores.score_at_far(TARGET_FAR)
    return row | {
        "threshold": threshold,
        "far_per_comparison": scores.far(threshold),
        "impostor_pairs_accepted": round(scores.far(threshold) * len(scores.impostor)),
        "impostor_pairs": len(scores.impostor),
        "tar_pairs": scores.tar(threshold),
        "eer": equal_error_rate(scores),
        "operating_points": operating_points(scores),
    }


def cost_per_face(keys: Sequence[str], batch: int) -> dict[str, dict[str, float]]:
    """Median ms per face of each recognizer's embed, alone, on the same aligned package faces
    (RetinaFace's keypoints on the test photos), in batches of ``batch`` and one at a time; the
    recognizers take turns so that the machine's load hits all alike."""
    settings = load_settings(attributes="")
    detector = DETECTORS[DETECTOR].open(settings, CPU)
    models = {key: RECOGNIZERS[key].open(settings, CPU) for key in keys}
    faces = []
    for path in GROUP_PHOTOS.values():
        rgb = read_rgb(path)
        boxed = letterbox(rgb, (640, 640))
        (found,) = detector.detect_batch([boxed.canvas], [0.5])
        faces += [(rgb, points / boxed.scale) for points in found.keypoints]
    crops = {
        key: np.stack([warp_to_template(rgb, p, m.template, m.input_size) for rgb, p in faces[:batch]])
        for key, m in models.items()
    }
    batched = alternating_ms({key: functools.partial(m.embed, crops[key]) for key, m in models.items()})
    single = alternating_ms({key: functools.partial(m.embed, crops[key][:1]) for key, m in models.items()})
    return {
        key: {"batch": batch, "ms_per_face_batched": batched[key] / batch, "ms_per_face_alone": single[key]}
        for key in models
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cfp", type=Path, default=DEFAULT_OUT, help="bench/cfp.py's output")
    parser.add_argument("--recognizers", default="arcface,sface,dlib")
    parser.add_argument("--batch", type=int, default=16, help="photos per analyze call (one job)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--embed-only", action="store_true", help="fill the cache, no statistics")
    parser.add_argument(
        "--timing", default="", help="only time these recognizers per face (e.g. arcface,dlib,sface)"
    )
    parser.add_argument("--people", type=int, default=PEOPLE, help="only the first N people (a quick check)")
    args = parser.parse_args()

    if args.timing:
        costs = cost_per_face(args.timing.split(","), args.batch)
        print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
        for key, cost in costs.items():
            print(
                f"{key}: {cost['ms_per_face_batched']:.1f} ms per face in batches of {args.batch}, "
                f"{cost['ms_per_face_alone']:.1f} ms alone"
            )
        return
    everything = [
        p for p in photos(args.cfp, "frontal") + photos(args.cfp, "profile") if p.person <= args.people
    ]
    print(f"{len(everything)} CFP photos; CPU: {cpu_name()}, {os.cpu_count()} cores", flush=True)
    vectors = {key: embed_all(args.cache, key, everything, args.batch) for key in args.recognizers.split(",")}
    if args.embed_only:
        return
    frontal, duplicates = distinct([p for p in photos(args.cfp, "frontal") if p.person <= args.people])
    lists = {kind: [str(p.path) for p in load_list(args.cfp, kind, args.people)] for kind in ("F", "P")}
    protocol = {
        name: (
            lists["F"],
            lists["F" if name == "FF" else "P"],
            load_pairs(args.cfp, name, args.people, {"F": 10, "P": 4}),
        )
        for name in ("FF", "FP")
    }
    candidates = dict(vectors)
    # Fusions of the permissively licensed ones only: arcface is there for reference.
    keys = [key for key in vectors if RECOGNIZERS[key].commercial_use]
    for i, first in enumerate(keys):
        for second in keys[i + 1 :]:
            a, b = vectors[first], vectors[second]
            weights = {f"{w:.1f}": w for w in FUSION_WEIGHTS} | {"z": znorm_weight(a, b, frontal)}
            for label, weight in weights.items():
                candidates[f"{first}+{second}@{label}"] = fused(a, b, weight)
    report: dict[str, dict[str, object]] = {}
    for key, candidate in candidates.items():
        report[key] = evaluate(candidate, frontal, protocol, full=key in vectors)
        _print_row(key, report[key])
    # The best fusion by TAR at the target FAR gets the full statistics too.
    fusions = [key for key in report if key not in vectors]
    if fusions:
        best = max(fusions, key=lambda key: float(cast(float, report[key]["tar_pairs"])))
        report[best] = evaluate(candidates[best], frontal, protocol, full=True)
        _print_row(f"{best} (full)", report[best])
    print_tables(report)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "permissive.json"
    out.write_text(
        json.dumps(
            {
                "dataset": f"CFP: {len(everything)} photos; calibration on {len(frontal)} distinct frontal "
                f"photos ({duplicates} byte-identical copies dropped)",
                "cpu": f"{cpu_name()}, {os.cpu_count()} cores",
                "recognizers": report,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")


def _print_row(key: str, r: dict[str, object]) -> None:
    print(
        f"{key}: FF {r['FF']:.2%} FP {r['FP']:.2%} EER {r['eer']:.2%} threshold {r['threshold']:.3f} "
        f"TAR {r['tar_pairs']:.2%}",
        flush=True,
    )


def print_tables(report: dict[str, dict[str, object]]) -> None:
    print(
        "\n| recognizer | CFP FF | CFP FP | EER | threshold at FAR 1e-6 | TAR there | rank-1, 500 people |"
        "\n|---|---|---|---|---|---|---|"
    )
    for key, r in report.items():
        print(
            f"| {key} | {r['FF']:.2%} ± {r['FF_sd']:.2%} | {r['FP']:.2%} ± {r['FP_sd']:.2%} | {r['eer']:.2%} "
            f"| {r['threshold']:.3f} ({r['impostor_pairs_accepted']} of {r['impostor_pairs']:,}) "
            f"| {r['tar_pairs']:.2%} | {r.get('rank1_closed_set', math.nan):.2%} |"
        )
    print_operating_points(report)


if __name__ == "__main__":
    main()
