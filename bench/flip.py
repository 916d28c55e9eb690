"""Mirror-augmented embeddings ("flip": true): what they do to similarities and what they cost.

Similarities on the package photos: each face of t1.jpg (six people) against itself in altered
copies of the photo (rotated, smaller, heavy JPEG, darker: same person), and every pair of
different faces in t1.jpg, gdp.jpg and players.jpg (different people). Cost: images/s of the
in-process pipeline on t1.jpg (six faces), flip off and on taking turns.

python -m bench.flip
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import msgspec
import numpy as np
from numpy.typing import NDArray

from bench.timing import alternating_ms
from shared.contract import AnalysisOptions, ImageResult
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from worker.analyzer import FaceAnalyzer
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.models.postprocess import box_iou

RESULTS = Path(__file__).parent / "results"
Image = NDArray[np.uint8]
# Geometric alterations move the faces: each returns the image and the 2x3 matrix that maps
# original px to its px (for matching the faces).
Alteration = Callable[[Image], tuple[Image, NDArray[np.float64]]]


def _rotated(image: Image, degrees: float = 12.0) -> tuple[Image, NDArray[np.float64]]:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(image, matrix, (width, height)), np.uint8), np.asarray(
        matrix, np.float64
    )


def _smaller(image: Image, factor: float = 0.5) -> tuple[Image, NDArray[np.float64]]:
    height, width = image.shape[:2]
    small = cv2.resize(image, (int(width * factor), int(height * factor)), interpolation=cv2.INTER_AREA)
    return np.asarray(small, np.uint8), np.array([[factor, 0, 0], [0, factor, 0]])


def _jpeg(image: Image, quality: int = 15) -> tuple[Image, NDArray[np.float64]]:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), np.uint8), np.eye(2, 3)


def _darker(image: Image, gamma: float = 1.8) -> tuple[Image, NDArray[np.float64]]:
    table = np.array([255 * (i / 255) ** gamma for i in range(256)], np.uint8)
    return np.asarray(cv2.LUT(image, table), np.uint8), np.eye(2, 3)


ALTERATIONS: dict[str, Alteration] = {
    "rotated 12 deg": _rotated,
    "half size": _smaller,
    "JPEG quality 15": _jpeg,
    "gamma 1.8": _darker,
}


@dataclass(frozen=True, slots=True)
class Similarities:
    same: NDArray[np.floating]  # one per (face of t1.jpg, alteration)
    different: NDArray[np.floating]  # one per pair of different faces in one photo


def _vectors(result: ImageResult) -> NDArray[np.float32]:
    return np.stack([np.frombuffer(face.vec or b"", np.float32) for face in result.faces])


def _boxes(result: ImageResult) -> NDArray[np.float32]:
    return np.array([face.bbox for face in result.faces], np.float32)


def similarities(analyzer: FaceAnalyzer, flip: bool) -> Similarities:
    options = AnalysisOptions(flip=flip)
    original = read_rgb(GROUP_PHOTOS["t1.jpg"])
    altered = {name: alter(original) for name, alter in ALTERATIONS.items()}
    photos = [encode(original)] + [encode(image) for image, _ in altered.values()]
    base, *copies = analyzer.analyze(photos, options)
    same: list[float] = []
    for (_, matrix), copy in zip(altered.values(), copies, strict=True):
        for face, vector in zip(base.faces, _vectors(base), strict=True):
            corners = np.array(face.bbox).reshape(2, 2)
            moved = corners @ matrix[:, :2].T + matrix[:, 2]
            box = np.concatenate([moved.min(axis=0), moved.max(axis=0)])[None]
            match = int(box_iou(_boxes(copy), box).argmax())
            same.append(float(vector @ _vectors(copy)[match]))
    different: list[float] = []
    groups = [
        base,
        *analyzer.analyze([GROUP_PHOTOS[n].read_bytes() for n in ("gdp.jpg", "players.jpg")], options),
    ]
    for result in groups:
        pairs = _vectors(result) @ _vectors(result).T
        different += pairs[np.triu_indices(len(pairs), k=1)].tolist()
    return Similarities(np.array(same), np.array(different))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    analyzer = load_analyzer(
        load_settings(profile="insightface", detectors="scrfd", recognizer="arcface", attributes=""),
        Device("cpu"),
    )
    report: dict[str, dict[str, float]] = {}
    print(f"{platform.processor() or platform.machine()}\n")
    print("| flip | same person: mean | min | different people: mean | max | images/s (t1.jpg, 6 faces) |")
    print("|---|---|---|---|---|---|")
    photo = GROUP_PHOTOS["t1.jpg"].read_bytes()
    times = alternating_ms(
        {
            str(flip): partial(
                analyzer.analyze, [photo], msgspec.structs.replace(AnalysisOptions(), flip=flip)
            )
            for flip in (False, True)
        },
        args.runs,
    )
    for flip in (False, True):
        found = similarities(analyzer, flip)
        rate = 1000 / times[str(flip)]
        report[f"flip={flip}"] = {
            "same_mean": round(float(found.same.mean()), 4),
            "same_min": round(float(found.same.min()), 4),
            "different_mean": round(float(found.different.mean()), 4),
            "different_max": round(float(found.different.max()), 4),
            "images_per_s": round(rate, 2),
            "ms_per_image": round(times[str(flip)], 1),
        }
        row = report[f"flip={flip}"]
        print(
            f"| {flip} | {row['same_mean']:.4f} | {row['same_min']:.4f} | {row['different_mean']:.4f} "
            f"| {row['different_max']:.4f} | {rate:.2f} |"
        )
    print(f"\nflip costs {times['True'] / times['False']:.2f}x the time per image (same run, taking turns)")
    analyzer.close()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "flip.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
