"""The generated test video (testkit/video.py) is what its truth says: decoded back with PyAV
(frames, duration, keyframes at the cuts, rotation), and the worker's detector finds the faces
where the truth puts them."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray

from shared.contract import AnalysisOptions
from shared.settings import load_settings
from testkit.photos import encode
from testkit.video import (
    PEOPLE,
    FoundTrack,
    Scene,
    VideoTruth,
    boxes_of,
    default_scene,
    displayed,
    long_scene,
    make_video,
    not_a_video,
    portrait,
    render,
    score_tracks,
    truncated_copy,
)
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.models.postprocess import box_iou


def decoded(path: Path) -> tuple[list[NDArray[np.uint8]], list[bool], list[float], list[int], float]:
    """Frames as displayed (RGB), keyframe flags, timestamps (s), rotations, the duration (s)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.duration is not None and stream.time_base is not None
        duration = float(stream.duration * stream.time_base)
    return (
        [displayed(np.asarray(f.to_ndarray(format="rgb24"), np.uint8), f.rotation) for f in frames],
        [f.key_frame for f in frames],
        [float(f.time) for f in frames if f.time is not None],
        [f.rotation for f in frames],
        duration,
    )


@pytest.fixture(scope="module")
def default_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, VideoTruth]:
    path = tmp_path_factory.mktemp("video") / "scene.mp4"
    return path, make_video(path)


def test_video_decodes_to_the_frames_and_keyframes_of_its_truth(
    default_video: tuple[Path, VideoTruth],
) -> None:
    path, truth = default_video
    frames, keys, times, rotations, duration = decoded(path)
    assert len(frames) == truth.frames == 60
    assert duration == pytest.approx(6.0) == truth.duration_s
    assert times == pytest.approx([i / 10 for i in range(60)])
    assert [i for i, key in enumerate(keys) if key] == list(truth.keyframes) == list(truth.shot_starts)
    assert truth.shot_starts == (0, 15, 25, 40)
    assert set(rotations) == {0}
    assert frames[0].shape == (360, 640, 3)
    # The encoding is close to the rendered frames (the truth's pixels).
    for index, (pixels, _) in enumerate(render(default_scene())):
        if index % 10 == 0:
            assert np.abs(frames[index].astype(int) - pixels).mean() < 3


def test_truth_has_one_track_per_person_and_shot(default_video: tuple[Path, VideoTruth]) -> None:
    _, truth = default_video
    tracks = [(t.label, t.first, t.last) for t in truth.tracks()]
    assert tracks == [
        ("t1-0", 0, 14),
        ("t1-3", 0, 14),
        ("t1-5", 15, 24),
        ("t1-0", 25, 39),
        ("yaoming", 25, 39),
        ("t1-1", 40, 59),
        ("t1-4", 40, 59),
    ]
    assert truth.tracks()[2].start_s == 1.5 and truth.tracks()[2].end_s == 2.4
    # Box heights follow the scene's (first and last frame of the zoom on t1-5).
    zoom = [boxes_of(truth.faces[i])[0] for i in (15, 24)]
    assert [b[3] - b[1] for b in zoom] == pytest.approx([110, 150], abs=1.5)
    assert truth.frame_at(1.55) == 15


def test_video_is_the_same_bytes_every_time(default_video: tuple[Path, VideoTruth], tmp_path: Path) -> None:
    path, _ = default_video
    make_video(tmp_path / "again.mp4")
    assert (tmp_path / "again.mp4").read_bytes() == path.read_bytes()


def test_rotated_video_stores_turned_frames_and_says_how_to_show_them(tmp_path: Path) -> None:
    scene = default_scene(rotation=90, codec="mpeg4")
    truth = make_video(tmp_path / "portrait.mp4", scene)
    frames, keys, _, rotations, _ = decoded(tmp_path / "portrait.mp4")
    with av.open(str(tmp_path / "portrait.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("mpeg4", 640, 360)
    assert set(rotations) == {-90}
    assert frames[0].shape == (640, 360, 3)  # displayed: portrait
    assert [i for i, key in enumerate(keys) if key] == list(truth.keyframes)
    for index, (pixels, _) in enumerate(render(scene)):
        if index % 10 == 0:
            assert np.abs(frames[index].astype(int) - pixels).mean() < 3


def test_long_scene_has_a_keyframe_every_two_seconds_and_at_cuts(tmp_path: Path) -> None:
    scene = long_scene(12, fps=5)
    truth = make_video(tmp_path / "long.mp4", scene)
    _, keys, _, _, duration = decoded(tmp_path / "long.mp4")
    assert truth.frames == len(keys) == 60 and duration == pytest.approx(12.0)
    assert [i for i, key in enumerate(keys) if key] == list(truth.keyframes)
    assert set(range(0, 60, 10)) <= set(truth.keyframes) and set(truth.shot_starts) <= set(truth.keyframes)


def test_truncated_and_non_video_files_do_not_decode_whole(
    default_video: tuple[Path, VideoTruth], tmp_path: Path
) -> None:
    path, truth = default_video
    # The index comes last by default: half a file has none and does not open.
    with pytest.raises(av.error.InvalidDataError):
        av.open(str(truncated_copy(path, tmp_path / "half.mp4")))
    # With the index first, half a file opens, and its frames run out early.
    make_video(tmp_path / "streamable.mp4", faststart=True)
    cut = truncated_copy(tmp_path / "streamable.mp4", tmp_path / "cut.mp4")
    with av.open(str(cut)) as container:
        assert container.streams.video[0].frames == truth.frames
        frames = container.decode(video=0)
        decoded_frames = 0
        with pytest.raises(av.error.InvalidDataError):  # the packet the cut went through
            for _ in frames:
                decoded_frames += 1
        assert 0 < decoded_frames < truth.frames
    with pytest.raises(av.error.InvalidDataError):
        av.open(str(not_a_video(tmp_path / "notes.mp4")))


@pytest.mark.slow
def test_detector_finds_each_face_where_the_truth_puts_it(default_video: tuple[Path, VideoTruth]) -> None:
    path, truth = default_video
    settings = load_settings(profile="insightface", detectors="scrfd", recognizer="arcface", attributes="")
    analyzer = load_analyzer(settings, Device("cpu"))
    try:
        frames = decoded(path)[0]
        picked = [0, 14, 15, 24, 30, 40, 50, 59]  # each shot's ends and the crossing
        results = analyzer.analyze([encode(frames[i]) for i in picked], AnalysisOptions())
        for index, result in zip(picked, results, strict=True):
            expected = boxes_of(truth.faces[index])
            found = np.array([face.bbox for face in result.faces]).reshape(-1, 4)
            assert len(found) == len(expected), index
            assert box_iou(expected, found).max(axis=1).min() > 0.75, index
        # The enrollment photo is the pasted crop: one face.
        assert [
            len(r.faces) for r in analyzer.analyze([portrait(label) for label in PEOPLE], AnalysisOptions())
        ] == [1] * len(PEOPLE)
    finally:
        analyzer.close()


def test_scene_that_leaves_the_frame_is_refused() -> None:
    far = Scene((320, 240), 10, (default_scene().shots[0],))
    with pytest.raises(AssertionError, match="leaves the 320x240 frame"):
        list(render(far))


def test_tracks_are_scored_against_the_truth_by_their_best_frame(
    default_video: tuple[Path, VideoTruth],
) -> None:
    _, truth = default_video
    perfect = [
        FoundTrack(t.start_s, t.end_s, t.start_s, truth.faces[t.first][i].box, t.label)
        for t in truth.tracks()
        for i, face in enumerate(truth.faces[t.first])
        if face.label == t.label
    ]
    score = score_tracks(truth, perfect, tolerance_s=0.5)
    assert (score.truth_tracks, score.found_tracks, score.tracks_per_person) == (7, 7, 1.0)
    assert (score.fragments, score.missed, score.switches, score.false_tracks, score.misnamed) == (
        0,
        0,
        0,
        0,
        0,
    )
    # t1-0 of the first shot split in two, t1-3 named as yaoming, t1-5's track run on into the
    # next shot (a switch across the cut), yaoming's lost, one track on the background.
    first, t1_3, t1_5 = perfect[0], perfect[1], perfect[2]
    worse = [
        FoundTrack(0.0, 0.7, 0.0, first.best_box, "t1-0"),
        FoundTrack(0.8, 1.4, 1.4, truth.faces[14][0].box, None),
        FoundTrack(t1_3.start_s, t1_3.end_s, t1_3.best_time_s, t1_3.best_box, "yaoming"),
        FoundTrack(t1_5.start_s, 3.5, t1_5.best_time_s, t1_5.best_box, "t1-5"),
        *[t for t in perfect[3:] if t.subject != "yaoming"],
        FoundTrack(0.0, 1.0, 0.5, (0, 0, 20, 20), None),
    ]
    score = score_tracks(truth, worse, tolerance_s=0.5)
    assert score.matched["t1-0@0"] == 2 and score.matched["yaoming@25"] == 0
    assert (score.fragments, score.missed, score.switches, score.false_tracks) == (1, 1, 1, 1)
    assert (score.named, score.misnamed) == (6, 1)
    assert score.tracks_per_person == pytest.approx(7 / 6)
