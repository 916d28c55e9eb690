"""worker/video.py's Identify: a video's tracks named from a collection, from their best frames'
vector, tracks on screen together never named alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.contract import RecognizerInfo, Track, TrackFace
from shared.recognition import Match
from worker.video import Identify, overlapping

RECOGNIZER = RecognizerInfo("arcface", "w600k_mbf", "1", "research", 4)


def track(start_s: float, end_s: float, vec: list[float]) -> Track:
    face = TrackFace(start_s, (0.0, 0.0, 1.0, 1.0), 0.9, 0.5, b"")
    box = (0.0, 0.0, 1.0, 1.0)
    return Track(start_s, end_s, 2, face, np.array(vec, np.float32).tobytes(), box, box)


@dataclass
class Gallery:
    """Two subjects: ann (the query's first component) and annie, who looks like everyone a little
    (0.6, never more than ann)."""

    def recognizer_of(self, name: str) -> RecognizerInfo | None:
        return RECOGNIZER

    def search(self, collection: str, queries: np.ndarray, limit: int) -> list[list[Match]]:
        found = []
        for query in queries:
            ann = float(query[0])
            matches = [Match("ann", ann), Match("annie", min(0.6, ann))]
            found.append(sorted(matches, key=lambda m: -m.similarity)[:limit])
        return found


def test_tracks_that_overlap_in_time_are_grouped_chained() -> None:
    spans = [(0, 2), (1, 3), (2.5, 4), (5, 6)]
    tracks = [track(start, end, [1, 0, 0, 0]) for start, end in spans]
    assert overlapping(tracks) == [[0, 1, 2], [3]]


def test_tracks_on_screen_together_get_different_subjects_and_apart_the_same() -> None:
    identify = Identify(Gallery(), RECOGNIZER)  # type: ignore[arg-type]
    seen = [(0, 2, 0.9), (1, 3, 0.8), (5, 6, 0.7), (7, 8, 0.2)]
    tracks = [track(start, end, [ann, 0, 0, 0]) for start, end, ann in seen]
    named = identify(tracks, "c", threshold=0.5)
    # Together: ann goes where the total is highest, the other track gets its next best that passes.
    assert [(t.subject, t.similarity) for t in named] == [
        ("ann", 0.9),
        ("annie", 0.6),
        ("ann", 0.7),  # later, alone: ann again
        (None, 0.2),  # nobody reaches the threshold: unnamed, with the best similarity
    ]
