"""Face tracks in a video: follow faces across analysed frames, join tracks cut at segment borders.

Pure functions over typed observations (no models, no Redis), so each rule is unit-tested.
Boxes are in upright frame px; times in seconds of the whole video; vectors L2-normalised.

Two faces of consecutive analysed frames are one face when their embeddings agree
(``SAME_FACE``), or when their boxes overlap and the embeddings do not contradict it
(``OVERLAP_IOU`` with at least ``OVERLAP_SIMILARITY``): the box keeps a blurred or turned face
in its track, the embedding follows a face across a cut or a jump and refuses the overlap of two
people where a cut put one where the other was. A track's identity vector is the mean of its
``BEST_FRAMES`` best frames (quality x prob): one frame's embedding can be a blurred or turned
face, several good ones rarely all are.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from shared.contract import Track, TrackFace
from worker.models.postprocess import box_iou

Box = tuple[float, float, float, float]  # x1, y1, x2, y2, upright frame px
Thumbnail = Callable[[NDArray[np.uint8]], bytes]  # a face crop -> the bytes a track shows

# ArcFace-family cosines: the same person across frames of one video is 0.6 ... 0.95, two
# people rarely above 0.3 (docs/recognition.md's calibration); the margin either side is wide.
SAME_FACE = 0.45
OVERLAP_IOU = 0.3
OVERLAP_SIMILARITY = 0.2
BEST_FRAMES = 5
# A face missing from this many analysed frames in a row ends its track (at fps 2: 1 s)...
MISSED_FRAMES = 2
# ... but never less than this long (at high fps, or every frame, a blink of occlusion is
# several frames).
MIN_GAP_S = 1.0


@dataclass(frozen=True, slots=True)
class Observation:
    """One face in one analysed frame."""

    time_s: float
    box: Box
    prob: float
    quality: float  # 0 ... 1 (worker/quality.py)
    vec: NDArray[np.float32]  # L2-normalised
    # The face's pixels (a small copy, RGB), turned into the track's thumbnail if this is its
    # best frame: only then, once per track, not for every face of every frame. A track keeps
    # the crop of its best face alone (``_Open``).
    crop: NDArray[np.uint8] | None

    @property
    def score(self) -> float:
        return self.quality * self.prob


def max_gap_s(fps: float) -> float:
    """How long a face may be missing and still continue its track (fps 0: every frame)."""
    return max(MIN_GAP_S, MISSED_FRAMES / fps) if fps > 0 else MIN_GAP_S


def _overlaps(a: Sequence[Box], b: Sequence[Box]) -> NDArray[np.float64]:
    """IoU of every box of ``a`` with every box of ``b`` (the detectors' own box_iou)."""
    return box_iou(np.array(a, np.float64).reshape(-1, 4), np.array(b, np.float64).reshape(-1, 4))


def same_face(similarity: float, overlap: float) -> float | None:
    """The score of pairing two faces (higher is surer), None when they are not one face."""
    if similarity >= SAME_FACE or (overlap >= OVERLAP_IOU and similarity >= OVERLAP_SIMILARITY):
        return similarity + overlap
    return None


def _normalised(vec: NDArray[np.float32]) -> NDArray[np.float32]:
    norm = float(np.linalg.norm(vec))
    return np.asarray(vec / norm if norm > 0 else vec, np.float32)


@dataclass(slots=True)
class _Open:
    """A track being followed. Its observations are kept without their crops, but for ``top``:
    a crowd's tracks would otherwise hold several raw crops each until the segment ends."""

    top: Observation  # its best face so far, with its crop
    first: Observation
    last: Observation
    frames: int
    total: NDArray[np.float32]  # the sum of every frame's vector: what the next face is matched to
    best: list[tuple[float, int, Observation]] = field(default_factory=list)  # a min-heap by score

    @classmethod
    def of(cls, face: Observation, order: int) -> _Open:
        bare = dataclasses.replace(face, crop=None)
        return cls(face, bare, bare, 1, face.vec.copy(), [(face.score, order, bare)])

    def add(self, face: Observation, order: int) -> None:
        if face.score > self.top.score:
            self.top = face
        bare = dataclasses.replace(face, crop=None)
        self.last = bare
        self.frames += 1
        self.total = self.total + face.vec
        heapq.heappush(self.best, (face.score, order, bare))
        if len(self.best) > BEST_FRAMES:
            heapq.heappop(self.best)

    def track(self, thumbnail: Thumbnail) -> Track:
        kept = [face for _, _, face in self.best]
        weights = np.array([max(face.score, 1e-6) for face in kept], np.float32)
        vec = _normalised(np.sum([w * face.vec for w, face in zip(weights, kept, strict=True)], axis=0))
        top = self.top
        assert top.crop is not None  # the one observation that keeps its crop
        return Track(
            start_s=round(self.first.time_s, 3),
            end_s=round(self.last.time_s, 3),
            frames=self.frames,
            best=TrackFace(
                round(top.time_s, 3),
                tuple(round(v, 1) for v in top.box),  # type: ignore[arg-type]
                round(top.prob, 4),
                round(top.quality, 4),
                thumbnail(top.crop),
            ),
            vec=vec.tobytes(),
            first_box=self.first.box,
            last_box=self.last.box,
            weight=float(weights.sum()),
        )


def _pairs(scores: list[tuple[float, int, int]]) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, surest pair first."""
    used_a: set[int] = set()
    used_b: set[int] = set()
    chosen = []
    for _, a, b in sorted(scores, reverse=True):
        if a not in used_a and b not in used_b:
            used_a.add(a)
            used_b.add(b)
            chosen.append((a, b))
    return chosen


class Tracker:
    """Follows the faces of one segment's analysed frames, fed in time order; ``thumbnail``
    turns a track's best face crop into its thumbnail (worker/video.py: a JPEG)."""

    def __init__(self, gap_s: float, thumbnail: Thumbnail) -> None:
        self._gap_s = gap_s
        self._thumbnail = thumbnail
        self._open: list[_Open] = []
        self._closed: list[_Open] = []
        self._order = 0

    def add_frame(self, time_s: float, faces: Sequence[Observation]) -> None:
        still = [t for t in self._open if time_s - t.last.time_s <= self._gap_s]
        self._closed += [t for t in self._open if time_s - t.last.time_s > self._gap_s]
        self._open = still
        scores = []
        overlaps = _overlaps([t.last.box for t in self._open], [face.box for face in faces])
        for a, track in enumerate(self._open):
            mean = _normalised(track.total)
            for b, face in enumerate(faces):
                score = same_face(float(mean @ face.vec), float(overlaps[a, b]))
                if score is not None:
                    scores.append((score, a, b))
        matched = set()
        for a, b in _pairs(scores):
            self._order += 1
            self._open[a].add(faces[b], self._order)
            matched.add(b)
        for b, face in enumerate(faces):
            if b not in matched:
                self._order += 1
                self._open.append(_Open.of(face, self._order))

    def tracks(self) -> list[Track]:
        """Every track so far, by start time."""
        tracks = (t.track(self._thumbnail) for t in self._closed + self._open)
        return sorted(tracks, key=lambda t: (t.start_s, t.end_s))


def _merge(a: Track, b: Track) -> Track:
    """One track of ``a`` and its continuation ``b``."""
    vec_a = np.frombuffer(a.vec, np.float32)
    vec_b = np.frombuffer(b.vec, np.float32)
    vec = _normalised(np.asarray(a.weight * vec_a + b.weight * vec_b, np.float32))
    best = a.best if a.best.quality * a.best.prob >= b.best.quality * b.best.prob else b.best
    return Track(
        start_s=min(a.start_s, b.start_s),
        end_s=max(a.end_s, b.end_s),
        frames=a.frames + b.frames,
        best=best,
        vec=vec.tobytes(),
        first_box=a.first_box,
        last_box=b.last_box,
        weight=a.weight + b.weight,
    )


def join_segments(segments: Sequence[tuple[float, Sequence[Track]]], gap_s: float) -> list[Track]:
    """The tracks of a video's segments (each with its start time, in order) as one list: a
    track ending within ``gap_s`` before a segment's start and one of that segment starting
    within ``gap_s`` after it are one track when ``same_face`` says so (a face cut by the border)."""
    joined: list[Track] = []
    for border, tracks in segments:
        ending = [i for i, t in enumerate(joined) if border - gap_s <= t.end_s < border]
        starting = [j for j, t in enumerate(tracks) if border <= t.start_s <= border + gap_s]
        scores = []
        overlaps = _overlaps([joined[i].last_box for i in ending], [tracks[j].first_box for j in starting])
        for row, i in enumerate(ending):
            a = joined[i]
            for column, j in enumerate(starting):
                b = tracks[j]
                similarity = float(np.frombuffer(a.vec, np.float32) @ np.frombuffer(b.vec, np.float32))
                score = same_face(similarity, float(overlaps[row, column]))
                if score is not None and b.start_s - a.end_s <= gap_s:
                    scores.append((score, i, j))
        continued = set()
        for i, j in _pairs(scores):
            joined[i] = _merge(joined[i], tracks[j])
            continued.add(j)
        joined += [t for j, t in enumerate(tracks) if j not in continued]
    return sorted(joined, key=lambda t: (t.start_s, t.end_s))
