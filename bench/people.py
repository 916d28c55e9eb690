"""People discovery against Immich's clustering on the same embeddings, with BCubed precision,
recall and F (docs/people.md).

The photos: CFP (bench/cfp.py rebuilds it from the GitHub repository zhangjunh/DR-GAN-by-pytorch;
never the test photos). Per half of CFP's 500 people, in a shuffled "library" order:

- 200 people with all 14 photos: 10 frontal and 4 profile (the hard case: profile views; CFP's
  photos of one celebrity come from different events and years);
- 50 people with a single frontal photo each, who must stay alone;
- 100 collages: two photos side by side, of two people or of one person twice (a photo of a
  photo): two faces of one photo, which no cluster may hold both of;
- every other face the detector finds in those photos (people in the background), each its own
  person.

Our settings are tuned on the first half (people 1-250) and every figure here is the second's
(251-500), Immich's best ``maxDistance`` included, which is tuned on the second half's answers.

    python -m bench.cfp /path/to/DR-GAN-by-pytorch --out /tmp/cfp     # once
    python -m bench.people /tmp/cfp [--half test|tune] [--cache /tmp/people-cache]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.cfp import Photo, photos
from shared.contract import AnalysisOptions
from shared.settings import load_settings
from testkit.photos import encode, read_rgb
from worker.discovery import NONE, Clustering, DiscoverySettings
from worker.inference.session import Device
from worker.loader import load_analyzer

FULL_PEOPLE = 200
SINGLE_PEOPLE = 50
COLLAGES = 100
SEED = 27
IMMICH_MIN_FACES = 3
IMMICH_MAX_DISTANCE = 0.5


@dataclass(frozen=True, slots=True)
class Faces:
    """Every face of the library in library order: vector, quality, photo and person (-1 - n for
    a background face: a person of its own)."""

    vectors: NDArray[np.float32]
    quality: NDArray[np.float32]
    photo: NDArray[np.int64]
    person: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Item:
    """One library photo: a CFP photo, or two side by side (a collage: two people in one
    photo, or one person twice, as in a photo of a photo). ``people`` left to right."""

    parts: tuple[Photo, ...]

    @property
    def key(self) -> str:
        return "+".join(str(p.path) for p in self.parts)

    def data(self) -> bytes:
        if len(self.parts) == 1:
            return self.parts[0].path.read_bytes()
        images = [read_rgb(p.path) for p in self.parts]
        height = max(i.shape[0] for i in images)
        padded = [np.pad(i, ((0, height - i.shape[0]), (0, 0), (0, 0))) for i in images]
        return encode(np.ascontiguousarray(np.concatenate(padded, axis=1)))

    def person_at(self, x: float, width: int) -> int:
        """The person whose part holds image column ``x``."""
        edges = np.cumsum([read_rgb(p.path).shape[1] for p in self.parts])
        return self.parts[min(int(np.searchsorted(edges, x, side="right")), len(self.parts) - 1)].person


def library(root: Path, half: str) -> list[Item]:
    """The half's photos in a shuffled order (module docstring)."""
    people = range(1, 251) if half == "tune" else range(251, 501)
    rng = np.random.default_rng(SEED)
    chosen = list(people)
    rng.shuffle(chosen)
    full, single = set(chosen[:FULL_PEOPLE]), set(chosen[FULL_PEOPLE : FULL_PEOPLE + SINGLE_PEOPLE])
    everyone = photos(root, "frontal") + photos(root, "profile")
    picked = [Item((p,)) for p in everyone if p.person in full]
    picked += [Item((p,)) for p in photos(root, "frontal") if p.person in single and p.number == 1]
    # Collages from the full people's frontal photos 1 and 2: a pair of people, or one person twice.
    first = {p.person: p for p in photos(root, "frontal") if p.person in full and p.number == 1}
    second = {p.person: p for p in photos(root, "frontal") if p.person in full and p.number == 2}
    ids = sorted(full)
    for n in range(COLLAGES):
        a, b = ids[(2 * n) % len(ids)], ids[(2 * n + 1) % len(ids)]
        picked.append(Item((first[a], second[a])) if n % 2 else Item((first[a], first[b])))
    order = rng.permutation(len(picked))
    return [picked[i] for i in order]


def embed(items: Sequence[Item], cache: Path) -> Faces:
    """Every face of every photo, with its quality (the worker's pipeline, CPU), cached. In each
    part of a photo the largest face is that part's person; any other face is a person of its own."""
    key = hashlib.sha256(repr([item.key for item in items]).encode()).hexdigest()[:12]
    path = cache / f"people-{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return Faces(stored["vectors"], stored["quality"], stored["photo"], stored["person"])
    analyzer = load_analyzer(
        load_settings(detectors="scrfd", recognizer="arcface", attributes=""), Device("cpu")
    )
    vectors, quality, photo, person = [], [], [], []
    background = -1
    options = AnalysisOptions(return_quality=True)
    try:
        for start in range(0, len(items), 32):
            chunk = items[start : start + 32]
            results = analyzer.analyze([item.data() for item in chunk], options)
            for offset, (item, result) in enumerate(zip(chunk, results, strict=True)):
                assert result.size is not None
                owners = [item.person_at((f.bbox[0] + f.bbox[2]) / 2, result.size[0]) for f in result.faces]
                areas = [(f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]) for f in result.faces]
                largest = {
                    owner: max((i for i in range(len(owners)) if owners[i] == owner), key=lambda i: areas[i])
                    for owner in set(owners)
                }
                for i, face in enumerate(result.faces):
                    assert face.vec is not None and face.quality is not None
                    vectors.append(np.frombuffer(face.vec, np.float32))
                    quality.append(face.quality.quality)
                    photo.append(start + offset)
                    if largest[owners[i]] == i:
                        person.append(owners[i])
                    else:
                        person.append(background)
                        background -= 1
    finally:
        analyzer.close()
    faces = Faces(
        np.stack(vectors),
        np.array(quality, np.float32),
        np.array(photo, np.int64),
        np.array(person, np.int64),
    )
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, vectors=faces.vectors, quality=faces.quality, photo=faces.photo, person=faces.person)
    return faces


def bcubed(clusters: NDArray[np.int64], people: NDArray[np.int64]) -> tuple[float, float, float]:
    """BCubed precision, recall and F (Amigó et al. 2009); an unclustered face is a cluster of one."""
    labels = clusters.copy()
    alone = labels == NONE
    labels[alone] = -np.arange(1, int(alone.sum()) + 1) - 10**9
    precision, recall = np.zeros(len(labels)), np.zeros(len(labels))
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        found = people[members]
        for person in np.unique(found):
            same = int(np.sum(found == person))
            total = int(np.sum(people == person))
            rows = members[found == person]
            precision[rows] = same / len(members)
            recall[rows] = same / total
    p, r = float(precision.mean()), float(recall.mean())
    return p, r, 2 * p * r / (p + r)


def two_faces_of_a_photo(clusters: NDArray[np.int64], photo: NDArray[np.int64]) -> int:
    """Clusters holding two faces of one photo."""
    bad = set()
    seen: dict[tuple[int, int], int] = {}
    for label, picture in zip(clusters.tolist(), photo.tolist(), strict=True):
        if label == NONE:
            continue
        if (label, picture) in seen:
            bad.add(label)
        seen[(label, picture)] = 1
    return len(bad)


def immich(
    faces: Faces, max_distance: float = IMMICH_MAX_DISTANCE, min_faces: int = IMMICH_MIN_FACES
) -> NDArray[np.int64]:
    """Immich's facial recognition job (server/src/services/person.service.ts,
    handleRecognizeFaces) over a library whose faces are all detected: per face in order, its
    ``min_faces`` nearest faces (itself included) within ``max_distance`` cosine distance; a face
    with fewer is deferred once; a core face with no person among them or its nearest face with
    a person makes a new person; any face takes that person."""
    sims = faces.vectors @ faces.vectors.T
    person = np.full(len(sims), NONE, np.int64)
    next_person = 0
    deferred: list[int] = []

    def recognize(i: int, is_deferred: bool) -> None:
        nonlocal next_person
        within = np.flatnonzero(sims[i] >= 1 - max_distance)
        matches = within[np.argsort(-sims[i, within])][:min_faces]
        if min_faces > 1 and len(matches) <= 1:
            return
        chosen = next((int(person[j]) for j in matches if person[j] != NONE), NONE)
        if chosen == NONE:
            with_person = within[person[within] != NONE]
            if len(with_person):
                chosen = int(person[with_person[np.argmax(sims[i, with_person])]])
        core = len(matches) >= min_faces
        if not core and not is_deferred:
            deferred.append(i)
            return
        if core and chosen == NONE:
            chosen = next_person
            next_person += 1
        if chosen != NONE:
            person[i] = chosen

    for i in range(len(sims)):
        recognize(i, False)
    for i in deferred:
        recognize(i, True)
    return person


def ours(faces: Faces, settings: DiscoverySettings) -> tuple[NDArray[np.int64], float]:
    """Incremental: one photo at a time, in library order; the seconds it took."""
    clustering = Clustering(faces.vectors.shape[1], settings)
    start = time.perf_counter()
    bounds = np.flatnonzero(np.diff(faces.photo, prepend=-1, append=-1))
    for a, b in itertools.pairwise(bounds):
        clustering.add_photo(faces.vectors[a:b], faces.quality[a:b].tolist(), str(faces.photo[a]))
    return clustering.cluster[: clustering.count].copy(), time.perf_counter() - start


def scale(faces: int, people_count: int, seed: int = SEED) -> None:
    """Incremental clustering's cost as a collection grows to ``faces`` faces: generated vectors
    (each person's faces about 0.6 cosine similar, as ArcFace's), one face per photo, the time per
    face for each tenth of the run and the whole run's mean."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people_count, 512))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    clustering = Clustering(512)
    owner = rng.integers(0, people_count, faces)
    start = time.perf_counter()
    mark = start
    step = max(1, faces // 10)
    for i in range(faces):
        vector = centres[owner[i]] + rng.normal(size=512) * 0.8 / np.sqrt(512)
        vector /= np.linalg.norm(vector)
        clustering.add_photo(vector[None].astype(np.float32), [0.8], str(i))
        if (i + 1) % step == 0:
            now = time.perf_counter()
            print(
                f"faces {i + 1}: {(now - mark) * 1000 / step:.2f} ms per face over the last {step}",
                flush=True,
            )
            mark = now
    total = time.perf_counter() - start
    print(f"{faces} faces in {total:.1f} s: {total * 1000 / faces:.2f} ms per face amortized")


def row(name: str, clusters: NDArray[np.int64], faces: Faces) -> dict[str, object]:
    p, r, f = bcubed(clusters, faces.person)
    return {
        "method": name,
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f": round(f, 4),
        "clusters": len(set(clusters.tolist()) - {NONE}),
        "unclustered": int(np.sum(clusters == NONE)),
        "two_faces_of_a_photo": two_faces_of_a_photo(clusters, faces.photo),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path, help="CFP as bench.cfp writes it")
    parser.add_argument("--half", choices=("test", "tune"), default="test")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/facerest-people-cache"))
    parser.add_argument("--sweep", action="store_true", help="also sweep our join and seed thresholds")
    parser.add_argument(
        "--scale", type=int, default=0, help="instead: time incremental clustering of N faces"
    )
    args = parser.parse_args()
    if args.scale:
        scale(args.scale, args.scale // 5)
        return
    shuffled = library(args.root, args.half)
    faces = embed(shuffled, args.cache)
    print(
        f"{len(shuffled)} photos, {len(faces.person)} faces, "
        f"{len(set(faces.person[faces.person > 0].tolist()))} people, half {args.half}"
    )
    rows = [row("immich defaults (maxDistance 0.5, minFaces 3)", immich(faces), faces)]
    sweep = [
        (d, row(f"immich maxDistance {d:.3f}", immich(faces, d), faces)) for d in np.arange(0.3, 0.825, 0.025)
    ]
    best = max(sweep, key=lambda item: float(str(item[1]["f"])))
    rows.append({**best[1], "method": f"immich best on these answers (maxDistance {best[0]:.3f})"})
    clusters, seconds = ours(faces, DiscoverySettings())
    rows.append(
        {**row("facerest defaults", clusters, faces), "ms_per_face": round(seconds * 1000 / len(clusters), 3)}
    )
    if args.sweep:
        for join in (0.26, 0.28, 0.3, 0.32):
            for seed in (0.4, 0.45):
                for top in (2, 3, 5):
                    settings = replace(DiscoverySettings(), join=join, seed=seed, top=top)
                    rows.append(
                        row(f"facerest join {join} seed {seed} top {top}", ours(faces, settings)[0], faces)
                    )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
