"""Probe: int8 ArcFace MBF against fp32, accuracy and speed, on two runtimes.

    python -m bench.int8_probe                         # ONNX Runtime static QDQ (per-tensor)
    python -m bench.int8_probe --runtime openvino      # OpenVINO + NNCF post-training int8
    python -m bench.int8_probe --runtime openvino --accuracy-control 0.006

Calibrates on augmented copies (flips, brightness, shifts) of the aligned faces of the package
photos, then compares every face's embedding with fp32 (cosine) and the per-face time at batch
8, fp32 and int8 calls taking turns. ``--accuracy-control D`` lets NNCF put layers back to fp32
until the lowest cosine over the faces (and their mirror images) is within D of 1. The quantized
model stays in memory or a temporary directory; nothing here is used by the worker.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from bench.timing import alternating_ms
from testkit.photos import GROUP_PHOTOS, read_rgb
from worker.imaging.align import ARCFACE_SIZE, arcface_template, warp_to_template
from worker.imaging.resize import letterbox
from worker.inference.files import locate
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M
from worker.inference.session import Device, create_session
from worker.models.scrfd import SCRFD

INPUT = "input.1"
Embed = Callable[[NDArray[np.float32]], NDArray[np.float32]]


class Faces(CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, samples: list[NDArray[np.float32]]) -> None:
        self._feeds = iter([{INPUT: sample} for sample in samples])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)


def face_blob() -> NDArray[np.float32]:
    detector = SCRFD(create_session(locate(SCRFD_500M), Device("cpu")), SCRFD_500M)
    crops = []
    for path in GROUP_PHOTOS.values():
        rgb = read_rgb(path)
        boxed = letterbox(rgb, (640, 640))
        (found,) = detector.detect_batch([boxed.canvas], [0.5])
        keypoints = found.scaled(1 / boxed.scale).keypoints
        crops += [warp_to_template(rgb, k, arcface_template(), ARCFACE_SIZE) for k in keypoints]
    blob = cv2.dnn.blobFromImages(crops, 1 / 127.5, (112, 112), (127.5,) * 3, swapRB=False)
    return np.asarray(blob, np.float32)


def calibration_set(blob: NDArray[np.float32], copies: int = 10) -> list[NDArray[np.float32]]:
    """Batch-1 samples: each face mirrored every other copy, brightness/contrast and position jittered."""
    rng = np.random.default_rng(0)
    samples = []
    for face in blob:
        for copy in range(copies):
            sample = face[:, :, ::-1] if copy % 2 else face
            sample = sample * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)
            shift = rng.integers(-3, 4, 2)
            sample = np.roll(sample, (int(shift[0]), int(shift[1])), axis=(1, 2))
            samples.append(np.clip(sample, -1, 1).astype(np.float32)[None])
    return samples


def onnxruntime_pair(blob: NDArray[np.float32], tmp: Path) -> tuple[Embed, Embed]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    int8_path = tmp / "w600k_mbf_int8.onnx"
    quantize_static(
        str(locate(ARCFACE_MBF)),
        str(int8_path),
        Faces(calibration_set(blob)),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    sessions = [
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for path in (locate(ARCFACE_MBF), int8_path)
    ]
    fp32, int8 = (lambda x, s=s: np.asarray(s.run(None, {INPUT: x})[0], np.float32) for s in sessions)
    return fp32, int8


def unit(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray(vectors / np.linalg.norm(vectors, axis=-1, keepdims=True), np.float32)


def openvino_pair(blob: NDArray[np.float32], max_drop: float | None) -> tuple[Embed, Embed]:
    import nncf
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(locate(ARCFACE_MBF)))
    model.reshape({port.get_any_name(): ov.PartialShape([-1, 3, 112, 112]) for port in model.inputs})
    calibration = nncf.Dataset(calibration_set(blob))
    if max_drop is None:
        quantized = nncf.quantize(
            model, calibration, subset_size=len(blob) * 10, preset=nncf.QuantizationPreset.MIXED
        )
    else:
        faces = np.concatenate([blob, blob[:, :, :, ::-1]])
        request = core.compile_model(model, "CPU").create_infer_request()
        reference = unit(np.asarray(request.infer({0: faces})[0], np.float32))
        pairs = [(faces[i : i + 1], reference[i]) for i in range(len(faces))]

        def lowest_cosine(compiled: Any, data: Iterable[Any]) -> tuple[float, list[float]]:
            infer = compiled.create_infer_request()
            cosines = [float(unit(infer.infer({0: x})[0][0]) @ ref) for x, ref in data]
            return min(cosines), cosines

        quantized = nncf.quantize_with_accuracy_control(
            model,
            calibration,
            nncf.Dataset(pairs),
            lowest_cosine,
            max_drop=max_drop,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(blob) * 10,
        )
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    requests = [core.compile_model(m, "CPU", config).create_infer_request() for m in (model, quantized)]
    fp32, int8 = (lambda x, r=r: np.asarray(r.infer({0: x})[0], np.float32).copy() for r in requests)
    return fp32, int8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runtime", choices=("onnxruntime", "openvino"), default="onnxruntime")
    parser.add_argument("--accuracy-control", type=float, metavar="MAX_DROP", help="openvino only")
    args = parser.parse_args()
    blob = face_blob()
    with tempfile.TemporaryDirectory() as tmp:
        if args.runtime == "openvino":
            fp32, int8 = openvino_pair(blob, args.accuracy_control)
        else:
            fp32, int8 = onnxruntime_pair(blob, Path(tmp))
        cosine = (unit(fp32(blob)) * unit(int8(blob))).sum(axis=1)
        print(f"{len(cosine)} faces: cosine int8 vs fp32 min {cosine.min():.4f}, mean {cosine.mean():.4f}")
        batch = np.ascontiguousarray(blob[:8])
        times = alternating_ms({"fp32": lambda: fp32(batch), "int8": lambda: int8(batch)})
        per_face = {name: value / len(batch) for name, value in times.items()}
        print(
            f"per face at batch 8: fp32 {per_face['fp32']:.2f} ms, int8 {per_face['int8']:.2f} ms, "
            f"{per_face['fp32'] / per_face['int8']:.2f}x"
        )


if __name__ == "__main__":
    main()
