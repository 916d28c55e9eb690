"""worker/tracking.py: following faces across frames and joining tracks cut at segment borders."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from worker.tracking import BEST_FRAMES, Observation, Tracker, join_segments, max_gap_s

DIM = 512


def person(seed: int) -> NDArray[np.float32]:
    """A person's embedding: random directions in 512 dimensions are nearly orthogonal."""
    vec = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return np.asarray(vec / np.linalg.norm(vec), np.float32)


def seen_as(base: NDArray[np.float32], noise: float, seed: int) -> NDArray[np.float32]:
    """``base`` seen in one frame: a little off, by ``noise``."""
    jitter = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    vec = base + noise * jitter / np.linalg.norm(jitter)
    return np.asarray(vec / np.linalg.norm(vec), np.float32)


def face(
    time_s: float, x: float, vec: NDArray[np.float32], quality: float = 0.8, prob: float = 0.9
) -> Observation:
    # The crop's bytes name its frame: the thumbnail tells which face was the track's best.
    crop = np.frombuffer(f"{time_s}".encode(), np.uint8).reshape(1, -1, 1)
    return Observation(time_s, (x, 100.0, x + 80.0, 200.0), prob, quality, vec, crop)


def new_tracker(encoded: list[bytes] | None = None) -> Tracker:
    """A Tracker whose thumbnails are the crops' bytes, each also appended to ``encoded``."""

    def thumbnail(crop: NDArray[np.uint8]) -> bytes:
        if encoded is not None:
            encoded.append(crop.tobytes())
        return crop.tobytes()

    return Tracker(max_gap_s(2), thumbnail)


ANN, BOB = person(1), person(2)


def test_two_people_walking_past_each_other_stay_two_tracks_with_one_thumbnail_each() -> None:
    encoded: list[bytes] = []
    tracker = new_tracker(encoded)
    for step in range(10):
        t = step * 0.5
        # Ann walks right, Bob left; they cross at step 5, boxes overlapping.
        tracker.add_frame(
            t,
            [
                face(t, 100 + 40 * step, seen_as(ANN, 0.5, step)),
                face(t, 500 - 40 * step, seen_as(BOB, 0.5, 100 + step)),
            ],
        )
    assert encoded == []  # 20 faces seen, none encoded yet
    tracks = tracker.tracks()
    assert [t.frames for t in tracks] == [10, 10]
    assert sorted(encoded) == sorted(t.best.thumbnail for t in tracks)  # one per track: its best
    ann = min(tracks, key=lambda t: t.first_box[0])
    assert ann.last_box[0] == 100 + 40 * 9  # Ann's track ends where Ann went, not Bob
    assert float(np.frombuffer(ann.vec, np.float32) @ ANN) > 0.9


def test_a_cut_putting_another_person_where_one_was_starts_a_new_track() -> None:
    tracker = new_tracker()
    tracker.add_frame(0.0, [face(0.0, 100, ANN)])
    tracker.add_frame(0.5, [face(0.5, 100, ANN)])
    tracker.add_frame(1.0, [face(1.0, 100, BOB)])  # same place, another face
    assert [t.frames for t in tracker.tracks()] == [2, 1]


def test_a_face_that_jumps_keeps_its_track_by_its_embedding_and_a_long_absence_ends_it() -> None:
    tracker = new_tracker()
    assert max_gap_s(2) == 1.0 and max_gap_s(0) == 1.0 and max_gap_s(0.5) == 4.0
    tracker.add_frame(0.0, [face(0.0, 100, ANN)])
    tracker.add_frame(0.5, [face(0.5, 600, seen_as(ANN, 0.6, 1))])  # moved far: no overlap
    tracker.add_frame(1.5, [face(1.5, 600, ANN)])  # missing from one frame: still the track
    tracker.add_frame(3.0, [face(3.0, 600, ANN)])  # missing 1.5 s: a new track
    assert [(t.start_s, t.end_s, t.frames) for t in tracker.tracks()] == [(0.0, 1.5, 3), (3.0, 3.0, 1)]


def test_the_best_face_and_the_identity_come_from_the_best_frames() -> None:
    tracker = new_tracker()
    # Eight good frames of Ann, then two of high prob but near-zero quality that look like Bob
    # (motion blur): the identity must stay Ann's, the thumbnail a good frame's.
    for step in range(8):
        t = step * 0.5
        tracker.add_frame(t, [face(t, 100, seen_as(ANN, 0.3, step), quality=0.5 + step * 0.05)])
    for step in (8, 9):
        t = step * 0.5
        blurred = seen_as(0.6 * ANN + 0.8 * BOB, 0.1, step)
        tracker.add_frame(t, [face(t, 100, blurred, quality=0.01, prob=0.99)])
    (track,) = tracker.tracks()
    assert track.frames == 10
    assert track.best.time_s == 3.5 and track.best.quality == 0.85 and track.best.thumbnail == b"3.5"
    assert BEST_FRAMES == 5
    identity = np.frombuffer(track.vec, np.float32)
    assert float(identity @ ANN) > 0.9 and float(identity @ BOB) < 0.2


def test_tracks_cut_at_a_segment_border_are_joined_and_others_are_not() -> None:
    first, second = new_tracker(), new_tracker()
    for t in (4.0, 4.5):
        first.add_frame(t, [face(t, 100, seen_as(ANN, 0.4, int(t * 10)))])
    for t in (5.0, 5.5, 6.0):
        # Ann goes on; Bob appears at once in the new segment.
        second.add_frame(t, [face(t, 110, seen_as(ANN, 0.4, int(t * 10))), face(t, 400, BOB)])
    joined = join_segments([(0.0, first.tracks()), (5.0, second.tracks())], max_gap_s(2))
    assert [(t.start_s, t.end_s, t.frames) for t in joined] == [(4.0, 6.0, 5), (5.0, 6.0, 3)]
    assert joined[0].first_box[0] == 100 and joined[0].last_box[0] == 110


def test_a_track_ending_long_before_the_border_is_not_joined() -> None:
    first, second = new_tracker(), new_tracker()
    first.add_frame(2.0, [face(2.0, 100, ANN)])
    second.add_frame(5.0, [face(5.0, 100, ANN)])
    joined = join_segments([(0.0, first.tracks()), (5.0, second.tracks())], max_gap_s(2))
    assert len(joined) == 2
