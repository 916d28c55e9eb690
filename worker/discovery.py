"""People discovery: incremental clustering of a collection's faces (docs/people.md).

A face joins the cluster whose closest faces it resembles most, as one assignment per photo (two
faces of one photo never join one cluster); a face that joins none waits in the pool, and good
faces of the pool that resemble each other start a new cluster, which then sweeps the pool for
faces (of any quality) that now have a place. No full rerun: a photo costs one matrix product
against the clustered faces and one against the pool.

Against Immich's anchor (a face is a "core" point with ``minFaces`` neighbours within
``maxDistance``; a person is created from a core point and a face takes its nearest neighbour's
person), three differences, each measured in bench/people.py:

- joining asks for the mean similarity to a cluster's ``top`` closest faces, not one neighbour:
  one lookalike face (a sibling) no longer chains two people together;
- seeds need ``seed_quality``: blurred, tiny or profile faces, whose vectors sit close to
  everybody's, never start a cluster (they may still join one);
- one assignment per photo (Hungarian method), and the person's decisions as constraints
  (a face moved away never comes back; clusters kept apart are never merged).

The state is this module's ``Clustering``, one collection's, built from the gallery's rows and
written back by the caller; nothing here reads a database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from shared.gallery.codes import sign_bytes

NONE = -1  # a face in no cluster

FloatArray = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    """The defaults are the bench's (bench/people.py, docs/people.md): tuned on CFP's first 250
    people, measured on the other 250."""

    # A face joins a cluster when the mean cosine similarity to its ``top`` closest faces reaches this.
    join: float = 0.30
    # Two pool faces at least this similar, both of ``seed_quality`` or more, start a cluster.
    seed: float = 0.40
    seed_quality: float = 0.15
    top: int = 3
    # Candidate clusters of a face: those of its ``neighbours`` nearest clustered faces.
    neighbours: int = 64
    # Past this many faces to compare with, sign-bit codes (shared/gallery/codes.py) pick the
    # ``shortlist`` nearest by Hamming distance and only they are compared exactly: the exact
    # scan of every vector per photo grows to tens of ms at 100k faces.
    exact_below: int = 1024
    shortlist: int = 256


@dataclass(slots=True)
class Clustering:
    """One collection's faces and clusters in memory, and the person's decisions as constraints.

    Faces are rows, in the order they were added; ``cluster[i]`` is the cluster of face ``i`` or
    NONE. Cluster ids are never reused.
    """

    dimension: int
    settings: DiscoverySettings = field(default_factory=DiscoverySettings)
    vectors: FloatArray = field(init=False)
    quality: FloatArray = field(init=False)
    cluster: NDArray[np.int64] = field(init=False)
    photo_code: NDArray[np.int64] = field(init=False)  # the row's photo, as a number
    photo: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    rows_of: dict[int, list[int]] = field(default_factory=dict)  # photo code -> its rows
    placed: NDArray[np.bool_] = field(init=False)  # faces a person placed: never moved by clustering
    signs: NDArray[np.uint64] = field(init=False)  # sign bits, word-major: (words, rows)
    # The Hamming distances of the last row queried to every row: one scan per face, whichever
    # subset (clustered, pool) it is then compared with.
    _last: tuple[int, int, NDArray[np.int32]] | None = None
    forbidden: set[tuple[int, int]] = field(default_factory=set)  # (face, cluster) a person moved it out of
    apart: set[frozenset[int]] = field(default_factory=set)  # cluster pairs a person kept apart
    next_id: int = 1
    count: int = 0

    def __post_init__(self) -> None:
        self.vectors = np.zeros((16, self.dimension), np.float32)
        self.quality = np.zeros(16, np.float32)
        self.cluster = np.full(16, NONE, np.int64)
        self.photo_code = np.zeros(16, np.int64)
        self.placed = np.zeros(16, np.bool_)
        self.signs = np.zeros((_words(self.dimension), 16), np.uint64)

    # -- rows ---------------------------------------------------------------------------------

    def _grow(self, extra: int) -> None:
        need = self.count + extra
        if need <= len(self.vectors):
            return
        size = max(need, 2 * len(self.vectors))
        vectors = np.zeros((size, self.dimension), np.float32)
        vectors[: self.count] = self.vectors[: self.count]
        quality = np.zeros(size, np.float32)
        quality[: self.count] = self.quality[: self.count]
        cluster = np.full(size, NONE, np.int64)
        cluster[: self.count] = self.cluster[: self.count]
        codes = np.zeros(size, np.int64)
        codes[: self.count] = self.photo_code[: self.count]
        placed = np.zeros(size, np.bool_)
        placed[: self.count] = self.placed[: self.count]
        signs = np.zeros((self.signs.shape[0], size), np.uint64)
        signs[:, : self.count] = self.signs[:, : self.count]
        self.vectors, self.quality, self.cluster, self.photo_code = vectors, quality, cluster, codes
        self.placed, self.signs = placed, signs

    def load(
        self, vectors: FloatArray, quality: Sequence[float], photos: Sequence[str], clusters: Sequence[int]
    ) -> list[int]:
        """Add stored faces as they are (no clustering); their row numbers."""
        rows = self._append(vectors, quality, photos)
        self.cluster[rows] = np.asarray(clusters, np.int64)
        if len(clusters):
            self.next_id = max(self.next_id, int(max(clusters)) + 1)
        return rows

    def _append(self, vectors: FloatArray, quality: Sequence[float], photos: Sequence[str]) -> list[int]:
        self._grow(len(vectors))
        start = self.count
        self.vectors[start : start + len(vectors)] = vectors
        self.signs[:, start : start + len(vectors)] = _codes(np.asarray(vectors, np.float32)).T
        self.quality[start : start + len(vectors)] = np.asarray(quality, np.float32)
        for offset, photo in enumerate(photos):
            code = self.codes.setdefault(photo, len(self.codes))
            self.photo_code[start + offset] = code
            self.rows_of.setdefault(code, []).append(start + offset)
        self.photo.extend(photos)
        self.count += len(vectors)
        return list(range(start, self.count))

    # -- incremental clustering ------------------------------------------------------------------

    def add_photo(
        self, vectors: FloatArray, quality: Sequence[float], photo: str, attach: Sequence[int] = ()
    ) -> list[int]:
        """Add one photo's faces and cluster them: their row numbers (``cluster[row]`` says where
        each went; a new cluster may also have taken faces of the pool). ``attach``, row for row
        (NONE: no): clusters the faces go to as they are (they matched the cluster's enrolled
        subject); the pool is swept into them and the others are clustered around them."""
        rows = self._append(vectors, quality, [photo] * len(vectors))
        attached = [(row, label) for row, label in zip(rows, attach, strict=False) if label != NONE]
        for row, label in attached:
            self.cluster[row] = label
        self._place([row for row in rows if self.cluster[row] == NONE])
        for row, label in attached:
            self._sweep(label, [row])
        return rows

    def _place(self, rows: Sequence[int]) -> None:
        """Join, sweep the pool into what grew, seed from what is left."""
        self._join(rows)
        for row in rows:
            if self.cluster[row] != NONE:
                self._sweep(int(self.cluster[row]), [row])
            elif self.quality[row] >= self.settings.seed_quality:
                self._seed(row)

    def _pool_mask(self) -> NDArray[np.bool_]:
        """Faces in no cluster that clustering may place (not those a person took out)."""
        return np.asarray((self.cluster[: self.count] == NONE) & ~self.placed[: self.count], np.bool_)

    def _members(self, cluster: int) -> NDArray[np.intp]:
        return np.flatnonzero(self.cluster[: self.count] == cluster)

    def _photo_clusters(self, row: int, besides: Iterable[int] = ()) -> set[int]:
        """The clusters holding a face of ``row``'s photo, ``besides`` left out."""
        skip = set(besides)
        rows = self.rows_of[int(self.photo_code[row])]
        return {int(self.cluster[i]) for i in rows if i not in skip and self.cluster[i] != NONE}

    def _distance(self, row: int) -> NDArray[np.int32]:
        """Hamming distances of ``row``'s code to every row's (word-major: contiguous scans)."""
        if self._last is not None and self._last[:2] == (row, self.count):
            return self._last[2]
        signs = self.signs[:, : self.count]
        distance = np.asarray(np.bitwise_count(signs ^ signs[:, row : row + 1]).sum(axis=0), np.int32)
        self._last = (row, self.count, distance)
        return distance

    def _similar(
        self, mask: NDArray[np.bool_], row: int, keep: int
    ) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
        """The ``keep`` rows where ``mask`` is set that are most similar to ``row``, and their
        cosine similarities, best first: exact while few rows are set, else over the sign-code
        shortlist."""
        among = np.flatnonzero(mask)
        query = self.vectors[row]
        if len(among) > max(self.settings.exact_below, self.settings.shortlist):
            distance = np.where(mask, self._distance(row), np.iinfo(np.int32).max)
            among = np.argpartition(distance, self.settings.shortlist - 1)[: self.settings.shortlist]
        sims = np.asarray(self.vectors[among] @ query, np.float32)
        if keep < len(among):
            part = np.argpartition(-sims, keep - 1)[:keep]
            among, sims = among[part], sims[part]
        order = np.argsort(-sims)
        return among[order], sims[order]

    def _scores(self, rows: Sequence[int]) -> list[dict[int, float]]:
        """Per row: each candidate cluster's score, the mean similarity to its ``top`` closest
        faces among the row's ``neighbours`` nearest clustered faces."""
        clustered = self.cluster[: self.count] != NONE
        if not clustered.any():
            return [{} for _ in rows]
        sizes = np.bincount(self.cluster[: self.count][clustered])
        out: list[dict[int, float]] = []
        for row in rows:
            nearest, sims = self._similar(clustered, row, self.settings.neighbours)
            by_cluster: dict[int, list[float]] = {}
            for i, sim in zip(nearest.tolist(), sims.tolist(), strict=True):
                by_cluster.setdefault(int(self.cluster[i]), []).append(sim)
            scores = {}
            for label, values in by_cluster.items():
                want = min(self.settings.top, int(sizes[label]))
                if len(values) >= want:
                    scores[label] = sum(values[:want]) / want
            out.append(scores)
        return out

    def _allowed(self, row: int, cluster: int, taken: set[int]) -> bool:
        return cluster not in taken and (row, cluster) not in self.forbidden

    def _join(self, rows: Sequence[int]) -> None:
        """One photo's faces: the assignment to clusters with the largest total score, every
        pair at or above ``join``, none to a cluster holding another face of the photo."""
        if not rows:
            return
        taken = self._photo_clusters(rows[0], besides=rows)
        scores = self._scores(rows)
        labels = sorted(
            {
                c
                for r, s in zip(rows, scores, strict=True)
                for c, v in s.items()
                if v >= self.settings.join and self._allowed(r, c, taken)
            }
        )
        if not labels:
            return
        column = {label: j for j, label in enumerate(labels)}
        gain = np.zeros((len(rows), len(labels)))
        for i, (row, row_scores) in enumerate(zip(rows, scores, strict=True)):
            for label, value in row_scores.items():
                if label in column and value >= self.settings.join and self._allowed(row, label, taken):
                    gain[i, column[label]] = value + 2.0  # any allowed pair beats leaving a face out
        for i, j in zip(*linear_sum_assignment(gain, maximize=True), strict=True):
            if gain[i, j] > 0:
                self.cluster[rows[i]] = labels[j]

    def _seed(self, row: int) -> None:
        """Start a cluster from ``row`` and its most similar good pool face of another photo,
        then sweep the pool into it."""
        pool = self._pool_mask() & (self.quality[: self.count] >= self.settings.seed_quality)
        pool[row] = False
        if not pool.any():
            return
        nearest, sims = self._similar(pool, row, self.settings.neighbours)
        for other, sim in zip(nearest.tolist(), sims.tolist(), strict=True):
            if sim < self.settings.seed:
                return
            if self.photo_code[other] != self.photo_code[row]:
                break
        else:
            return
        label = self.next_id
        self.next_id += 1
        self.cluster[[row, other]] = label
        self._sweep(label, [row, other])

    def _sweep(self, label: int, joined: Sequence[int]) -> None:
        """Pool faces (any quality) that score at least ``join`` against cluster ``label`` join
        it, the best one per photo, until none is left. Only pool faces that close to one of the
        faces that just ``joined`` are scored: the others' scores did not change."""
        near = list(joined)
        while near:
            members = self._members(label)
            pool = self._pool_mask()
            for photo in set(self.photo_code[members].tolist()):
                pool[self.rows_of[photo]] = False
            if not pool.any():
                return
            close: set[int] = set()
            for face in near:
                found, sims = self._similar(pool, face, self.settings.shortlist)
                close.update(found[sims >= self.settings.join].tolist())
            pool = np.array(sorted(close), np.intp)
            if not len(pool):
                return
            sims = self.vectors[pool] @ self.vectors[members].T
            want = min(self.settings.top, len(members))
            score = -np.sort(-sims, axis=1)[:, :want].mean(axis=1)
            best: dict[int, tuple[float, int]] = {}
            for i in np.flatnonzero(score >= self.settings.join):
                face, photo = int(pool[i]), int(self.photo_code[pool[i]])
                if (face, label) not in self.forbidden and (photo not in best or score[i] > best[photo][0]):
                    best[photo] = (float(score[i]), face)
            near = [face for _, face in best.values()]
            self.cluster[near] = label

    # -- the person's decisions ------------------------------------------------------------------

    def move(self, row: int, cluster: int) -> None:
        """A person put face ``row`` in ``cluster`` (NONE: out of any): kept, and its old cluster
        is forbidden to it from now on."""
        old = int(self.cluster[row])
        if old not in (NONE, cluster):
            self.forbidden.add((row, old))
        if cluster != NONE:
            self.forbidden.discard((row, cluster))
            same_photo = [
                i for i in self.rows_of[int(self.photo_code[row])] if i != row and self.cluster[i] == cluster
            ]
            for i in same_photo:  # the person's word wins over the clustering's
                self.cluster[i] = NONE
                self.forbidden.add((int(i), cluster))
        self.cluster[row] = cluster
        self.pin(row)

    def pin(self, row: int) -> None:
        self.placed[row] = True

    def merge(self, keep: int, other: int) -> None:
        """A person merged ``other`` into ``keep``: of two faces of one photo, ``keep``'s stays."""
        keep_photos = set(self.photo_code[self._members(keep)].tolist())
        for i in self._members(other):
            if int(self.photo_code[i]) in keep_photos:
                self.cluster[i] = NONE
            else:
                self.cluster[i] = keep
        self.forbidden = {(face, keep if c == other else c) for face, c in self.forbidden}
        self.apart = {pair for pair in self.apart if other not in pair}

    def keep_apart(self, a: int, b: int) -> None:
        self.apart.add(frozenset((a, b)))

    def recluster(self, fixed: set[int], progress: Callable[[int, int], None] | None = None) -> None:
        """Cluster every face again, best photos first, keeping the clusters in ``fixed`` (named
        by a person), every cluster a person acted on (kept apart, moved a face out of), and
        every pinned face where they are."""
        fixed = fixed | {c for pair in self.apart for c in pair} | {c for _, c in self.forbidden}
        keep = np.isin(self.cluster[: self.count], list(fixed)) | self.placed[: self.count]
        self.cluster[: self.count][~keep] = NONE
        photos: dict[int, list[int]] = {}
        for i in np.flatnonzero(~keep):
            photos.setdefault(int(self.photo_code[i]), []).append(int(i))
        order = sorted(photos.values(), key=lambda rows: -float(self.quality[rows].max()))
        for done, rows in enumerate(order):
            if progress is not None:
                progress(done, len(order))
            self._place(rows)
        if progress is not None:
            progress(len(order), len(order))


def _words(dimension: int) -> int:
    return -(-dimension // 64)


def _codes(vectors: FloatArray) -> NDArray[np.uint64]:
    """Each row's sign bits as uint64 words (shared/gallery/codes.py's bits, row-major here: the
    clustering compares one query with a subset of rows)."""
    packed = sign_bytes(vectors)
    padded = np.zeros((len(packed), _words(vectors.shape[1]) * 8), np.uint8)
    padded[:, : packed.shape[1]] = packed
    return padded.view(np.uint64)


def assignments(clustering: Clustering) -> NDArray[np.int64]:
    """Every face's cluster, row for row (NONE: unclustered)."""
    return clustering.cluster[: clustering.count].copy()
