"""Worker memory under the largest allowed input: what it peaks at, and whether it comes back.

    python -m bench.memory                  # Redis, a worker and the API; FACEREST_CONCURRENCY
                                            # 36 MP photos at once with max_size 0; worker RSS
    python -m bench.memory --rounds 2       # send the burst twice (settled RSS after each)
    python -m bench.memory --options        # SCRFD alone: ONNX Runtime's memory options compared
    python -m bench.memory --pipeline       # the pipeline on normal photos, arena vs none, in turns

The service run samples the worker's RSS every 50 ms: its baseline (models loaded, two bursts
of FACEREST_CONCURRENCY normal requests served), its peak while the burst runs, and where it
settles 10 s after the last answer.
``--options`` opens SCRFD with each memory option in a process of its own (RSS is per process),
runs one 36 MP canvas and reports RSS before, at the peak and after; then times every option on
normal canvases (640x448) in one process, taking turns, so that machine noise hits all alike.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import ctypes.util
import functools
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import psutil
import requests
from numpy.typing import NDArray

from bench.timing import alternating_ms
from deploy.launcher import running_system
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS, read_rgb, scaled_photo
from worker.imaging.decode import decode_image
from worker.imaging.resize import letterbox
from worker.inference.files import read_model
from worker.inference.registry import SCRFD_500M

RESULTS = Path(__file__).parent / "results"
MiB = 1024 * 1024
# The photo: 7360x4912 (36 MP), under the default FACEREST_MAX_IMAGE_PIXELS (40 MP).
LARGE_SIZE = (7360, 4912)
SETTLE_S = 10.0
SAMPLE_S = 0.05


def large_photo(size: tuple[int, int] = LARGE_SIZE) -> bytes:
    """t1.jpg (six faces) scaled up to ``size`` and encoded as a JPEG: the largest allowed input."""
    return scaled_photo("t1.jpg", size)


@dataclass
class RssSampler:
    """Samples one process's RSS (MiB) on a thread until stopped."""

    pid: int
    every_s: float = SAMPLE_S
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MiB)

    def now(self) -> float:
        return float(psutil.Process(self.pid).memory_info().rss) / MiB

    @contextmanager
    def running(self) -> Iterator[RssSampler]:
        start = time.monotonic()
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                self.samples.append((time.monotonic() - start, self.now()))
                stop.wait(self.every_s)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def peak(self) -> float:
        return max(mib for _, mib in self.samples)


def settled_rss(sampler: RssSampler, seconds: float = SETTLE_S) -> float:
    """The median RSS over the last second of ``seconds`` of quiet (the allocator may return
    memory a little after the job ends)."""
    time.sleep(max(0.0, seconds - 1.0))
    values = []
    for _ in range(10):
        values.append(sampler.now())
        time.sleep(0.1)
    return statistics.median(values)


def _post(url: str, body: dict[str, object]) -> int:
    return requests.post(f"{url}/extract", json=body, timeout=600).status_code


def _faces(url: str, body: dict[str, object]) -> int:
    """Faces found in the request's one image (api_ver 1); -1 for an error status."""
    answer = requests.post(f"{url}/extract", json=body, timeout=600)
    return len(answer.json()[0]) if answer.status_code == 200 else -1


def service_run(rounds: int, concurrency: int, extra: dict[str, str]) -> dict[str, object]:
    photo = large_photo()
    normal = base64.b64encode(GROUP_PHOTOS["t1.jpg"].read_bytes()).decode()
    large = {"images": {"data": [base64.b64encode(photo).decode()]}, "max_size": 0}
    print(f"large photo: {LARGE_SIZE[0]}x{LARGE_SIZE[1]}, {len(photo) / MiB:.1f} MiB JPEG")
    report: dict[str, object] = {"photo": list(LARGE_SIZE), "concurrency": concurrency, "settings": extra}
    with running_system(None, **({"concurrency": str(concurrency)} | extra)) as running:
        worker, api = running.service("worker"), running.service("api")
        sampler = RssSampler(worker.pid)
        # Warm-up at full concurrency: the recognizer's batch-8 buffers (docs/performance.md) are
        # part of the worker's steady state under normal load, not of the large photo's cost.
        with ThreadPoolExecutor(concurrency) as pool:
            for _ in range(2):
                statuses = list(
                    pool.map(lambda _: _post(api.url, {"images": {"data": [normal]}}), range(concurrency))
                )
                assert set(statuses) == {200}, statuses
        baseline = settled_rss(sampler, 3.0)
        print(f"worker baseline {baseline:.0f} MiB")
        rows = []
        for index in range(rounds):
            with sampler.running(), ThreadPoolExecutor(concurrency) as pool:
                start = time.monotonic()
                faces = list(pool.map(lambda _: _faces(api.url, large), range(concurrency)))
                took = time.monotonic() - start
            settled = settled_rss(sampler)
            row = {
                "round": index + 1,
                "faces": faces,
                "took_s": round(took, 1),
                "peak_mib": round(sampler.peak(), 1),
                "settled_mib": round(settled, 1),
            }
            rows.append(row)
            print(
                f"round {index + 1}: {concurrency} x 36 MP in {took:.1f} s, faces {sorted(set(faces))}, "
                f"peak {row['peak_mib']:.0f} MiB, settled {settled:.0f} MiB "
                f"({settled - baseline:+.0f} MiB from baseline)"
            )
            sampler.samples.clear()
        report |= {"baseline_mib": round(baseline, 1), "rounds": rows}
    return report


# --options: SCRFD's session opened as create_session does, with each memory option.
def _libc_trim() -> None:
    path = ctypes.util.find_library("c")
    if path is not None:
        ctypes.CDLL(path).malloc_trim(0)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    arena: bool
    shrink: bool = False  # memory.enable_memory_arena_shrinkage on every run
    trim: bool = False  # glibc malloc_trim(0) after the large canvas


VARIANTS = {
    v.name: v
    for v in (
        Variant("arena (before)", arena=True),
        Variant("arena + shrinkage per run", arena=True, shrink=True),
        Variant("no arena", arena=False),
        Variant("no arena + malloc_trim", arena=False, trim=True),
    )
}


def _scrfd(variant: Variant) -> Callable[[NDArray[np.uint8]], object]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = variant.arena
    session = ort.InferenceSession(read_model(SCRFD_500M), options, providers=["CPUExecutionProvider"])
    run_options = ort.RunOptions()
    if variant.shrink:
        run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    name = session.get_inputs()[0].name

    def detect(canvas: NDArray[np.uint8]) -> object:
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / 128, canvas.shape[1::-1], (127.5,) * 3)
        return session.run(None, {name: blob}, run_options)

    return detect


def _normal_canvas() -> NDArray[np.uint8]:
    return letterbox(read_rgb(GROUP_PHOTOS["t1.jpg"]), (640, 640)).canvas


def option_memory(name: str) -> dict[str, float]:
    """In this process: SCRFD with one option, RSS around one full-size 36 MP canvas."""
    variant = VARIANTS[name]
    detect = _scrfd(variant)
    normal = _normal_canvas()
    large = letterbox(decode_image(large_photo(), LARGE_SIZE[0] * LARGE_SIZE[1]).pixels, (0, 0)).canvas
    for _ in range(3):
        detect(normal)
    sampler = RssSampler(psutil.Process().pid)
    before = sampler.now()
    with sampler.running():
        detect(large)
        detect(normal)
    if variant.trim:
        _libc_trim()
    after = settled_rss(sampler, 2.0)
    return {"before_mib": before, "peak_mib": sampler.peak(), "after_mib": after}


def options_run() -> dict[str, object]:
    rows: dict[str, dict[str, float]] = {}
    for name in VARIANTS:
        output = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--variant", name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows[name] = json.loads(output.splitlines()[-1])
    normal = _normal_canvas()
    calls: dict[str, Callable[[], object]] = {
        name: functools.partial(_scrfd(v), normal) for name, v in VARIANTS.items()
    }
    times = alternating_ms(calls, runs=60, warmup=5)
    print("| option | RSS before, MiB | peak | after | SCRFD 640x448 ms |\n|---|---|---|---|---|")
    for name, row in rows.items():
        row["ms_640x448"] = times[name]
        print(
            f"| {name} | {row['before_mib']:.0f} | {row['peak_mib']:.0f} | {row['after_mib']:.0f} "
            f"| {times[name]:.2f} |"
        )
    return {"options": rows}


def pipeline_run(passes: int) -> dict[str, object]:
    """The whole pipeline on the benchmark workload (bench/workload.py), image by image, taking
    turns between SCRFD with ONNX Runtime's arena (before) and without (now) in one process:
    the only change on normal photos (they are under the canvas cap and the trim threshold)."""
    from dataclasses import replace

    from bench.workload import workload
    from shared.contract import AnalysisOptions
    from worker.analyzer import FaceAnalyzer
    from worker.batched import BatchedModels
    from worker.inference.session import Device, create_session
    from worker.loader import load_analyzer
    from worker.models.scrfd import SCRFD

    settings = load_settings()
    now = load_analyzer(settings, Device("cpu"))
    arena_scrfd = SCRFD(create_session(read_model(SCRFD_500M), Device("cpu")), SCRFD_500M)
    loaded = replace(now.loaded, detectors={"scrfd": arena_scrfd})
    before = FaceAnalyzer(BatchedModels(loaded, now.models.limits), settings.max_image_pixels)
    options = AnalysisOptions(threshold=0.5)
    calls: dict[str, Callable[[], object]] = {}
    for item in workload():
        calls[f"arena (before) {item.name}"] = functools.partial(before.analyze, [item.jpeg], options)
        calls[f"no arena {item.name}"] = functools.partial(now.analyze, [item.jpeg], options)
    times = alternating_ms(calls, runs=passes, warmup=2)
    totals = {
        side: sum(ms for name, ms in times.items() if name.startswith(side)) for side in ("arena", "no arena")
    }
    print(f"sum of per-image medians over the workload: {totals}")
    print(f"no arena / arena: {totals['no arena'] / totals['arena']:.3f}")
    before.close()
    now.close()
    return {"per_image_ms": times, "workload_ms": totals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--options", action="store_true", help="compare ONNX Runtime memory options")
    parser.add_argument("--pipeline", action="store_true", help="pipeline speed, arena vs none")
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--variant", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=load_settings().concurrency)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="worker setting")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(option_memory(args.variant)))
        return
    if args.options:
        report = options_run()
        out = RESULTS / "memory-options.json"
    elif args.pipeline:
        report = pipeline_run(args.passes)
        out = RESULTS / "memory-pipeline.json"
    else:
        extra = dict(item.split("=", 1) for item in args.set)
        report = service_run(args.rounds, args.concurrency, extra)
        out = RESULTS / "memory.json"
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
