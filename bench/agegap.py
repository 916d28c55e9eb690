"""Large age gaps: the same people photographed as children or young and as adults or old, the
service's pipeline against the plain insightface 0.7.3 reference.

    python -m bench.agegap --rebuild /work/.mirror/loiswjj+Face_Recognition/repo
    python -m bench.agegap [--root /work/data/lag] [--cache /work/data/lag_cache]
        [--variants service ref-native] [--missing zero|error|leave-out]

The data set is LAG (Large Age-Gap, Bianco, Pattern Recognition Letters 2017: 1,010
celebrities, each with at least one child or young photo and one adult or old photo, 100 x 100
px crops; academic and non-commercial use only). A public GitHub repository,
loiswjj/Face_Recognition, carries its 100 px version in FaceDetection/FaceDetection/data/Pic/
(3,816 of the 3,828 photos); ``--rebuild`` writes that folder under ``--root`` (``fetch`` the
repository first). Nothing of it is committed here.

    ROOT/<person>/*.png     the adult or old photos
    ROOT/<person>/y/*.png   the child or young photos

LAG ships no pair list in that copy, so the pairs are built here, deterministically: every young
photo of a person against every adult photo of the same person (5,024 pairs, LAG's paper used
5,051), and as many pairs of a young photo against an adult photo of someone else (seeded draw).
The people are dealt into 10 folds; each fold is judged at the threshold that is best on the
other nine (the standard protocol). Variants, faces and scores as in bench/cfp_verify.py (one
face per photo, the largest; cached per variant under --cache).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.cfp_verify import Missing, chosen_vectors, run_cached, variant_runner, verification_accuracy
from bench.mirror import extract_folder

FOLDER = "FaceDetection/FaceDetection/data/Pic"
FOLDS = 10
SEED = 0
Pair = tuple[int, int, bool]  # photo indices (young, adult), same person


def photos(root: Path) -> tuple[list[Path], list[int], list[bool]]:
    """Every photo, sorted: its path, its person's index and whether it is a young one."""
    people = sorted(p for p in root.iterdir() if p.is_dir())
    paths, owners, young = [], [], []
    for index, person in enumerate(people):
        for is_young, folder in ((False, person), (True, person / "y")):
            for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
                paths.append(path)
                owners.append(index)
                young.append(is_young)
    return paths, owners, young


def pairs(owners: list[int], young: list[bool]) -> list[list[Pair]]:
    """The folds: each person's young-adult pairs, and for each of them a young photo of that
    person against an adult photo of someone else."""
    rng = np.random.default_rng(SEED)
    people = max(owners) + 1
    adults = [
        [i for i, (o, y) in enumerate(zip(owners, young, strict=True)) if o == p and not y]
        for p in range(people)
    ]
    youngs = [
        [i for i, (o, y) in enumerate(zip(owners, young, strict=True)) if o == p and y] for p in range(people)
    ]
    all_adults = np.array([i for i, y in enumerate(young) if not y])
    folds: list[list[Pair]] = [[] for _ in range(FOLDS)]
    for person in range(people):
        fold = folds[person % FOLDS]
        for a in youngs[person]:
            for b in adults[person]:
                fold.append((a, b, True))
                other = int(rng.choice(all_adults))
                while owners[other] == person:
                    other = int(rng.choice(all_adults))
                fold.append((a, other, False))
    return folds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path("/work/data/lag"))
    parser.add_argument("--cache", type=Path, default=Path("/work/data/lag_cache"))
    parser.add_argument(
        "--rebuild", type=Path, help="a checkout or git directory of loiswjj/Face_Recognition"
    )
    parser.add_argument("--variants", nargs="+", default=["service", "ref-native"])
    parser.add_argument("--missing", choices=["zero", "error", "leave-out"], default="zero")
    args = parser.parse_args()
    if args.rebuild:
        extract_folder(args.rebuild, FOLDER, args.root)
    paths, owners, young = photos(args.root)
    folds = pairs(owners, young)
    count = sum(len(f) for f in folds)
    print(
        f"LAG: {len(paths)} photos of {max(owners) + 1} people, {count} pairs "
        f"({count // 2} of the same person)"
    )
    missing: Missing = args.missing
    report: dict[str, dict[str, float]] = {}
    for name in args.variants:
        found = run_cached(name, variant_runner(name), paths, args.cache, set(), [])
        row: dict[str, float] = {
            "no_face_young": sum(not len(f.scores) for f, y in zip(found, young, strict=True) if y),
            "no_face_adult": sum(not len(f.scores) for f, y in zip(found, young, strict=True) if not y),
        }
        for flip in (False, True):
            vectors = chosen_vectors(found, "largest", flip)
            mean, std = verification_accuracy(folds, vectors, vectors, missing)
            label = "flip" if flip else "plain"
            row[label], row[f"{label}_std"] = mean, std
        report[name] = row
        print(name, json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
    print(
        f"\n| variant (no face: {missing}) | accuracy | with flip | no face: young, adult |"
        "\n|---|---|---|---|"
    )
    for name, r in report.items():
        print(
            f"| {name} | {r['plain']:.2%} ± {r['plain_std']:.2%} | {r['flip']:.2%} "
            f"| {int(r['no_face_young'])}, {int(r['no_face_adult'])} |"
        )


if __name__ == "__main__":
    main()
