"""Side-by-side throughput: the insightface reference, the pipeline in-process, the whole system.

    python -m bench.throughput [--rounds 5] [--quick] [--recognizer arcface_int8]

(a) insightface==0.7.3 SCRFD + ArcFaceONNX in a plain loop, as its users run it;
(b) facerest's FaceAnalyzer (worker/analyzer.py) in-process, 1 thread and 8 threads (batching across jobs);
    (a) and (b) alternate, one pass over the workload at a time, --rounds passes each;
(c) API + Redis + worker over HTTP, synchronous /extract, 1/4/16 clients, JSON (requests) and
    msgpack (facerest-client, MessagePack bodies and answers);
(d) an async burst: submit every job at once, time until all results are in (long polls).
Same images (bench/workload.py), same model files. Prints a table, writes bench/results/throughput.json.
--recognizer runs (b), (c) and (d) with another recognizer (the reference stays fp32 ArcFace).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil
import requests
from facerest_client import FaceRest

from bench.workload import WorkItem, workload
from deploy.launcher import running_system
from shared.contract import AnalysisOptions
from shared.settings import load_settings
from worker.inference.files import locate
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M
from worker.inference.session import Device
from worker.loader import load_analyzer

RESULTS = Path(__file__).parent / "results"
THRESHOLD = 0.5  # insightface's default, used on both sides


@dataclass
class Row:
    name: str
    images: int
    faces: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds


def _row(name: str, latencies: list[float], faces: int, seconds: float) -> Row:
    values = np.array(latencies) * 1000
    p50, p95, p99 = (float(np.percentile(values, q)) for q in (50, 95, 99))
    return Row(name, len(latencies), faces, seconds, p50, p95, p99)


def merge(name: str, rows: list[Row], latencies: list[list[float]]) -> Row:
    """One row from several passes of the same run (interleaved with other runs)."""
    flat = [x for xs in latencies for x in xs]
    return _row(name, flat, sum(r.faces for r in rows), sum(r.seconds for r in rows))


def run_concurrently(
    name: str,
    task: Callable[[WorkItem], int],
    items: list[WorkItem],
    clients: int,
    warmup: bool = True,
    latencies: list[float] | None = None,
) -> Row:
    """Run ``task`` over ``items`` from ``clients`` threads; ``latencies`` (if given) receives
    each call's seconds."""
    latencies = [] if latencies is None else latencies
    faces = 0
    lock = threading.Lock()

    def one(item: WorkItem) -> None:
        nonlocal faces
        start = time.perf_counter()
        count = task(item)
        elapsed = time.perf_counter() - start
        with lock:
            latencies.append(elapsed)
            faces += count

    for item in items[: min(len(items), 4) if warmup else 0]:
        task(item)
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, items))
    return _row(name, latencies, faces, time.perf_counter() - start)


def reference_task() -> Callable[[WorkItem], int]:
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD
    from insightface.utils import face_align

    detector = SCRFD(model_file=str(locate(SCRFD_500M)))
    detector.prepare(-1, input_size=(640, 640), det_thresh=THRESHOLD)
    recognizer = ArcFaceONNX(model_file=str(locate(ARCFACE_MBF)))
    recognizer.prepare(-1)

    def task(item: WorkItem) -> int:
        image = cv2.imdecode(np.frombuffer(item.jpeg, np.uint8), cv2.IMREAD_COLOR)
        boxes, keypoints = detector.detect(image, input_size=(640, 640))
        for points in keypoints:
            recognizer.get_feat(face_align.norm_crop(image, landmark=points))
        return len(boxes)

    return task


def pipeline_task(recognizer: str) -> Callable[[WorkItem], int]:
    analyzer = load_analyzer(load_settings(recognizer=recognizer), Device("cpu"))
    options = AnalysisOptions(threshold=THRESHOLD)

    def task(item: WorkItem) -> int:
        (record,) = analyzer.analyze([item.jpeg], options)
        return len(record.faces)

    return task


def http_task(url: str, as_msgpack: bool) -> Callable[[WorkItem], int]:
    """JSON: the 2020 request (base64 in, the bare list out) with requests, as its users send it.
    msgpack: facerest-client, MessagePack both ways (raw bytes in; an Idempotency-Key each).
    The client next to bare calls: no slower, less client CPU (docs/performance.md)."""
    local = threading.local()

    def task(item: WorkItem) -> int:
        if as_msgpack:
            if not hasattr(local, "client"):
                local.client = FaceRest(url, timeout_s=120)
            result = local.client.extract([item.jpeg], threshold=THRESHOLD)
            return len(result.images[0].faces)
        if not hasattr(local, "session"):
            local.session = requests.Session()
        body = {"images": {"data": [base64.b64encode(item.jpeg).decode()]}, "threshold": THRESHOLD}
        response = local.session.post(f"{url}/extract", json=body, timeout=120)
        response.raise_for_status()
        return len(response.json()[0])

    return task


def async_burst(url: str, items: list[WorkItem]) -> Row:
    """Submit every job at once, then collect the results in order with long polls."""
    session = requests.Session()
    start = time.perf_counter()
    status_urls = []
    for item in items:
        body = {"images": {"data": [base64.b64encode(item.jpeg).decode()]}, "threshold": THRESHOLD}
        job = session.post(f"{url}/extract", json={**body, "async": True}, timeout=60).json()
        status_urls.append(job["status_url"])
    latencies, faces = [], 0
    for status_url in status_urls:
        state: dict[str, Any] = {"status": "queued"}
        while state["status"] in {"queued", "running"}:
            state = session.get(f"{url}{status_url}", params={"wait": 20}, timeout=60).json()
        if state["status"] != "done":
            raise RuntimeError(state)
        latencies.append(state["finished"] - state["created"])
        faces += len(state["result"][0])
    return _row(f"(d) async burst of {len(items)} jobs", latencies, faces, time.perf_counter() - start)


def process_tree(pid: int) -> list[psutil.Process]:
    """A service's processes (the API: gunicorn master + workers). This process alone: its
    children are the services."""
    root = psutil.Process(pid)
    return [root] if pid == os.getpid() else [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process tree so far. The load generator (this process)
    shares the machine with the service, which is part of what (c) measures."""
    total = 0.0
    for process in process_tree(pid):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class PeakRss:
    """Samples the RSS of process trees (API: gunicorn master + workers; worker) in the background."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.peaks = dict.fromkeys(pids, 0)
        self._pids = pids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self._pids.items():
                try:
                    rss = sum(p.memory_info().rss for p in process_tree(pid))
                except psutil.Error:
                    continue
                self.peaks[name] = max(self.peaks[name], rss)
            self._stop.wait(0.25)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the workload per measurement")
    parser.add_argument("--quick", action="store_true", help="one round, fewer client counts")
    parser.add_argument("--recognizer", default=load_settings().models().recognizer, help="of (b), (c), (d)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    rounds = 1 if args.quick else args.rounds
    items = workload() * rounds
    rows: list[Row] = []

    # (a) and (b) take turns, one pass over the workload each, so that a slow spell of a shared
    # machine hits both alike; the per-pass ratios show how much the machine wandered.
    pipeline = pipeline_task(args.recognizer)
    runs = {
        "(a) insightface reference, plain loop": (reference_task(), 1),
        "(b) pipeline in-process, 1 thread": (pipeline, 1),
        "(b) pipeline in-process, 8 threads": (pipeline, 8),
    }
    passes: dict[str, list[Row]] = {name: [] for name in runs}
    latencies: dict[str, list[list[float]]] = {name: [] for name in runs}
    # CPU time of this process per image: less sensitive to a busy neighbour than wall time
    # (the reference's ONNX Runtime threads spin while they wait, as its users run it).
    cpu_ms: dict[str, float] = dict.fromkeys(runs, 0.0)
    for round_index in range(rounds):
        for name, (task, clients) in runs.items():
            latencies[name].append([])
            cpu_start = time.process_time()
            passes[name].append(
                run_concurrently(name, task, workload(), clients, round_index == 0, latencies[name][-1])
            )
            cpu_ms[name] += (time.process_time() - cpu_start) * 1000
    rows += [merge(name, passes[name], latencies[name]) for name in runs]
    cpu_per_image = {name: cpu_ms[name] / row.images for name, row in zip(runs, rows, strict=True)}
    reference = rows[0]
    best_b = max(rows[1:], key=lambda r: r.images_per_s)
    best_passes = passes[best_b.name]
    pass_ratios = [
        b.images_per_s / a.images_per_s for a, b in zip(passes[reference.name], best_passes, strict=True)
    ]

    cpu_split: dict[str, dict[str, float]] = {}
    # The async burst queues every job at once: more than the per-key default (16) allows.
    with running_system(recognizer=args.recognizer, max_queued_per_key=str(len(items))) as running:
        pids = {s.name: s.process.pid for s in running.services} | {"load generator": os.getpid()}
        with PeakRss({"api": pids["api"], "worker": pids["worker"]}) as rss:
            for clients in (1, 4) if args.quick else (1, 4, 16):
                for as_msgpack in (False, True):
                    fmt = "msgpack" if as_msgpack else "JSON"
                    name = f"(c) HTTP sync, {clients} clients, {fmt}"
                    task = http_task(running.api_url, as_msgpack)
                    before = {process: cpu_seconds(pid) for process, pid in pids.items()}
                    rows.append(run_concurrently(name, task, items * (2 if clients == 16 else 1), clients))
                    cpu_split[name] = {
                        process: (cpu_seconds(pid) - before[process]) * 1000 / rows[-1].images
                        for process, pid in pids.items()
                    }
            rows.append(async_burst(running.api_url, items))
    c16 = [r for r in rows if r.name.startswith("(c)")][-2]

    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(
        f"\nmachine: {machine}; workload: {len(workload())} images x {rounds}; recognizer {args.recognizer}"
    )
    print("| run | images/s | faces/s | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.name} | {r.images_per_s:.2f} | {r.faces_per_s:.1f} | "
            f"{r.p50_ms:.0f} | {r.p95_ms:.0f} | {r.p99_ms:.0f} |"
        )
    ratios = {
        "(b)/(a) images/s": best_b.images_per_s / reference.images_per_s,
        "(b)/(a) images/s, lowest pass": min(pass_ratios),
        "(b)/(a) images/s, highest pass": max(pass_ratios),
        "(a)/(b) CPU ms per image": cpu_per_image[reference.name] / cpu_per_image[best_b.name],
        f"(c)/(b) images/s, {c16.name}": c16.images_per_s / best_b.images_per_s,
        "(c) p99/p50 at that load": c16.p99_ms / c16.p50_ms,
    }
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    peaks = {name: round(value / 2**20) for name, value in rss.peaks.items()}
    print(f"peak RSS MB: {peaks}")
    print("CPU ms per image in-process: " + ", ".join(f"{n} {ms:.0f}" for n, ms in cpu_per_image.items()))
    split = ", ".join(f"{process} {ms:.0f}" for process, ms in cpu_split[c16.name].items())
    print(f"CPU ms per image in {c16.name}: {split}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "throughput.json"
    report = {
        "rows": [asdict(r) | {"images_per_s": r.images_per_s, "faces_per_s": r.faces_per_s} for r in rows],
        "recognizer": args.recognizer,
        "ratios": ratios,
        "peak_rss_mb": peaks,
        "cpu_ms_per_image": cpu_split,
        "cpu_ms_per_image_in_process": cpu_per_image,
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
