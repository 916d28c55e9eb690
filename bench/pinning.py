"""Two worker-like processes on one machine, each running the recognizer on OpenVINO with one
thread: with OpenVINO's CPU pinning (its default) and without it (the worker's setting,
worker/inference/session.py). Pinned, every process put its inference thread on the same core.

    python -m bench.pinning [--batches 40]

Each process compiles ArcFace MBF on OpenVINO (one inference thread, as FACEREST_INTRA_OP_THREADS=1
gives), warms up, then times ``--batches`` calls of 8 faces. Printed per mode: the seconds of one
process alone, then of each of two started together; on a machine with two free cores the pair
takes about as long as one alone when the threads are not pinned to one core.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from worker.inference.files import locate
from worker.inference.registry import ARCFACE_MBF

BATCH = 8


def timed(pinned: bool, batches: int) -> float:
    """Seconds for ``batches`` calls of ArcFace on OpenVINO, in this process."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(locate(ARCFACE_MBF)))
    model.reshape({p.get_any_name(): ov.PartialShape([-1, *p.get_partial_shape()[1:]]) for p in model.inputs})
    config = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": 1,
        "ENABLE_CPU_PINNING": pinned,
    }
    request = core.compile_model(model, "CPU", config).create_infer_request()
    faces = np.random.default_rng(0).random((BATCH, 3, 112, 112), dtype=np.float32)
    request.infer({0: faces})
    start = time.perf_counter()
    for _ in range(batches):
        request.infer({0: faces})
    return time.perf_counter() - start


def run_together(pinned: bool, batches: int, count: int) -> list[float]:
    """Seconds of each of ``count`` processes started at once."""
    args = [sys.executable, "-m", "bench.pinning", "--child", "pinned" if pinned else "unpinned"]
    args += ["--batches", str(batches)]
    children = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    return [float(child.communicate()[0]) for child in children]


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--child", choices=("pinned", "unpinned"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(f"{timed(args.child == 'pinned', args.batches):.2f}")
        return
    for pinned in (True, False):
        alone = run_together(pinned, args.batches, 1)
        pair = run_together(pinned, args.batches, 2)
        mode = "pinned (OpenVINO's default)" if pinned else "unpinned (the worker's setting)"
        print(f"{mode}: one alone {alone[0]:.2f} s; two at once {pair[0]:.2f} s and {pair[1]:.2f} s")


if __name__ == "__main__":
    main()
