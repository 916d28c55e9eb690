"""JPEG decoding side by side: OpenCV (BGR, then RGB), facerest's decoder at full size, and its
reduced-size decode for a large photo.

    python -m bench.decode

The workload images (640x480 to 1920x1080) and t1.jpg blown up to 6400x4430 (28 MP), decoded
as the worker would for the default request and for one with min_face_size 224 (which lets a
large photo decode smaller). Medians of --runs calls.
"""

from __future__ import annotations

import argparse
from functools import partial

import cv2
import numpy as np

from bench.timing import median_ms
from bench.workload import workload
from shared.contract import AnalysisOptions
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from worker.imaging.decode import decode_image
from worker.pipeline import decode_scale

MAX_PIXELS = 40_000_000
ARCFACE_INPUT = 112


def opencv_rgb(data: bytes) -> object:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    t1 = read_rgb(GROUP_PHOTOS["t1.jpg"])
    big = encode(
        np.asarray(
            cv2.resize(t1, (t1.shape[1] * 5, t1.shape[0] * 5), interpolation=cv2.INTER_CUBIC), np.uint8
        )
    )
    images = [(item.name, item.jpeg) for item in workload()] + [("t1 x5, 6400x4430", big)]
    rule = decode_scale(AnalysisOptions(min_face_size=224), ARCFACE_INPUT)
    print("| image | OpenCV + BGR->RGB ms | facerest ms | facerest, min_face_size 224 ms | decoded at |")
    print("|---|---|---|---|---|")
    for name, data in images:
        opencv = median_ms(partial(opencv_rgb, data), args.runs)
        full = median_ms(partial(decode_image, data, MAX_PIXELS), args.runs)
        reduced = median_ms(partial(decode_image, data, MAX_PIXELS, rule), args.runs)
        shape = decode_image(data, MAX_PIXELS, rule).pixels.shape
        print(f"| {name} | {opencv:.1f} | {full:.1f} | {reduced:.1f} | {shape[1]}x{shape[0]} |")


if __name__ == "__main__":
    main()
