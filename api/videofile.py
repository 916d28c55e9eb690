"""An uploaded video file: probed, checked against the limits, cut into segments at keyframes.

PyAV (FFmpeg) demuxes packets and their keyframe flags without decoding them; a segment is the
packets from one keyframe to the next chosen one, remuxed (copied, not re-encoded) into a small
Matroska file that keeps the stream's timestamps, so a worker decodes only its own segment and
knows each frame's time in the whole video. Only the first frame is decoded here: it proves the
stream decodes and carries the rotation (the display matrix). docs/video.md.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from shared.errors import InvalidVideo, LimitExceeded

# The container each segment is remuxed into: Matroska holds every codec FFmpeg demuxes and
# keeps the source's timestamps.
SEGMENT_FORMAT = "matroska"


@dataclass(frozen=True, slots=True)
class VideoLimits:
    max_duration_s: float
    max_pixels: int
    max_frames: int


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What the probe read: upright size, duration, frame count, rotation, keyframe times."""

    width: int
    height: int
    duration_s: float
    frames: int  # the stream's frames (its packets)
    rotation: int  # degrees counterclockwise to turn decoded frames upright (PyAV's frame.rotation)
    keyframes: tuple[float, ...]  # seconds, in demux order


@dataclass(frozen=True, slots=True)
class Segment:
    index: int
    start_s: float
    end_s: float


def _seconds(value: int | None, base: Fraction | None) -> float | None:
    return None if value is None or base is None else float(value * base)


def probe(path: Path, limits: VideoLimits) -> VideoInfo:
    """Read the file's one video stream; InvalidVideo when it has none or it does not decode,
    LimitExceeded past a limit (each named)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InvalidVideo("the file has no video stream")
            stream = container.streams.video[0]
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                raise InvalidVideo(f"a still image ({stream.codec_context.name}), not a video")
            _check_segment_codec(stream)
            width, height = stream.codec_context.width, stream.codec_context.height
            if width * height > limits.max_pixels:
                raise LimitExceeded(
                    f"a {width}x{height} frame is more than max_video_pixels={limits.max_pixels}"
                )
            header_s = container.duration / 1_000_000 if container.duration else 0.0
            _check_duration(header_s, limits)
            keyframes: list[float] = []
            frames, end_s = 0, 0.0
            for packet in container.demux(stream):
                time_s = _seconds(packet.pts, packet.time_base)
                if time_s is None:
                    continue  # the demuxer's flush packet
                frames += 1
                if frames > limits.max_frames:
                    raise LimitExceeded(f"more than max_video_frames={limits.max_frames} frames")
                end_s = max(end_s, time_s + (_seconds(packet.duration, packet.time_base) or 0.0))
                if packet.is_keyframe:
                    keyframes.append(time_s)
            declared = stream.frames  # from the container's index; 0 where it keeps none
        rotation = _first_frame_rotation(path)
    except av.FFmpegError as exc:
        raise InvalidVideo(f"the file is not a video FFmpeg can read ({type(exc).__name__})") from None
    duration_s = max(end_s, header_s)
    _check_duration(duration_s, limits)
    if frames == 0 or not keyframes:
        raise InvalidVideo("the video stream has no frames")
    if declared and frames < declared:
        raise InvalidVideo(f"the file is truncated: its index lists {declared} frames, {frames} are in it")
    upright = (height, width) if rotation % 180 else (width, height)
    return VideoInfo(*upright, round(duration_s, 3), frames, rotation, tuple(keyframes))


def _check_segment_codec(stream: av.video.stream.VideoStream) -> None:
    """The stream's codec must fit a segment's container (Matroska holds nearly all)."""
    try:
        _, output, _ = _open_segment(stream)
    except ValueError:
        raise InvalidVideo(f"video codec {stream.codec_context.name!r} cannot be cut into segments") from None
    output.close()


def _check_duration(duration_s: float, limits: VideoLimits) -> None:
    if duration_s > limits.max_duration_s:
        raise LimitExceeded(
            f"a video of {duration_s:.1f} s is longer than max_video_duration_s={limits.max_duration_s:g}"
        )


def _first_frame_rotation(path: Path) -> int:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return round(frame.rotation / 90) * 90 % 360
    raise InvalidVideo("no frame of the video stream decodes")


def plan_segments(keyframes: tuple[float, ...], duration_s: float, target_s: float) -> list[Segment]:
    """Segments of at least ``target_s`` (the last may be shorter), each starting at a keyframe:
    a keyframe starts a new segment once the current one is ``target_s`` long."""
    starts = [keyframes[0]]
    for time_s in keyframes[1:]:
        if time_s - starts[-1] >= target_s:
            starts.append(time_s)
    ends = [*starts[1:], max(duration_s, starts[-1])]
    return [Segment(i, round(a, 6), round(b, 6)) for i, (a, b) in enumerate(zip(starts, ends, strict=True))]


def analysed_frames(info: VideoInfo, fps: float) -> int:
    """The frames the workers will analyse (an estimate for progress): every one with fps 0."""
    if fps <= 0:
        return info.frames
    return min(info.frames, math.ceil(info.duration_s * fps))


def cut_segments(path: Path, segments: list[Segment]) -> Iterator[tuple[bytes, int]]:
    """Each segment's packets remuxed into a file of its own, in order, one in memory at a time,
    with its count of packets (frames: a worker that decodes fewer found the data corrupt). A
    packet belongs to the segment whose start its demux position has passed (a segment starts
    at its keyframe packet)."""
    starts = {segment.start_s for segment in segments[1:]}
    try:
        with av.open(str(path)) as source:
            stream = source.streams.video[0]
            buffer, output, copy = _open_segment(stream)
            packets = 0
            for packet in source.demux(stream):
                time_s = _seconds(packet.pts, packet.time_base)
                if time_s is None:
                    continue
                if packet.is_keyframe and round(time_s, 6) in starts:
                    output.close()
                    yield buffer.getvalue(), packets
                    buffer, output, copy = _open_segment(stream)
                    packets = 0
                packet.stream = copy
                output.mux(packet)
                packets += 1
            output.close()
            yield buffer.getvalue(), packets
    except av.FFmpegError as exc:
        raise InvalidVideo(f"the video could not be cut into segments ({type(exc).__name__})") from None


def _open_segment(
    stream: av.video.stream.VideoStream,
) -> tuple[io.BytesIO, av.container.OutputContainer, av.video.stream.VideoStream]:
    buffer = io.BytesIO()
    output = av.open(buffer, "w", format=SEGMENT_FORMAT)
    copy = output.add_stream_from_template(stream)
    return buffer, output, copy
