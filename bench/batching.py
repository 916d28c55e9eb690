"""What a bigger recognizer batch buys and costs: time per face and resident memory.

    python -m bench.batching [--device cpu|cuda:0]

For each largest batch size B, a fresh process loads the worker's recognizer (as the worker
does, backend ``auto``), runs every batch size from 1 to B three times, and reports the median
time per face at batch B and how much its RSS grew (what a worker with
FACEREST_BATCH_MAX_FACES=B keeps resident after its largest batches). The worker's default
(worker/loader.py: default_batch_max_faces) follows this table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import psutil

from shared.memory import limit_malloc_arenas
from shared.settings import load_settings
from worker.inference.session import Device
from worker.loader import load_analyzer

SIZES = (1, 2, 4, 8, 16, 32)


def child(device: Device, largest: int) -> dict[str, float]:
    limit_malloc_arenas()  # as the worker does
    recognizer = load_analyzer(load_settings(), device).loaded.recognizer
    process = psutil.Process()
    loaded = process.memory_info().rss
    crops = np.random.default_rng(0).integers(0, 255, (largest, 112, 112, 3), dtype=np.uint8)
    at_largest = []
    for _ in range(3):
        for size in range(1, largest + 1):
            start = time.perf_counter()
            recognizer.embed(crops[:size])
            if size == largest:
                at_largest.append((time.perf_counter() - start) * 1000 / size)
    return {
        "ms_per_face": statistics.median(at_largest),
        "rss_growth_mb": (process.memory_info().rss - loaded) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = Device.parse(args.device)
    if args.child:
        print(json.dumps(child(device, args.child)))
        return
    print(f"| largest batch | ms per face at that batch ({device}) | RSS growth MB |\n|---|---|---|")
    for size in SIZES:
        command = [sys.executable, "-m", "bench.batching", "--device", args.device, "--child", str(size)]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        print(f"| {size} | {row['ms_per_face']:.2f} | {row['rss_growth_mb']:.0f} |")


if __name__ == "__main__":
    main()
