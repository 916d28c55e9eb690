"""A video's segments in the worker: decode one segment, analyse its sampled frames, follow the
faces (worker/tracking.py), record the segment with its video (shared/videos.py); the worker that
records the last segment joins every segment's tracks, identifies them and finishes the video.
docs/video.md."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import av
import cv2
import msgspec
import numpy as np
import simplejpeg
from numpy.typing import NDArray

from shared.contract import (
    AnalysisOptions,
    ErrorInfo,
    ImageResult,
    Job,
    JobResult,
    RecognizerInfo,
    Track,
    VideoJob,
    VideoResult,
    VideoSegmentJob,
    VideoSegmentResult,
)
from shared.errors import InvalidVideo, LimitExceeded
from shared.gallery import Gallery, check_recognizer
from shared.recognition import default_threshold
from shared.videos import VideoProgress
from worker.imaging.decode import RGBImage
from worker.recognition import assign
from worker.tracking import Observation, Tracker, join_segments, max_gap_s

log = logging.getLogger("facerest.worker")

# Frames analysed together: their faces are embedded in one batched call (each frame is
# detected on its own).
FRAMES_PER_CALL = 8
# A thumbnail: the face's box grown by this share of its size on each side, at most this many
# px on its longer side.
THUMBNAIL_MARGIN = 0.25
THUMBNAIL_SIDE = 160
# How often a running segment asks whether its video still exists (a cancellation).
CANCEL_CHECK_S = 1.0
# Partial tracks are joined at most this often per video (each join reads every segment done).
PUBLISH_EVERY_S = 1.0
# Times are compared with this slack: frame times are rationals printed as floats.
EPSILON_S = 1e-6


class FrameAnalyzer(Protocol):
    """What a segment needs of worker/analyzer.py's FaceAnalyzer."""

    def run_frames(
        self, frames: Sequence[RGBImage], options: AnalysisOptions, request_id: str = ""
    ) -> list[ImageResult]: ...


class VideoJobs(Protocol):
    """What a video needs of shared/jobs.py's JobStore."""

    def load_input(self, job_id: str) -> Job | None: ...

    def finish(self, job_id: str, outcome: JobResult | ErrorInfo, worker: str = "") -> bool: ...

    def mark_started(self, job_id: str, worker: str) -> None: ...


class Videos(Protocol):
    """What a segment needs of shared/videos.py's VideoStore."""

    def exists(self, video_id: str) -> bool: ...

    def record(self, result: VideoSegmentResult) -> int: ...

    def fail(self, video_id: str, error: ErrorInfo) -> None: ...

    def may_publish(self, video_id: str, every_s: float) -> bool: ...

    def publish(self, video_id: str, joined_from: int, tracks: list[Track]) -> None: ...

    def segment_results(self, video_id: str, segments: int) -> list[VideoSegmentResult]: ...

    def progress(self, video_id: str, with_tracks: bool = True) -> VideoProgress | None: ...

    def finished(self, video_id: str, segments: int) -> None: ...


class Cancelled(Exception):
    """The segment's video was deleted while the segment ran."""


def upright(pixels: RGBImage, rotation: int) -> RGBImage:
    """Frame pixels turned ``rotation`` degrees counterclockwise (the display matrix's angle)."""
    turns = (rotation // 90) % 4
    return pixels if turns == 0 else np.ascontiguousarray(np.rot90(pixels, turns))


def sampled_frames(data: bytes, job: VideoSegmentJob, max_pixels: int) -> Iterator[tuple[float, RGBImage]]:
    """The segment's frames to analyse, upright, with their times in the whole video: every frame
    with fps 0, else the first frame at or after each multiple of 1/fps (counted from the video's
    start, so segments neither skip nor repeat a sample at their borders)."""
    next_s = job.start_s
    if job.fps > 0:
        next_s = np.ceil(job.start_s * job.fps - EPSILON_S) / job.fps
    where = f"segment {job.index} ({job.start_s:.1f} s to {job.end_s:.1f} s)"
    decoded = 0
    try:
        with av.open(io.BytesIO(data), "r") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                decoded += 1
                if frame.time is None:
                    continue
                time_s = float(frame.time)
                if time_s < job.start_s - EPSILON_S or time_s >= job.end_s - EPSILON_S:
                    continue  # an open GOP's frames that belong to the neighbour segment
                if job.fps > 0 and time_s < next_s - EPSILON_S:
                    continue
                if frame.width * frame.height > max_pixels:
                    raise LimitExceeded(f"a {frame.width}x{frame.height} frame is more than max_video_pixels")
                if job.fps > 0:
                    next_s = (np.floor(time_s * job.fps + EPSILON_S) + 1) / job.fps
                pixels: RGBImage = np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)
                yield time_s, upright(pixels, job.rotation)
    except av.FFmpegError as exc:
        raise InvalidVideo(
            f"{where} does not decode: the file is corrupt or truncated ({type(exc).__name__})"
        ) from None
    # FFmpeg's decoders skip what they cannot read: fewer frames than packets is corrupt data.
    if decoded < job.frames:
        raise InvalidVideo(f"{where} is corrupt or truncated: {decoded} of its {job.frames} frames decode")


def face_crop(pixels: RGBImage, box: tuple[float, float, float, float]) -> RGBImage:
    """The face in ``box`` (frame px) with a margin, at most THUMBNAIL_SIDE px: a copy, never a
    view (a view would keep its whole frame alive as long as its track keeps the crop)."""
    x1, y1, x2, y2 = box
    grow_x, grow_y = (x2 - x1) * THUMBNAIL_MARGIN, (y2 - y1) * THUMBNAIL_MARGIN
    height, width = pixels.shape[:2]
    left, top = max(0, int(x1 - grow_x)), max(0, int(y1 - grow_y))
    right, bottom = min(width, int(x2 + grow_x) + 1), min(height, int(y2 + grow_y) + 1)
    crop = pixels[top:bottom, left:right]
    scale = THUMBNAIL_SIDE / max(crop.shape[:2])
    if scale >= 1:
        return crop.copy()
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), np.uint8)


def thumbnail(crop: RGBImage) -> bytes:
    """A face crop as the JPEG a track shows: encoded once per track, for its best frame only."""
    return bytes(simplejpeg.encode_jpeg(np.ascontiguousarray(crop), quality=85, colorspace="RGB"))


def observations(time_s: float, pixels: RGBImage, image: ImageResult) -> list[Observation]:
    found = []
    for face in image.faces:
        if face.vec is None:
            continue
        vec: NDArray[np.float32] = np.frombuffer(face.vec, np.float32)
        quality = 0.0 if face.quality is None else face.quality.quality
        found.append(Observation(time_s, face.bbox, face.prob, quality, vec, face_crop(pixels, face.bbox)))
    return found


def follow(
    tracker: Tracker, frames: Sequence[tuple[float, RGBImage]], results: Sequence[ImageResult]
) -> None:
    """Feed ``tracker`` the faces of analysed frames (time, pixels), in time order."""
    for (time_s, pixels), image in zip(frames, results, strict=True):
        tracker.add_frame(time_s, observations(time_s, pixels, image))


def overlapping(tracks: Sequence[Track]) -> list[list[int]]:
    """The tracks (their indexes) in groups that overlap in time, chained: two faces on screen
    together are two people."""
    groups: list[list[int]] = []
    end = -1.0
    for index in sorted(range(len(tracks)), key=lambda i: tracks[i].start_s):
        if not groups or tracks[index].start_s > end:
            groups.append([])
            end = tracks[index].end_s
        groups[-1].append(index)
        end = max(end, tracks[index].end_s)
    return groups


# Candidates searched per track: enough for the one-subject-per-face rule among the tracks that
# overlap it (each may need its next-best subject).
MAX_CANDIDATES = 16


@dataclass(frozen=True, slots=True)
class Identify:
    """Names tracks from a collection of the gallery, as /recognize names the faces of a photo:
    tracks on screen together get different subjects (the best assignment, worker/recognition.py)."""

    gallery: Gallery
    recognizer: RecognizerInfo

    def __call__(self, tracks: list[Track], collection: str, threshold: float | None) -> list[Track]:
        if not tracks:
            return tracks
        stored = self.gallery.recognizer_of(collection)
        if stored is None:
            return tracks  # no collection (yet): nobody to name
        check_recognizer(collection, stored, self.recognizer)
        cut = default_threshold(self.recognizer.key) if threshold is None else threshold
        groups = overlapping(tracks)
        limit = min(MAX_CANDIDATES, max(len(group) for group in groups))
        queries = np.stack([np.frombuffer(track.vec, np.float32) for track in tracks])
        candidates = self.gallery.search(collection, queries, limit)
        named = list(tracks)
        for group in groups:
            chosen = assign([candidates[i] for i in group], cut)
            for index, pick in zip(group, chosen, strict=True):
                best = pick or (candidates[index][0] if candidates[index] else None)
                named[index] = msgspec.structs.replace(
                    tracks[index],
                    subject=None if pick is None else pick.subject,
                    similarity=None if best is None else round(best.similarity, 5),
                )
        return named


@dataclass(frozen=True, slots=True)
class VideoWork:
    """One worker's share of videos: its segments and the settling of the videos they belong to."""

    analyzer: FrameAnalyzer
    videos: Videos
    jobs: VideoJobs
    name: str
    max_pixels: int
    identify: Callable[[list[Track], str, float | None], list[Track]] | None = None

    def segment(self, job: VideoSegmentJob, start: float) -> VideoSegmentResult:
        """Analyse a segment; InvalidVideo when it does not decode, Cancelled once its video is gone."""
        self.jobs.mark_started(job.video_id, self.name)
        tracker = Tracker(max_gap_s(job.fps), thumbnail)
        options = msgspec.structs.replace(job.options, extract_embedding=True, return_quality=True)
        batch: list[tuple[float, RGBImage]] = []
        frames = 0
        checked = time.monotonic()

        def analyse() -> None:
            follow(
                tracker,
                batch,
                self.analyzer.run_frames([pixels for _, pixels in batch], options, job.request_id),
            )
            batch.clear()

        for sample in sampled_frames(job.data, job, self.max_pixels):
            batch.append(sample)
            frames += 1
            if len(batch) == FRAMES_PER_CALL:
                analyse()
                if time.monotonic() - checked > CANCEL_CHECK_S:
                    checked = time.monotonic()
                    if not self.videos.exists(job.video_id):
                        raise Cancelled(job.video_id)
        if batch:
            analyse()
        took = round((time.perf_counter() - start) * 1000, 3)
        return VideoSegmentResult(
            job.video_id, job.index, job.start_s, frames, tracker.tracks(), self.name, took
        )

    def record(self, job: VideoSegmentJob, outcome: JobResult | ErrorInfo) -> None:
        """Keep a segment's outcome with its video (before the segment's job finishes, so that
        a worker dying between the two costs a re-run, never a lost segment), then settle it."""
        if isinstance(outcome, ErrorInfo):
            self.videos.fail(job.video_id, outcome)
        elif isinstance(outcome, VideoSegmentResult) and self.videos.record(outcome) < 0:
            return  # the video was deleted or expired
        self.settle(job.video_id)

    def settle(self, video_id: str) -> None:
        """Publish the tracks joined so far; finish the video once every segment is in (or one
        failed). Safe to run by any worker, any number of times."""
        video = self.jobs.load_input(video_id)
        progress = self.videos.progress(video_id, with_tracks=False)
        if not isinstance(video, VideoJob) or progress is None:
            return  # finished (its input is dropped then), deleted or expired
        if progress.failed is not None:
            self.jobs.finish(video_id, progress.failed, self.name)
            return
        complete = progress.segments_done >= video.segments
        if not complete and not self.videos.may_publish(video_id, PUBLISH_EVERY_S):
            return  # another worker joins the partial tracks now; the next segment, or the last, shows these
        results = self.videos.segment_results(video_id, progress.segments)
        tracks = join_segments([(r.start_s, r.tracks) for r in results], max_gap_s(video.fps))
        if video.collection is not None and self.identify is not None:
            tracks = self.identify(tracks, video.collection, video.threshold)
        if len(results) < video.segments:
            self.videos.publish(video_id, len(results), tracks)
            return
        frames = sum(result.frames for result in results)
        took = sum(result.took_ms for result in results)
        done = VideoResult(
            video_id=video_id,
            tracks=tracks,
            segments=video.segments,
            frames=frames,
            duration_s=progress.duration_s,
            collection=video.collection,
            embedding=video.embedding,
            worker=self.name,
            took_ms=took,
            threshold=video.threshold,
        )
        if self.jobs.finish(video_id, done, self.name):
            self.videos.finished(video_id, progress.segments)
            log.info(
                "video %s done: %d segments, %d frames, %d tracks",
                video_id,
                video.segments,
                frames,
                len(tracks),
            )
