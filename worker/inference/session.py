"""The one place that chooses ONNX Runtime execution providers and builds sessions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort


class DeviceUnavailable(RuntimeError):
    """The requested device has no execution provider in this ONNX Runtime build."""


@dataclass(frozen=True, slots=True)
class Device:
    """``cpu`` or ``cuda:N``."""

    kind: str
    index: int = 0

    @classmethod
    def parse(cls, text: str) -> Device:
        if text == "cpu":
            return cls("cpu")
        if text.startswith("cuda:") and text[5:].isdigit():
            return cls("cuda", int(text[5:]))
        raise ValueError(f"device must be 'cpu' or 'cuda:N', got {text!r}")

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def providers_for(device: Device) -> list[str | tuple[str, dict[str, Any]]]:
    """Ordered provider list for a device; fails clearly when the device cannot be served."""
    available = ort.get_available_providers()
    if device.kind == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise DeviceUnavailable(
            f"device {device} requested but ONNX Runtime has no CUDAExecutionProvider "
            f"(available: {', '.join(available)}); install the 'gpu' extra (onnxruntime-gpu)"
        )
    cuda_options = {"device_id": device.index, "cudnn_conv_algo_search": "HEURISTIC"}
    return [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]


def create_session(model: Path | bytes, device: Device, intra_op_threads: int = 0) -> ort.InferenceSession:
    """A session for a model file or for a model's verified bytes (see registry.read_model)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads or (os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    # w600k_mbf declares batch 1 in its output shape and warns on every batched call.
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=providers_for(device))


def torch_device(device: Device) -> str:
    """The PyTorch device string for models run by PyTorch (MTCNN), checked like the providers."""
    import torch

    if device.kind == "cpu":
        return "cpu"
    if not torch.cuda.is_available() or device.index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"device {device} requested but PyTorch sees no such CUDA device")
    return str(device)
