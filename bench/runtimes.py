"""SCRFD and ArcFace latency on each runtime (ONNX Runtime, OpenVINO), side by side in one run.

    python -m bench.runtimes

Feeds real aligned faces and real photos; medians of --runs calls after warm-up. The worker's
``auto`` backend choice (worker/loader.py) follows this table.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import numpy as np

from bench.timing import median_ms
from shared.settings import Backend
from testkit.photos import GROUP_PHOTOS, read_rgb
from worker.imaging.align import warp_to_template
from worker.imaging.resize import letterbox
from worker.inference.files import locate
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M
from worker.inference.session import Device, create_session
from worker.models.arcface import ArcFace
from worker.models.scrfd import SCRFD

RESULTS = Path(__file__).parent / "results"
CPU = Device("cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    backends = (Backend.ONNXRUNTIME, Backend.OPENVINO)
    detectors = {b: SCRFD(create_session(locate(SCRFD_500M), CPU, 0, b), SCRFD_500M) for b in backends}
    recognizers = {b: ArcFace(create_session(locate(ARCFACE_MBF), CPU, 0, b), ARCFACE_MBF) for b in backends}

    rgb = read_rgb(GROUP_PHOTOS["t1.jpg"])
    canvas = letterbox(rgb, (640, 640)).canvas
    (found,) = detectors[Backend.ONNXRUNTIME].detect_batch([canvas], [0.5])
    keypoints = found.scaled(1 / letterbox(rgb, (640, 640)).scale).keypoints
    arcface = recognizers[Backend.ONNXRUNTIME]
    faces = [warp_to_template(rgb, k, arcface.template, arcface.input_size) for k in keypoints]
    crops = np.stack((faces * 6)[:32])

    rows: dict[str, dict[str, float]] = {}
    for backend in backends:
        detector, recognizer = detectors[backend], recognizers[backend]
        row = {
            f"SCRFD-500M {canvas.shape[1]}x{canvas.shape[0]}, per image": median_ms(
                partial(detector.detect_batch, [canvas], [0.5]), args.runs
            )
        }
        for n in (1, 8, 16, 32):
            per_call = median_ms(partial(recognizer.embed, crops[:n]), args.runs)
            row[f"ArcFace MBF batch {n}, per face"] = per_call / n
        rows[backend.value] = row
    names = list(rows[Backend.ONNXRUNTIME.value])
    print("| model, unit | ONNX Runtime ms | OpenVINO ms | ratio |\n|---|---|---|---|")
    for name in names:
        a, b = rows["onnxruntime"][name], rows["openvino"][name]
        print(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "runtimes.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
