"""Video as distributed jobs, measured on a real system (issue 29; docs/video.md, "Measured").

    python -m bench.video [--seconds 60] [--fps 2] [--rounds 2] [--long-s 600] [--threads 1]

One stack (Redis, the API, CPU workers: deploy/launcher.py) and videos made here with PyAV from the
package photos (testkit/video.py), so every number has a known truth behind it:

1. Throughput: a ``--seconds`` video (a keyframe every ``--segment-s``, which is also the
   service's segment length, so it splits into that many segments) analysed at ``--fps``, with
   one worker, then two, then one again (load from elsewhere on the machine shows as the two
   one-worker runs disagreeing). Frames analysed per second, from the upload's start to the last
   segment's result; the target is a second worker adding >= 0.8x the first's frames/s. Each
   worker runs ``--threads`` ONNX Runtime threads and ``--concurrency`` jobs, so that two workers
   are two workers' worth of cores, as two GPUs would be.
2. The time to the first partial result: from the upload's start to the first GET /videos/{id}
   that shows a segment done, and to the first track.
3. Tracking quality: the 6 s test scene (7 tracks of 6 people, one of them in two shots, two
   crossing; testkit/video.py) at every frame and at ``--fps``, identified against a collection
   of the people's portraits: tracks per person, fragments, missed, switches, false and misnamed
   tracks (testkit.video.score_tracks).
4. Memory per worker over a long video: one worker's RSS sampled while it analyses a
   ``--long-s`` video; its level after the first tenth of the segments against its level at the
   end and its peak (flat: no growth with the video's length).

Prints each part and writes bench/results/video.json. The client is facerest_client's (the
upload streams from disk).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from facerest_client import FaceRest, Video, VideoOptions

from bench.memory import RssSampler
from deploy.launcher import Stack, stack
from testkit.video import (
    PEOPLE,
    FoundTrack,
    VideoTruth,
    default_scene,
    long_scene,
    make_video,
    portrait,
    score_tracks,
)

RESULTS = Path(__file__).parent / "results"
COLLECTION = "bench-video"
POLL_S = 0.2  # the long poll's wait: the resolution of the first-result times


@dataclass
class Run:
    """One video analysed: seconds from the upload's start, and what came back."""

    seconds: float
    first_segment_s: float | None
    first_track_s: float | None
    frames: int
    segments: int
    tracks: int
    status: str
    worker_cpu_s: list[float]  # CPU seconds each worker spent meanwhile (user + system)
    api_cpu_s: float  # and the API's processes (receiving, probing and cutting the upload)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000 * sum(self.worker_cpu_s) / self.frames


def cpu_s(pids: list[int]) -> list[float]:
    times = [psutil.Process(pid).cpu_times() for pid in pids]
    return [t.user + t.system for t in times]


def tree_cpu_s(pid: int) -> float:
    """A process's CPU seconds and its children's (gunicorn's master and its workers)."""
    root = psutil.Process(pid)
    return float(
        sum(t.user + t.system for t in (p.cpu_times() for p in [root, *root.children(recursive=True)]))
    )


def analyse(
    client: FaceRest,
    path: Path,
    options: VideoOptions,
    workers: list[int],
    api: int,
    on_state: Any = None,
) -> tuple[Run, Video]:
    """Upload ``path``, follow it to the end; ``on_state`` sees each state as it comes;
    ``workers``, ``api``: the processes whose CPU time to count."""
    cpu_before, api_before = cpu_s(workers), tree_cpu_s(api)
    start = time.perf_counter()
    first_segment: list[float] = []
    first_track: list[float] = []

    def seen(video: Video) -> None:
        now = time.perf_counter() - start
        if video.progress.segments_done and not first_segment:
            first_segment.append(now)
        if video.tracks and not first_track:
            first_track.append(now)
        if on_state is not None:
            on_state(video)

    submitted = client.submit_video(path, **options)
    video = client.wait_video(submitted.id, progress=seen, interval_s=POLL_S)
    seconds = time.perf_counter() - start
    cpu = [after - before for before, after in zip(cpu_before, cpu_s(workers), strict=True)]
    api_cpu = tree_cpu_s(api) - api_before
    client.cancel_video(submitted.id)  # the results are read: free the service's disk and Redis
    run = Run(
        seconds=seconds,
        first_segment_s=first_segment[0] if first_segment else None,
        first_track_s=first_track[0] if first_track else None,
        frames=video.progress.frames_done,
        segments=video.progress.segments,
        tracks=len(video.tracks),
        status=video.status,
        worker_cpu_s=cpu,
        api_cpu_s=api_cpu,
    )
    return run, video


def throughput(
    running: Stack, client: FaceRest, path: Path, fps: float, rounds: int, worker_env: dict[str, str]
) -> dict[str, Any]:
    """One worker, two, one again: ``rounds`` videos each. Besides frames/s, the workers' CPU
    time per frame and its split between them: where the machine has no free core for a second
    worker (a shared one), the split shows whether the work would spread, and the CPU per frame
    whether it costs more spread."""
    results: dict[str, list[Run]] = {"1 worker": [], "2 workers": [], "1 worker again": []}
    options: VideoOptions = {"fps": fps}
    first, api = running.service("worker"), running.service("api").pid
    analyse(client, path, options, [first.pid], api)  # warm-up: the models' first batches
    workers = [first.pid]
    for label, runs in results.items():
        if label == "2 workers":
            second = running.start_worker(extra_env=worker_env)
            workers = [first.pid, second.pid]
            analyse(client, path, options, workers, api)  # the second worker's warm-up
        if label == "1 worker again":
            second.stop()
            wait_for_workers(running, 1)
            workers = [first.pid]
        for _ in range(rounds):
            run, _ = analyse(client, path, options, workers, api)
            assert run.status == "done", run
            runs.append(run)
            split = "/".join(f"{c:.1f}" for c in run.worker_cpu_s)
            print(
                f"  {label:15s} {run.frames} frames in {run.seconds:6.1f} s: "
                f"{run.frames_per_s:6.1f} frames/s, worker CPU {split} s "
                f"({run.cpu_ms_per_frame:.0f} ms/frame), API CPU {run.api_cpu_s:.1f} s; "
                f"first segment {run.first_segment_s:.1f} s, first track {run.first_track_s:.1f} s"
            )
    one = statistics.mean(r.frames_per_s for r in results["1 worker"] + results["1 worker again"])
    two = statistics.mean(r.frames_per_s for r in results["2 workers"])
    added = (two - one) / one
    cpu_one = statistics.mean(r.cpu_ms_per_frame for r in results["1 worker"] + results["1 worker again"])
    cpu_two = statistics.mean(r.cpu_ms_per_frame for r in results["2 workers"])
    share = statistics.mean(min(r.worker_cpu_s) / sum(r.worker_cpu_s) for r in results["2 workers"])
    print(
        f"  frames/s: one worker {one:.1f}, two {two:.1f}: the second adds {added:.2f}x the first's "
        f"(target >= 0.8); CPU per frame {cpu_one:.0f} ms with one, {cpu_two:.0f} ms with two, "
        f"the lesser worker's share {share:.2f} (0.5: even)"
    )
    return {
        "runs": {
            label: [
                asdict(r) | {"frames_per_s": r.frames_per_s, "cpu_ms_per_frame": r.cpu_ms_per_frame}
                for r in runs
            ]
            for label, runs in results.items()
        },
        "one_worker_fps": one,
        "two_workers_fps": two,
        "second_worker_adds": added,
        "cpu_ms_per_frame_one": cpu_one,
        "cpu_ms_per_frame_two": cpu_two,
        "lesser_worker_share": share,
        "first_segment_s": statistics.median(r.first_segment_s or 0 for rs in results.values() for r in rs),
        "first_track_s": statistics.median(r.first_track_s or 0 for rs in results.values() for r in rs),
    }


def wait_for_workers(running: Stack, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(running.worker_names()) != count:
        assert time.monotonic() < deadline, f"still {running.worker_names()} online"
        time.sleep(0.2)


def quality(
    client: FaceRest, path: Path, truth: VideoTruth, fps: float, pids: tuple[int, int]
) -> dict[str, Any]:
    """The test scene at every frame and at ``fps``, against the people's portraits."""
    for label in PEOPLE:
        client.enroll(COLLECTION, label, [portrait(label)])
    report = {}
    for analysed in (0.0, fps):
        run, video = analyse(client, path, {"fps": analysed, "collection": COLLECTION}, [pids[0]], pids[1])
        assert run.status == "done", run
        found = [FoundTrack(t.start_s, t.end_s, t.best.time_s, t.best.bbox, t.subject) for t in video.tracks]
        interval = 1 / (analysed or truth.scene.fps)
        score = score_tracks(truth, found, tolerance_s=interval)
        key = "every frame" if analysed == 0 else f"{analysed:g} fps"
        report[key] = asdict(score) | {"tracks_per_person": score.tracks_per_person}
        print(
            f"  {key:11s}: {score.found_tracks} tracks for {score.truth_tracks} true ones, "
            f"{score.tracks_per_person:.2f} per person and shot; fragments {score.fragments}, "
            f"missed {score.missed}, switches {score.switches}, false {score.false_tracks}, "
            f"misnamed {score.misnamed} of {score.named} named"
        )
    return report


def memory(client: FaceRest, running: Stack, path: Path, fps: float) -> dict[str, Any]:
    """One worker's RSS while it analyses a long video."""
    worker = running.service("worker")
    sampler = RssSampler(worker.pid, every_s=0.5)
    marks: list[tuple[float, float]] = []  # (fraction of segments done, RSS MiB) at each state

    def note(video: Video) -> None:
        marks.append((video.progress.fraction, sampler.now()))

    with sampler.running():
        run, _ = analyse(client, path, {"fps": fps}, [worker.pid], running.service("api").pid, on_state=note)
    assert run.status == "done", run
    # The RSS at each tenth of the segments done (the median of the samples in it): flat, or growing?
    deciles = [
        statistics.median(
            [mib for fraction, mib in marks if tenth / 10 <= fraction < (tenth + 1) / 10] or [0.0]
        )
        for tenth in range(10)
    ] + [marks[-1][1]]
    report = {
        "frames": run.frames,
        "segments": run.segments,
        "seconds": run.seconds,
        "start_mib": sampler.samples[0][1],
        "rss_by_tenth_mib": deciles,
        "peak_mib": sampler.peak(),
    }
    print(
        f"  {run.frames} frames in {run.segments} segments, {run.seconds:.0f} s: worker RSS "
        f"{report['start_mib']:.0f} MiB at the start; by tenth of the segments done "
        f"{' '.join(f'{mib:.0f}' for mib in deciles)} MiB; peak {report['peak_mib']:.0f} MiB"
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60, help="the throughput video's length")
    parser.add_argument("--segment-s", type=float, default=5, help="keyframe interval and segment length")
    parser.add_argument("--fps", type=float, default=2, help="frames analysed per second of video")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--long-s", type=float, default=600, help="the memory run's video length; 0: skip")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per worker")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs in flight per worker")
    parser.add_argument("--parts", default="throughput,quality,memory", help="which parts to run")
    parser.add_argument(
        "--profile", default="insightface", help="the workers' model profile (permissive: SFace's vectors)"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    worker_env = {
        "FACEREST_INTRA_OP_THREADS": str(args.threads),
        "FACEREST_CONCURRENCY": str(args.concurrency),
    }
    report: dict[str, Any] = {
        "machine": f"{platform.node()} {os.cpu_count()} CPUs",
        "load_at_start": os.getloadavg(),
        "args": vars(args),
    }
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        started = time.perf_counter()
        if "throughput" in parts:
            make_video(workdir / "throughput.mp4", long_scene(args.seconds, keyframe_every_s=args.segment_s))
        truth = make_video(workdir / "scene.mp4", default_scene())
        long_path = workdir / "long.mp4"
        if "memory" in parts and args.long_s:
            make_video(long_path, long_scene(args.long_s, keyframe_every_s=args.segment_s))
        print(f"videos made in {time.perf_counter() - started:.1f} s")
        settings = {"video_segment_s": str(args.segment_s), "profile": args.profile}
        with stack(workdir / "stack", **settings) as running:
            running.start_worker(extra_env=worker_env)
            running.start_api()
            with FaceRest(running.api_url, timeout_s=600) as client:
                if "throughput" in parts:
                    print(f"1-2. throughput and first results: {args.seconds:g} s video at {args.fps:g} fps")
                    report["throughput"] = throughput(
                        running, client, workdir / "throughput.mp4", args.fps, args.rounds, worker_env
                    )
                if "quality" in parts:
                    print("3. tracking quality on the test scene")
                    pids = (running.service("worker").pid, running.service("api").pid)
                    report["quality"] = quality(client, workdir / "scene.mp4", truth, args.fps, pids)
                if "memory" in parts and args.long_s:
                    print(f"4. memory of one worker over a {args.long_s:g} s video at {args.fps:g} fps")
                    report["memory"] = memory(client, running, long_path, args.fps)
    report["load_at_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "video.json").write_text(json.dumps(report, indent=2))
    print(
        f"load average {report['load_at_start'][0]:.1f} at the start, "
        f"{report['load_at_end'][0]:.1f} at the end"
    )


if __name__ == "__main__":
    main()
