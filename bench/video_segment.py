"""One video segment through the worker's own code (worker/video.py), timed in this process.

    python -m bench.video_segment [--seconds 6] [--fps 0] [--runs 15]

The video is the test scene (testkit/video.py ``default_scene``, 640x360 at 10 fps; longer with
``--seconds``: ``long_scene``), cut as the API cuts it into one segment. The real analyzer
(the default profile, CPU) runs the segment once (timed, for scale), its results kept; then the
worker's own stages around the models are timed on their own, taking turns: decoding the
segment's frames, and turning the frames' results into tracks (each face's observation, its
thumbnail among it, and tracking), which the models' time (and the machine's load on it) would
otherwise drown. Prints the medians (ms per segment).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from api.videofile import VideoLimits, cut_segments, plan_segments, probe
from bench.timing import alternating_ms
from shared.contract import (
    AnalysisOptions,
    ErrorInfo,
    ImageResult,
    Job,
    JobResult,
    Track,
    VideoSegmentJob,
    VideoSegmentResult,
)
from shared.settings import load_settings
from shared.videos import VideoProgress
from testkit.video import default_scene, long_scene, make_video
from worker.analyzer import FaceAnalyzer
from worker.imaging.decode import RGBImage
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.tracking import Tracker, max_gap_s
from worker.video import VideoWork, follow, sampled_frames, thumbnail

LIMITS = VideoLimits(max_duration_s=3600, max_pixels=3840 * 2160, max_frames=100_000)


@dataclass
class Recorded:
    """The real analyzer, its results kept (the stages after it are timed on them)."""

    real: FaceAnalyzer
    batches: list[list[ImageResult]] = field(default_factory=list)

    def run_frames(
        self, frames: Sequence[RGBImage], options: AnalysisOptions, request_id: str = ""
    ) -> list[ImageResult]:
        results = self.real.run_frames(frames, options, request_id)
        self.batches.append(results)
        return results


class NoStore:
    """The video and job stores a segment touches while it runs: nothing to record here."""

    def exists(self, video_id: str) -> bool:
        return True

    def mark_started(self, job_id: str, worker: str) -> None:
        pass

    def load_input(self, job_id: str) -> Job | None:
        return None

    def finish(self, job_id: str, outcome: JobResult | ErrorInfo, worker: str = "") -> bool:
        return True

    def record(self, result: VideoSegmentResult) -> int:
        return 0

    def fail(self, video_id: str, error: ErrorInfo) -> None:
        pass

    def may_publish(self, video_id: str, every_s: float) -> bool:
        return False

    def publish(self, video_id: str, joined_from: int, tracks: list[Track]) -> None:
        pass

    def segment_results(self, video_id: str, segments: int) -> list[VideoSegmentResult]:
        return []

    def progress(self, video_id: str, with_tracks: bool = True) -> VideoProgress | None:
        return None

    def finished(self, video_id: str, segments: int) -> None:
        pass


def segment_job(path: Path, fps: float) -> VideoSegmentJob:
    """The whole video as one segment, cut as the API cuts it."""
    info = probe(path, LIMITS)
    (segment,) = plan_segments(info.keyframes, info.duration_s, info.duration_s + 1)
    ((data, packets),) = list(cut_segments(path, [segment]))
    return VideoSegmentJob(
        "bench",
        0,
        data,
        segment.start_s,
        segment.end_s,
        packets,
        fps,
        info.rotation,
        AnalysisOptions(),
        "bench",
    )


def timed_ms(work: VideoWork, job: VideoSegmentJob, runs: int) -> tuple[float, VideoSegmentResult]:
    times = []
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = work.segment(job, start)
        times.append((time.perf_counter() - start) * 1000)
    assert result is not None
    return statistics.median(times), result


def tracked(frames: list[tuple[float, RGBImage]], results: list[ImageResult], gap_s: float) -> list[Track]:
    """What a segment does with its frames' results (worker/video.py: ``follow``): observations
    (the faces' crops among them), tracking, and the tracks it records (a thumbnail each)."""
    tracker = Tracker(gap_s, thumbnail)
    follow(tracker, frames, results)
    return tracker.tracks()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=6, help="the video's length (6: the test scene)")
    parser.add_argument("--fps", type=float, default=0, help="frames analysed per second; 0: every frame")
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each stage")
    args = parser.parse_args()
    scene = default_scene() if args.seconds == 6 else long_scene(args.seconds)
    with tempfile.TemporaryDirectory() as folder:
        make_video(Path(folder) / "scene.mp4", scene)
        job = segment_job(Path(folder) / "scene.mp4", args.fps)
    recorded = Recorded(load_analyzer(load_settings(), Device("cpu")))
    store = NoStore()
    work = VideoWork(recorded, store, store, "bench", LIMITS.max_pixels)
    with_models, result = timed_ms(work, job, 1)
    results = [image for batch in recorded.batches for image in batch]
    frames = list(sampled_frames(job.data, job, LIMITS.max_pixels))
    stages = alternating_ms(
        {
            "decode": lambda: list(sampled_frames(job.data, job, LIMITS.max_pixels)),
            "follow": lambda: tracked(frames, results, max_gap_s(job.fps)),
        },
        runs=args.runs,
    )
    faces = sum(len(image.faces) for image in results)
    print(
        f"{platform.machine()}: a {args.seconds:g} s segment at fps {args.fps:g}: {result.frames} frames, "
        f"{faces} faces, {len(result.tracks)} tracks; medians of {args.runs} runs"
    )
    print(f"  decoding its frames: {stages['decode']:.1f} ms")
    print(f"  its faces' observations (thumbnails) and tracking: {stages['follow']:.1f} ms")
    print(f"  the whole segment with the models (CPU), one run: {with_models:.0f} ms")


if __name__ == "__main__":
    main()
