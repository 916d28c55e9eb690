"""Probe: ONNX Runtime static int8 quantization of ArcFace MBF, accuracy and speed against fp32.

    python -m bench.int8_probe [--per-channel]

Calibrates on every other aligned face of the package photos, then compares embeddings of all
faces (cosine to fp32) and the per-face time at batch 32. Writes the quantized model to a
temporary directory only; nothing here is used by the worker.
"""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from bench.timing import median_ms
from tests.images import GROUP_PHOTOS, read_rgb
from worker.imaging.align import norm_crop
from worker.imaging.resize import letterbox
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M, locate
from worker.inference.session import Device, create_session
from worker.models.scrfd import SCRFD

INPUT = "input.1"


class Faces(CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, blob: NDArray[np.float32]) -> None:
        self._feeds = iter([{INPUT: blob[i : i + 1]} for i in range(len(blob))])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)


def face_blob() -> NDArray[np.float32]:
    detector = SCRFD(create_session(locate(SCRFD_500M), Device("cpu")), SCRFD_500M)
    crops = []
    for path in GROUP_PHOTOS.values():
        rgb = read_rgb(path)
        boxed = letterbox(rgb, (640, 640))
        found = detector.detect(boxed.canvas, 0.5).scaled(1 / boxed.scale)
        crops += [norm_crop(rgb, points) for points in found.keypoints]
    blob = cv2.dnn.blobFromImages(crops, 1 / 127.5, (112, 112), (127.5,) * 3, swapRB=False)
    return np.asarray(blob, np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-channel", action="store_true", help="needs opset >= 13")
    args = parser.parse_args()
    blob = face_blob()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        int8_path = Path(tmp) / "w600k_mbf_int8.onnx"
        quantize_static(
            str(locate(ARCFACE_MBF)),
            str(int8_path),
            Faces(blob[::2]),
            quant_format=QuantFormat.QDQ,
            per_channel=args.per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        sessions = {
            "fp32": ort.InferenceSession(
                str(locate(ARCFACE_MBF)), options, providers=["CPUExecutionProvider"]
            ),
            "int8": ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"]),
        }
        vectors = {name: s.run(None, {INPUT: blob})[0] for name, s in sessions.items()}
        a, b = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in vectors.values())
        cosine = (a * b).sum(axis=1)
        print(f"{len(cosine)} faces: cosine int8 vs fp32 min {cosine.min():.4f}, mean {cosine.mean():.4f}")
        batch = blob[:32]
        for name, session in sessions.items():
            per_face = median_ms(partial(session.run, None, {INPUT: batch}), 10) / len(batch)
            print(f"{name}: {per_face:.2f} ms per face at batch {len(batch)}")


if __name__ == "__main__":
    main()
