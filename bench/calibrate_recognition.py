"""The default similarity threshold of each recognizer, measured on CFP's frontal photos.

    python -m bench.cfp /path/to/DR-GAN-by-pytorch          # once: the photos, outside the repo
    python -m bench.calibrate_recognition [--cfp /work/data/cfp] [--recognizers arcface,dlib]

CFP (500 people x 10 frontal photos, bench/cfp.py) is no test photo. Each recognizer runs with
its profile's detector (arcface: scrfd; dlib: retinaface) through FaceAnalyzer.analyze, the
worker's own code path (decode, letterbox, detect, align, embed, L2-normalise), one job per
--batch photos; the largest face of each photo is its face. A photo with no face at the default
max_size is tried again at each --retry-sizes (frame-filling faces), then counted as missed.
Byte-identical copies of a photo of the same person are dropped (they would score 1.0).

Then, with cosine similarity of the wire vectors:
- every genuine pair (same person) and every impostor pair: FAR and TAR per comparison;
- the threshold: the impostor score at --target-far per comparison, rounded up to 0.001;
- per query (open set: an unknown probe against a gallery of N people, one enrolled photo
  each; a false accept is its best match at or above the threshold): measured at N = 100 and
  N = 499 (everyone else) by sampling galleries from the other people, and, for N = 10,000,
  extrapolated as 1 - (1 - FAR)^N from the per-comparison FAR (the measured N = 100 and 499
  values check that formula);
- TAR at the threshold: genuine pairs, and rank-1 identification against all 500 people with
  one enrolled photo each (closed set, and open set: right person and at or above the threshold).

Prints a markdown table per recognizer; writes bench/results/calibration.json. Embeddings are
cached under --cache (default var/calibration/) so a second run only redoes the statistics.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.cfp import DEFAULT_OUT, Photo, photos
from shared.contract import AnalysisOptions, Face
from shared.settings import PROFILES, load_settings
from worker.inference.session import Device
from worker.loader import load_analyzer

RESULTS = Path(__file__).parent / "results"
DEFAULT_CACHE = Path(__file__).parent.parent / "var" / "calibration"
FAR_POINTS = (1e-3, 1e-4, 1e-5, 1e-6)
GALLERIES = (100, 10_000)
SEED = 14

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Embedded:
    """One vector per photo with a face, and what became of the others."""

    model: str  # the recognizer's network and version
    vectors: FloatArray  # (n, d), L2-normalised, grouped by person
    people: IntArray  # (n,) person ids, ascending
    paths: list[str]
    found_at: dict[str, int]  # max_size ("640x640") -> photos whose face was found at that size
    missed: list[str]
    seconds: float


def distinct(frontal: Sequence[Photo]) -> tuple[list[Photo], int]:
    """The photos without byte-identical copies within a person; and how many were dropped."""
    seen: set[tuple[int, str]] = set()
    kept = []
    for photo in frontal:
        key = (photo.person, hashlib.sha256(photo.path.read_bytes()).hexdigest())
        if key not in seen:
            seen.add(key)
            kept.append(photo)
    return kept, len(frontal) - len(kept)


def _area(face: Face) -> float:
    x1, y1, x2, y2 = face.bbox
    return (x2 - x1) * (y2 - y1)


def embed_largest_faces(
    recognizer: str, detector: str, frontal: Sequence[Photo], sizes: Sequence[int], batch: int
) -> Embedded:
    """Each photo's largest face, embedded by the worker pipeline; misses retried at smaller sizes."""
    analyzer = load_analyzer(
        load_settings(detectors=detector, recognizer=recognizer, attributes=""), Device("cpu")
    )
    spec = analyzer.loaded.recognizer.spec
    vectors: dict[int, FloatArray] = {}
    found_at: dict[str, int] = {}
    pending = list(range(len(frontal)))
    start = time.perf_counter()
    try:
        for size in sizes:
            options = AnalysisOptions(max_size=(size, size))
            missed: list[int] = []
            for offset in range(0, len(pending), batch):
                chunk = pending[offset : offset + batch]
                results = analyzer.analyze([frontal[i].path.read_bytes() for i in chunk], options)
                for index, result in zip(chunk, results, strict=True):
                    faces = [face for face in result.faces if face.vec is not None]
                    if faces:
                        vec = max(faces, key=_area).vec
                        assert vec is not None
                        vectors[index] = np.frombuffer(vec, np.float32)
                    else:
                        missed.append(index)
            found_at[f"{size}x{size}"] = len(pending) - len(missed)
            pending = missed
            print(
                f"  {recognizer}: max_size {size}: {found_at[f'{size}x{size}']} faces, {len(pending)} missed"
            )
    finally:
        analyzer.close()
    order = sorted(vectors)
    return Embedded(
        model=f"{spec.name} ({spec.version})",
        vectors=np.stack([vectors[i] for i in order]),
        people=np.array([frontal[i].person for i in order], np.intp),
        paths=[str(frontal[i].path) for i in order],
        found_at=found_at,
        missed=[str(frontal[i].path) for i in pending],
        seconds=time.perf_counter() - start,
    )


def cached_embeddings(
    cache: Path, recognizer: str, detector: str, frontal: Sequence[Photo], sizes: Sequence[int], batch: int
) -> Embedded:
    """``embed_largest_faces``, from --cache when the same photos and settings were embedded before."""
    digest = hashlib.sha256(
        repr((recognizer, detector, [str(p.path) for p in frontal], list(sizes))).encode()
    )
    path = cache / f"{recognizer}-{detector}-{digest.hexdigest()[:12]}.npz"
    if path.is_file():
        with np.load(path) as stored:
            meta = json.loads(str(stored["meta"]))
            return Embedded(vectors=stored["vectors"], people=stored["people"], **meta)
    embedded = embed_largest_faces(recognizer, detector, frontal, sizes, batch)
    cache.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in asdict(embedded).items() if k not in ("vectors", "people")}
    np.savez(path, vectors=embedded.vectors, people=embedded.people, meta=np.array(json.dumps(meta)))
    return embedded


@dataclass(frozen=True, slots=True)
class Scores:
    genuine: FloatArray  # every same-person pair
    impostor: FloatArray  # every different-person pair, ascending

    def far(self, threshold: float) -> float:
        """Impostor pairs at or above ``threshold``, as a fraction."""
        above = len(self.impostor) - int(np.searchsorted(self.impostor, threshold, side="left"))
        return above / len(self.impostor)

    def tar(self, threshold: float) -> float:
        return float(np.mean(self.genuine >= threshold))

    def score_at_far(self, far: float) -> float:
        """The smallest threshold, to 0.001, whose FAR is at most ``far``."""
        allowed = math.floor(far * len(self.impostor))  # impostor pairs that may pass
        highest_refused = float(self.impostor[len(self.impostor) - allowed - 1])
        return (math.floor(highest_refused * 1000) + 1) / 1000


def pair_scores(similarity: FloatArray, people: IntArray) -> Scores:
    genuine, impostor = [], []
    for i in range(len(people) - 1):
        row, same = similarity[i, i + 1 :], people[i + 1 :] == people[i]
        genuine.append(row[same])
        impostor.append(row[~same])
    return Scores(np.concatenate(genuine), np.sort(np.concatenate(impostor)))


@dataclass(frozen=True, slots=True)
class Groups:
    """Photos grouped by person: person k's photos are rows first[k] ... first[k] + count[k] - 1."""

    first: IntArray
    count: IntArray
    person_of_row: IntArray  # (n,) index k of each row's person

    @classmethod
    def of(cls, people: IntArray) -> Groups:
        _, first, count = np.unique(people, return_index=True, return_counts=True)
        return cls(first.astype(np.intp), count.astype(np.intp), np.repeat(np.arange(len(first)), count))

    def one_photo_each(self, persons: IntArray, rng: np.random.Generator) -> IntArray:
        """A random row of each person in ``persons`` (any shape)."""
        pick = np.floor(rng.random(persons.shape) * self.count[persons]).astype(np.intp)
        return np.asarray(self.first[persons] + pick, np.intp)


def best_impostor_scores(
    similarity: FloatArray, groups: Groups, size: int, trials: int, rng: np.random.Generator
) -> FloatArray:
    """Per trial: a random probe photo's best score against ``size`` other people, one random
    enrolled photo each (the open-set query of an unknown face)."""
    people = len(groups.first)
    best = []
    for done in range(0, trials, 2000):
        n = min(2000, trials - done)
        probes = rng.integers(0, len(groups.person_of_row), n)
        keys = rng.random((n, people))
        keys[np.arange(n), groups.person_of_row[probes]] = np.inf  # never the probe's own person
        gallery = np.argpartition(keys, size - 1, axis=1)[:, :size]
        rows = groups.one_photo_each(gallery, rng)
        best.append(similarity[probes[:, None], rows].max(axis=1))
    return np.concatenate(best)


def identification(
    similarity: FloatArray, groups: Groups, threshold: float, repeats: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Rank-1 rate of every other photo against one random enrolled photo per person (all
    people), and the open-set rate (right person, at or above ``threshold``); means of repeats."""
    closed, open_set = [], []
    persons = np.arange(len(groups.first))
    for _ in range(repeats):
        enrolled = groups.one_photo_each(persons, rng)
        probes = np.setdiff1d(np.arange(len(groups.person_of_row)), enrolled)
        scores = similarity[probes[:, None], enrolled]
        top = scores.argmax(axis=1)
        right = top == groups.person_of_row[probes]
        closed.append(float(right.mean()))
        open_set.append(float((right & (scores[np.arange(len(probes)), top] >= threshold)).mean()))
    return float(np.mean(closed)), float(np.mean(open_set))


def equal_error_rate(scores: Scores) -> float:
    grid = np.linspace(-1.0, 1.0, 2001)
    fars = np.array([scores.far(t) for t in grid])
    frrs = np.array([1.0 - scores.tar(t) for t in grid])
    at = int(np.argmin(np.abs(fars - frrs)))
    return float((fars[at] + frrs[at]) / 2)


def operating_points(scores: Scores) -> list[dict[str, float]]:
    """The threshold, the false-accept rate it gives, and the true-accept rate at each FAR_POINTS."""
    points = []
    for far in FAR_POINTS:
        threshold = scores.score_at_far(far)
        points.append(
            {
                "far": far,
                "threshold": threshold,
                "actual_far": scores.far(threshold),
                "tar": scores.tar(threshold),
            }
        )
    return points


def extrapolated(far: float, size: int) -> float:
    """Per-query FAR against ``size`` independent impostors, each passing with ``far``."""
    return float(-math.expm1(size * math.log1p(-far)))


def calibrate(embedded: Embedded, target_far: float, trials: int, repeats: int) -> dict[str, object]:
    rng = np.random.default_rng(SEED)
    start = time.perf_counter()
    similarity = embedded.vectors @ embedded.vectors.T
    scores = pair_scores(similarity, embedded.people)
    groups = Groups.of(embedded.people)
    threshold = scores.score_at_far(target_far)
    far = scores.far(threshold)
    others = len(groups.first) - 1
    measured = {
        size: float(np.mean(best_impostor_scores(similarity, groups, size, trials, rng) >= threshold))
        for size in sorted({min(GALLERIES[0], others), others})
    }
    rank1, open_rank1 = identification(similarity, groups, threshold, repeats, rng)
    above = np.argwhere(np.triu(similarity >= threshold, 1) & (embedded.people[:, None] != embedded.people))
    return {
        "model": embedded.model,
        "photos_embedded": len(embedded.paths),
        "people": len(groups.first),
        "faces_found_at_max_size": embedded.found_at,
        "missed": embedded.missed,
        "embed_seconds": round(embedded.seconds, 1),
        "genuine_pairs": len(scores.genuine),
        "impostor_pairs": len(scores.impostor),
        "target_far": target_far,
        "threshold": threshold,
        "far_per_comparison": far,
        "impostor_pairs_accepted": round(far * len(scores.impostor)),
        "far_per_query": {
            **{f"{size}_measured": value for size, value in measured.items()},
            **{f"{size}_extrapolated": extrapolated(far, size) for size in (*GALLERIES, others)},
        },
        "query_trials": trials,
        "tar_pairs": scores.tar(threshold),
        "rank1_closed_set": rank1,
        "rank1_open_set": open_rank1,
        "identification_repeats": repeats,
        "eer": equal_error_rate(scores),
        "operating_points": operating_points(scores),
        "curve": [
            {"threshold": round(float(t), 2), "far": scores.far(float(t)), "tar": scores.tar(float(t))}
            for t in np.arange(0.0, 1.0, 0.01)
        ],
        "accepted_impostors": [
            {"a": embedded.paths[i], "b": embedded.paths[j], "similarity": round(float(similarity[i, j]), 4)}
            for i, j in above[:20]
        ],
        "analysis_seconds": round(time.perf_counter() - start, 1),
    }


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def print_table(results: dict[str, dict[str, object]]) -> None:
    print(
        "\n| recognizer | threshold | FAR per comparison | FAR per query, 100 people (measured) "
        "| FAR per query, 10,000 (extrapolated) | TAR (pairs) | rank-1, 500 people | open-set rank-1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for key, r in results.items():
        q = r["far_per_query"]
        assert isinstance(q, dict)
        at_100 = q.get("100_measured", math.nan)
        print(
            f"| {key}: {r['model']} | {r['threshold']:.3f} | {r['far_per_comparison']:.1e} "
            f"({r['impostor_pairs_accepted']} of {r['impostor_pairs']:,}) | {at_100:.1e} "
            f"| {q['10000_extrapolated']:.2%} | {r['tar_pairs']:.4f} | {r['rank1_closed_set']:.4f} "
            f"| {r['rank1_open_set']:.4f} |"
        )
    print_operating_points(results)


def print_operating_points(results: Mapping[str, Mapping[str, object]]) -> None:
    """The table of each recognizer's ``operating_points``: threshold and TAR at each FAR."""
    print("\n| recognizer | FAR | threshold | TAR |\n|---|---|---|---|")
    for key, r in results.items():
        points = r["operating_points"]
        assert isinstance(points, list)
        for p in points:
            actual = f"{p['far']:.0e} (actual {p['actual_far']:.1e})"
            print(f"| {key} | {actual} | {p['threshold']:.3f} | {p['tar']:.2%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cfp", type=Path, default=DEFAULT_OUT, help="bench/cfp.py's output")
    parser.add_argument(
        "--recognizers", default=",".join(dict.fromkeys(p.recognizer for p in PROFILES.values()))
    )
    parser.add_argument(
        "--target-far",
        type=float,
        default=1e-6,
        help="per comparison (1e-6: about 1%% per query against 10,000 people)",
    )
    parser.add_argument(
        "--retry-sizes", default="320,160", help="max_size tried again for photos with no face"
    )
    parser.add_argument("--batch", type=int, default=16, help="photos per analyze call (one job)")
    parser.add_argument("--trials", type=int, default=200_000, help="open-set queries per gallery size")
    parser.add_argument("--repeats", type=int, default=10, help="random enrolments for rank-1")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--people", type=int, default=0, help="only the first N people (a quick check)")
    args = parser.parse_args()

    everyone = photos(args.cfp, "frontal")
    frontal, duplicates = distinct([p for p in everyone if not args.people or p.person <= args.people])
    sizes = [AnalysisOptions().max_size[0], *(int(s) for s in args.retry_sizes.split(",") if s)]
    detector_of = {p.recognizer: p.detectors[0] for p in PROFILES.values()}
    print(f"{len(frontal)} frontal photos ({duplicates} byte-identical copies dropped); CPU: {cpu_name()}")
    results: dict[str, dict[str, object]] = {}
    for key in args.recognizers.split(","):
        detector = detector_of.get(key, "scrfd")
        embedded = cached_embeddings(args.cache, key, detector, frontal, sizes, args.batch)
        results[key] = {
            "detector": detector,
            **calibrate(embedded, args.target_far, args.trials, args.repeats),
        }
    print_table(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "calibration.json"
    report = {
        "dataset": f"CFP frontal, {len(frontal)} photos after dropping {duplicates} byte-identical copies",
        "cpu": f"{cpu_name()}, {os.cpu_count()} cores",
        "recognizers": results,
    }
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
