"""ArcFace MBF on OpenVINO: one request on every core (what the worker runs) against two streams
of one thread each, the batch split between them and run at once; and one thread alone.

    python -m bench.openvino_streams [--rounds 3] [--calls 40]

Prints the median ms per face of a batch of 8 (random inputs: the cost does not depend on them).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import openvino as ov

from worker.inference.files import locate
from worker.inference.registry import ARCFACE_MBF

BATCH = 8
WARM_UP = 5


def compiled(core: ov.Core, config: dict[str, Any]) -> ov.CompiledModel:
    model = core.read_model(str(locate(ARCFACE_MBF)))
    model.reshape({p.get_any_name(): ov.PartialShape([-1, *p.get_partial_shape()[1:]]) for p in model.inputs})
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", **config})


def ms_per_face(model: ov.CompiledModel, batch: np.ndarray, parts: int, calls: int) -> float:
    """Median over ``calls`` of one batch, split into ``parts`` requests started together."""
    requests = [model.create_infer_request() for _ in range(parts)]
    chunks = np.array_split(batch, parts)
    times = []
    for call in range(WARM_UP + calls):
        started = time.perf_counter()
        for request, chunk in zip(requests, chunks, strict=True):
            request.start_async({0: chunk})
        for request in requests:
            request.wait()
        if call >= WARM_UP:
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000 / len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    core = ov.Core()
    batch = np.random.default_rng(0).standard_normal((BATCH, 3, 112, 112)).astype(np.float32)
    latency = compiled(core, {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 2})
    streams = compiled(core, {"NUM_STREAMS": 2, "INFERENCE_NUM_THREADS": 2})
    single = compiled(core, {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1})
    print(f"ms per face, batch {BATCH}: 1 request x 2 threads | 2 streams x 1 thread | 1 thread")
    for round_ in range(args.rounds):
        a = ms_per_face(latency, batch, 1, args.calls)
        b = ms_per_face(streams, batch, 2, args.calls)
        c = ms_per_face(single, batch, 1, args.calls)
        print(f"round {round_ + 1}: {a:.2f} | {b:.2f} | {c:.2f}", flush=True)


if __name__ == "__main__":
    main()
