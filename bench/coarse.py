"""Faces that fill the frame: recall of the pipeline with and without the coarse detection passes,
and what those passes cost per image.

A face of t1.jpg (testkit/photos.py: ``pasted_face``) is pasted at heights from 20 px up to the
whole canvas into canvases from 112 px to 8000 px wide, and each image goes through the worker's
pipeline in-process (decode, detect, align, embed) with the default request (max_size 640) and
with max_size 0. A face counts as found when a returned box overlaps the pasted one with IoU
>= 0.5. Each cell shows with / without the coarse passes: Y found, . missed.

python -m bench.coarse                       # SCRFD (the default detector)
python -m bench.coarse --detector retinaface
"""

from __future__ import annotations

import argparse
import json
import platform
from functools import partial
from pathlib import Path

import msgspec
import numpy as np
from numpy.typing import NDArray

from bench.timing import alternating_ms
from shared.contract import AnalysisOptions
from shared.settings import load_settings
from testkit.coarse import main_pass_only
from testkit.photos import encode, pasted_face, scaled_photo
from worker.analyzer import FaceAnalyzer
from worker.imaging.decode import decode_image
from worker.imaging.resize import Letterbox, coarse_levels, letterbox
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.models.base import Detector
from worker.models.postprocess import box_iou

RESULTS = Path(__file__).parent / "results"
CANVASES = ((112, 112), (320, 240), (640, 480), (1280, 960), (2000, 1500), (4000, 3000), (8000, 4500))
FACE_HEIGHTS = (20, 40, 80, 160, 320, 640, 1280, 2560)
FILL_FRACTIONS = (0.5, 0.8, 1.0)  # of the canvas height
FOUND_IOU = 0.5
MAX_IMAGE_PIXELS = 40_000_000
# Photos for the cost: (name, size) of t1.jpg scaled, and the request.
COST_CASES = (
    ("t1.jpg 1280x886, default", "t1.jpg", (1280, 886), (640, 640)),
    ("t1.jpg at 4000x2769 (11 MP), default", "t1.jpg", (4000, 2769), (640, 640)),
    ("t1.jpg at 4000x2769 (11 MP), max_size 0", "t1.jpg", (4000, 2769), (0, 0)),
    ("gdp.jpg 500x665, default", "gdp.jpg", (500, 665), (640, 640)),
)


def analyzers(detector: str) -> tuple[FaceAnalyzer, FaceAnalyzer]:
    """The worker's pipeline with the coarse passes, and the same models without them."""
    settings = load_settings(profile="insightface", detectors=detector, recognizer="arcface", attributes="")
    with_coarse = load_analyzer(settings, Device("cpu"))
    without = FaceAnalyzer(main_pass_only(with_coarse.models, detector), MAX_IMAGE_PIXELS)
    return with_coarse, without


def found(analyzer: FaceAnalyzer, image: bytes, box: NDArray[np.float32], options: AnalysisOptions) -> bool:
    (result,) = analyzer.analyze([image], options)
    if not result.faces:
        return False
    boxes = np.array([face.bbox for face in result.faces], np.float32)
    return bool(box_iou(boxes, box[None]).max() >= FOUND_IOU)


def face_heights(canvas: tuple[int, int]) -> list[int]:
    height = canvas[1]
    sizes = {size for size in FACE_HEIGHTS if size < 0.5 * height} | {
        round(f * height) for f in FILL_FRACTIONS
    }
    return sorted(sizes)


def recall_table(with_coarse: FaceAnalyzer, without: FaceAnalyzer) -> dict[str, dict[str, dict[int, str]]]:
    modes = {"default (max_size 640)": AnalysisOptions(), "max_size 0": AnalysisOptions(max_size=(0, 0))}
    table: dict[str, dict[str, dict[int, str]]] = {mode: {} for mode in modes}
    for canvas in CANVASES:
        for height in face_heights(canvas):
            image, box = pasted_face(canvas, height)
            data = encode(image)
            for mode, options in modes.items():
                cell = "".join("Y" if found(a, data, box, options) else "." for a in (with_coarse, without))
                table[mode].setdefault(f"{canvas[0]}x{canvas[1]}", {})[height] = f"{cell[0]}/{cell[1]}"
    return table


def print_table(table: dict[str, dict[str, dict[int, str]]]) -> None:
    for mode, rows in table.items():
        print(f"\n{mode}: found with / without coarse passes (face height px: cell)")
        for canvas, cells in rows.items():
            print(f"  {canvas:>10}  " + "  ".join(f"{height}:{cell}" for height, cell in cells.items()))
        total = [cell for cells in rows.values() for cell in cells.values()]
        print(
            f"  recall: {sum(c[0] == 'Y' for c in total)}/{len(total)} with, "
            f"{sum(c[2] == 'Y' for c in total)}/{len(total)} without"
        )


def _detect_stage(
    detector: Detector, image: NDArray[np.uint8], max_size: tuple[int, int], coarse: bool
) -> None:
    """The pipeline's detection stage alone: letterbox, the coarse copies, the network calls."""
    boxed = letterbox(image, max_size, max_pixels=load_settings().max_detect_pixels)
    detector.detect_batch([boxed.canvas], [0.6])
    for level in coarse_levels(boxed, detector.full_frame_side) if coarse else []:
        detector.detect_batch([level.canvas], [0.6])


def _coarse_calls(detector: Detector, levels: list[Letterbox]) -> None:
    for level in levels:
        detector.detect_batch([level.canvas], [0.6])


def cost(with_coarse: FaceAnalyzer, without: FaceAnalyzer, runs: int) -> dict[str, dict[str, float]]:
    """Median ms per image, with and without the coarse passes taking turns (one image a call,
    one thread): the whole pipeline, and its detection stage alone (less noisy)."""
    report = {}
    detector = next(iter(with_coarse.loaded.detectors.values()))
    for label, photo, size, max_size in COST_CASES:
        data = scaled_photo(photo, size)
        image = decode_image(data, MAX_IMAGE_PIXELS).pixels
        options = msgspec.structs.replace(AnalysisOptions(), max_size=max_size)
        boxed = letterbox(image, max_size, max_pixels=load_settings().max_detect_pixels)
        levels = coarse_levels(boxed, detector.full_frame_side)
        times = alternating_ms(
            {
                "with": partial(with_coarse.analyze, [data], options),
                "without": partial(without.analyze, [data], options),
                "detect_with": partial(_detect_stage, detector, image, max_size, True),
                "detect_without": partial(_detect_stage, detector, image, max_size, False),
                "main_call": partial(detector.detect_batch, [boxed.canvas], [0.6]),
                "coarse_calls": partial(_coarse_calls, detector, levels),
            },
            runs,
        )
        extra = times["with"] - times["without"]
        detect_extra = times["detect_with"] - times["detect_without"]
        report[label] = {**{f"{k}_ms": round(v, 1) for k, v in times.items()}, "extra_ms": round(extra, 1)}
        print(
            f"| {label} | {times['without']:.1f} | {times['with']:.1f} | {extra:+.1f} "
            f"({extra / times['without'] * 100:+.0f} %) | {times['detect_without']:.1f} "
            f"| {times['detect_with']:.1f} | {detect_extra:+.1f} "
            f"({detect_extra / times['detect_without'] * 100:+.0f} %) | {times['main_call']:.1f} "
            f"| {times['coarse_calls']:.1f} ({times['coarse_calls'] / times['main_call'] * 100:.0f} %) |"
        )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--detector", default="scrfd", choices=("scrfd", "retinaface"))
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--skip-recall", action="store_true", help="measure the cost only")
    args = parser.parse_args()
    with_coarse, without = analyzers(args.detector)
    print(f"{args.detector}, {platform.processor() or platform.machine()}")
    table = {} if args.skip_recall else recall_table(with_coarse, without)
    print_table(table)
    print(
        "\n| photo, request | pipeline without ms | with ms | extra | detection stage without ms "
        "| with ms | extra | main canvas call ms | coarse calls ms |\n|---|---|---|---|---|---|---|---|---|"
    )
    costs = cost(with_coarse, without, args.runs)
    with_coarse.close()
    without.close()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"coarse-{args.detector}.json"
    out.write_text(json.dumps({"recall": table, "cost": costs}, indent=2, default=str))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
