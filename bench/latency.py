"""Latency of one synchronous /extract call for a group photo, end to end and in-process.

python -m bench.latency                  # starts its own Redis, worker and API
python -m bench.latency --url http://localhost:18081   # measures a running system
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import requests

from deploy.launcher import running_system
from shared.contract import AnalysisOptions
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS
from worker.inference.session import Device
from worker.loader import load_analyzer

RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


@contextmanager
def local_system() -> Iterator[str]:
    with running_system() as running:
        yield running.api_url


def measure_http(url: str, photo: bytes, runs: int) -> tuple[list[float], list[float], int]:
    body = {"images": {"data": [base64.b64encode(photo).decode()]}, "api_ver": "2"}
    for _ in range(3):
        requests.post(f"{url}/extract", json=body, timeout=60).raise_for_status()
    totals, workers = [], []
    faces = 0
    for _ in range(runs):
        start = time.perf_counter()
        response = requests.post(f"{url}/extract", json=body, timeout=60)
        totals.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
        payload = response.json()
        workers.append(payload["took"]["worker_ms"])
        faces = len(payload["data"][0]["faces"])
    return totals, workers, faces


def measure_in_process(photo: bytes, runs: int) -> list[float]:
    analyzer = load_analyzer(load_settings(), Device("cpu"))
    options = AnalysisOptions()
    for _ in range(3):
        analyzer.analyze([photo], options)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        analyzer.analyze([photo], options)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running facerest API; default: start one")
    parser.add_argument("--photo", default="t1.jpg", choices=sorted(GROUP_PHOTOS))
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    photo = GROUP_PHOTOS[args.photo].read_bytes()

    in_process = measure_in_process(photo, args.runs)
    with nullcontext(args.url) if args.url else local_system() as url:
        totals, workers, faces = measure_http(url, photo, args.runs)

    rows = {
        "/extract over HTTP (client-measured)": totals,
        "worker job time (took.worker_ms)": workers,
        "pipeline in-process (decode+detect+align+embed)": in_process,
    }
    print(f"\n{args.photo}: {faces} faces, {args.runs} runs, {platform.processor() or platform.machine()}")
    print("| measurement | median ms | p95 ms |\n|---|---|---|")
    report = {}
    for name, values in rows.items():
        median, p95 = statistics.median(values), percentile(values, 95)
        report[name] = {"median_ms": round(median, 1), "p95_ms": round(p95, 1)}
        print(f"| {name} | {median:.1f} | {p95:.1f} |")
    overhead = statistics.median(totals) - statistics.median(in_process)
    print(f"\nservice overhead over the in-process pipeline: {overhead:.1f} ms (median)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "latency.json"
    out.write_text(json.dumps({"photo": args.photo, "faces": faces, "runs": args.runs, **report}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
