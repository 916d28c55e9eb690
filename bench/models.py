"""Per-model latency on this machine: detectors per image, face models per face, batch 1 and 8.

python -m bench.models [--runs 20]   # prints a markdown table, writes bench/results/models.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.timing import median_ms
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS, read_rgb
from worker.analyzer import FaceAnalyzer
from worker.imaging.align import warp_to_template
from worker.imaging.resize import letterbox
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.models.base import Detections, Recognizer

RESULTS = Path(__file__).parent / "results"
BATCH = 8


@dataclass(frozen=True)
class Row:
    model: str
    unit: str
    batch1_ms: float
    batched_ms: float | None  # per unit, at BATCH units per call; None: the model takes one image


def faces_of(count: int, found: Detections) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``count`` boxes and keypoint sets, cycling through the photo's faces."""
    index = np.arange(count) % len(found)
    return found.boxes[index], found.keypoints[index]


def crops_for(
    recognizer: Recognizer, image: NDArray[np.uint8], keypoints: NDArray[np.float32]
) -> NDArray[np.uint8]:
    size = recognizer.input_size
    return np.stack([warp_to_template(image, points, recognizer.template, size) for points in keypoints])


def measure_once(
    analyzer: FaceAnalyzer,
    permissive: FaceAnalyzer,
    image: NDArray[np.uint8],
    canvas: NDArray[np.uint8],
    found: Detections,
    runs_arg: int,
) -> list[Row]:
    """One round over every model."""
    rows: list[Row] = []
    for name, detector in analyzer.loaded.detectors.items():
        runs = max(3, runs_arg // 4) if name == "mtcnn" else runs_arg
        # Same-sized canvases go in one call (MTCNN loops over them inside).
        batched = median_ms(partial(detector.detect_batch, [canvas] * BATCH, [0.5] * BATCH), runs, warmup=1)
        rows.append(
            Row(
                f"{name} ({detector.spec.name})",
                "image",
                median_ms(partial(detector.detect_batch, [canvas], [0.5]), runs, warmup=1),
                batched / BATCH,
            )
        )
    for recognizer in (analyzer.loaded.recognizer, permissive.loaded.recognizer):
        runs = max(3, runs_arg // 4) if recognizer.spec.key == "dlib" else runs_arg
        one = crops_for(recognizer, image, faces_of(1, found)[1])
        many = crops_for(recognizer, image, faces_of(BATCH, found)[1])
        rows.append(
            Row(
                f"{recognizer.spec.key} ({recognizer.spec.name})",
                "face",
                median_ms(partial(recognizer.embed, one), runs, warmup=1),
                median_ms(partial(recognizer.embed, many), runs, warmup=1) / BATCH,
            )
        )
    landmarks, genderage = analyzer.loaded.landmarks106, analyzer.loaded.genderage
    assert landmarks is not None and genderage is not None
    rows.append(
        Row(
            f"landmarks106 ({landmarks.spec.name})",
            "face",
            median_ms(lambda: landmarks.landmarks(image, faces_of(1, found)[0]), runs_arg, warmup=1),
            median_ms(lambda: landmarks.landmarks(image, faces_of(BATCH, found)[0]), runs_arg, warmup=1)
            / BATCH,
        )
    )
    rows.append(
        Row(
            "genderage (dlib gender + age, 6 views)",
            "face",
            median_ms(lambda: genderage.predict(image, faces_of(1, found)[1]), runs_arg, warmup=1),
            median_ms(lambda: genderage.predict(image, faces_of(BATCH, found)[1]), runs_arg, warmup=1)
            / BATCH,
        )
    )

    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photo", default="t1.jpg", choices=sorted(GROUP_PHOTOS))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="report each model's best round median")
    args = parser.parse_args()

    cpu = Device("cpu")
    everything = load_settings(detectors="scrfd,retinaface,mtcnn", attributes="genderage,landmarks106")
    analyzer = load_analyzer(everything, cpu)
    permissive = load_analyzer(load_settings(profile="permissive", attributes=""), cpu)
    image = read_rgb(GROUP_PHOTOS[args.photo])
    canvas = letterbox(image, (640, 640)).canvas
    (in_canvas,) = analyzer.loaded.detectors["scrfd"].detect_batch([canvas], [0.5])
    found = in_canvas.scaled(1.0 / letterbox(image, (640, 640)).scale)  # full-size image px

    rounds = [measure_once(analyzer, permissive, image, canvas, found, args.runs) for _ in range(args.rounds)]
    # On a shared machine other processes take cores at random moments: a model's best round
    # median is the closest estimate of its own cost.
    rows = [
        Row(
            first.model,
            first.unit,
            min(r[i].batch1_ms for r in rounds),
            None if first.batched_ms is None else min(r[i].batched_ms or 0.0 for r in rounds),
        )
        for i, first in enumerate(rounds[0])
    ]

    height, width = canvas.shape[:2]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, CPU only"
    print(f"\n{args.photo}: detectors on a {width}x{height} canvas; face models on its faces; {machine}")
    print(
        f"best of {args.rounds} rounds of the median of {args.runs} runs "
        f"(MTCNN and dlib: {max(3, args.runs // 4)}) after one warm-up\n"
    )
    print(f"| model | per | batch 1, ms | batch {BATCH}, ms per unit |\n|---|---|---|---|")
    for row in rows:
        cell = f"{row.batched_ms:.1f}" if row.batched_ms is not None else "— (no batched call)"
        print(f"| {row.model} | {row.unit} | {row.batch1_ms:.1f} | {cell} |")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "models.json"
    report = {
        "photo": args.photo,
        "canvas": [width, height],
        "machine": machine,
        "runs": args.runs,
        "rounds": args.rounds,
        "batch": BATCH,
        "rows": [row.__dict__ for row in rows],
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
