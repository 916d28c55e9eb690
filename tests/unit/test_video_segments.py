"""api/videofile.py (probe, limits, keyframe segments) and worker/video.py's frame sampling, on
videos filmed with PyAV from the package photos (testkit/video.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from api.videofile import VideoLimits, analysed_frames, cut_segments, plan_segments, probe
from shared.contract import AnalysisOptions, VideoSegmentJob
from shared.errors import InvalidVideo, LimitExceeded
from testkit.photos import GROUP_PHOTOS
from testkit.video import default_scene, make_video, not_a_video, truncated_copy
from worker.video import THUMBNAIL_SIDE, face_crop, sampled_frames, thumbnail

LIMITS = VideoLimits(max_duration_s=60, max_pixels=1920 * 1080, max_frames=1000)


def segment_job(
    data: bytes, index: int, start_s: float, end_s: float, fps: float, rotation: int = 0, frames: int = 0
) -> VideoSegmentJob:
    return VideoSegmentJob("v", index, data, start_s, end_s, frames, fps, rotation, AnalysisOptions(), "r")


def test_segments_start_at_the_first_keyframe_past_the_target_length() -> None:
    plan = plan_segments((0.0, 0.8, 1.5, 2.4, 3.2), duration_s=4.0, target_s=1.0)
    assert [(s.start_s, s.end_s) for s in plan] == [(0.0, 1.5), (1.5, 3.2), (3.2, 4.0)]
    assert [(s.start_s, s.end_s) for s in plan_segments((0.0,), 4.0, 1.0)] == [(0.0, 4.0)]


def test_a_video_cut_at_keyframes_decodes_every_frame_once_and_samples_each_period_once(
    tmp_path: Path,
) -> None:
    scene = dataclasses.replace(default_scene(), keyframe_every=8)
    truth = make_video(tmp_path / "scene.mp4", scene)
    info = probe(tmp_path / "scene.mp4", LIMITS)
    assert (info.width, info.height, info.frames, info.rotation) == (640, 360, 60, 0)
    assert info.duration_s == pytest.approx(6.0, abs=0.11)
    assert info.keyframes == tuple(k / 10 for k in truth.keyframes)
    plan = plan_segments(info.keyframes, info.duration_s, 1.0)
    assert [s.start_s for s in plan] == [0.0, 1.5, 2.5, 4.0, 5.6]
    pieces = [data for data, _ in cut_segments(tmp_path / "scene.mp4", plan)]
    assert [packets for _, packets in cut_segments(tmp_path / "scene.mp4", plan)] == [15, 10, 15, 16, 4]
    every = [
        t
        for s, data in zip(plan, pieces, strict=True)
        for t, _ in sampled_frames(data, segment_job(data, s.index, s.start_s, s.end_s, 0), LIMITS.max_pixels)
    ]
    assert every == pytest.approx([i / 10 for i in range(60)])
    sampled = [
        t
        for s, data in zip(plan, pieces, strict=True)
        for t, _ in sampled_frames(data, segment_job(data, s.index, s.start_s, s.end_s, 2), LIMITS.max_pixels)
    ]
    assert sampled == pytest.approx([i / 2 for i in range(12)])
    assert analysed_frames(info, 2) == 12 and analysed_frames(info, 0) == 60


def test_a_rotated_video_is_probed_and_sampled_upright(tmp_path: Path) -> None:
    make_video(tmp_path / "rotated.mp4", default_scene(rotation=90))
    info = probe(tmp_path / "rotated.mp4", LIMITS)
    assert (info.width, info.height) == (360, 640) and info.rotation == 270  # 90 clockwise
    ((piece, _),) = cut_segments(tmp_path / "rotated.mp4", plan_segments(info.keyframes, info.duration_s, 60))
    job = segment_job(piece, 0, 0.0, info.duration_s, 1, info.rotation)
    _, first = next(sampled_frames(piece, job, LIMITS.max_pixels))
    assert first.shape == (640, 360, 3)


def test_limits_and_files_that_are_not_videos_are_refused_by_name(tmp_path: Path) -> None:
    make_video(tmp_path / "scene.mp4")
    for limits, name in (
        (dataclasses.replace(LIMITS, max_duration_s=5), "max_video_duration_s"),
        (dataclasses.replace(LIMITS, max_pixels=640 * 359), "max_video_pixels"),
        (dataclasses.replace(LIMITS, max_frames=59), "max_video_frames"),
    ):
        with pytest.raises(LimitExceeded, match=name):
            probe(tmp_path / "scene.mp4", limits)
    with pytest.raises(InvalidVideo):
        probe(not_a_video(tmp_path / "text.mp4"), LIMITS)
    with pytest.raises(InvalidVideo, match="still image"):  # FFmpeg reads a photo as one frame
        probe(GROUP_PHOTOS["yaoming.jpg"], LIMITS)
    with pytest.raises(InvalidVideo):
        probe(truncated_copy(tmp_path / "scene.mp4", tmp_path / "cut.mp4"), LIMITS)


def test_a_truncated_file_with_its_index_first_is_refused_and_a_truncated_segment_fails(
    tmp_path: Path,
) -> None:
    # Its index (moov) before the frames, as for streaming: the file opens, and the index says
    # how many frames should follow.
    make_video(tmp_path / "scene.mp4", faststart=True)
    with pytest.raises(InvalidVideo, match="truncated"):
        probe(truncated_copy(tmp_path / "scene.mp4", tmp_path / "cut.mp4"), LIMITS)
    info = probe(tmp_path / "scene.mp4", LIMITS)
    ((piece, packets),) = cut_segments(
        tmp_path / "scene.mp4", plan_segments(info.keyframes, info.duration_s, 60)
    )
    assert packets == 60
    broken = piece[: len(piece) // 3]
    with pytest.raises(InvalidVideo, match="segment 0"):
        list(sampled_frames(broken, segment_job(broken, 0, 0.0, 6.0, 0, frames=packets), LIMITS.max_pixels))


def test_a_face_crop_is_a_small_copy_of_its_frame_and_its_thumbnail_a_jpeg_of_it() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    # A small face: the crop is the box with a quarter of its size as margin, its pixels copied
    # (a view would keep the whole frame alive with the track).
    small = face_crop(frame, (100.0, 200.0, 140.0, 240.0))
    assert small.shape == (61, 61, 3) and not np.shares_memory(small, frame)
    assert np.array_equal(small, frame[190:251, 90:151])
    # A face across a narrow frame: whole rows, a contiguous slice of it, still copied.
    narrow = np.ascontiguousarray(frame[:120, :100])
    rows = face_crop(narrow, (0.0, 10.0, 99.0, 30.0))
    assert rows.shape == (31, 100, 3) and not np.shares_memory(rows, narrow)
    # A large face is shrunk to THUMBNAIL_SIDE on its longer side.
    large = face_crop(frame, (300.0, 100.0, 700.0, 600.0))
    assert max(large.shape[:2]) == THUMBNAIL_SIDE and not np.shares_memory(large, frame)
    decoded = simplejpeg.decode_jpeg(thumbnail(large))
    assert decoded.shape == large.shape
