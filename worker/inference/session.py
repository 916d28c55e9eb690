"""The one place that chooses how a model runs: the runtime (backend) and its execution providers.

Models program against ``ModelSession``, the small part of ONNX Runtime's InferenceSession they
use; an OpenVINO-compiled model is wrapped to offer the same calls, so any model class runs on
either runtime.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from shared.settings import Backend
from worker.inference.int8 import Ranges, quantize


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
    # The `gpu` extra's CUDA and cuDNN libraries are wheels in site-packages/nvidia, which the
    # dynamic linker does not search: ONNX Runtime's own loader opens them first (on a host without
    # the wheels, from the default paths). The GPU image also lists them in ld.so.cache.
    ort.preload_dlls()
    cuda_options = {"device_id": device.index, "cudnn_conv_algo_search": "HEURISTIC"}
    return [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    shape: list[int | str | None]


class ModelSession(Protocol):
    def get_inputs(self) -> Sequence[Any]: ...

    def get_outputs(self) -> Sequence[Any]: ...

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, Any]) -> list[Any]: ...


class OpenVinoSession:
    """An OpenVINO CPU model behind InferenceSession's ``get_inputs``/``get_outputs``/``run``."""

    def __init__(self, source: Path | bytes, threads: int, quantization: bytes | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        # read_model takes an ONNX file's path, or its bytes (RetinaFace's weights are a constant).
        model = core.read_model(source if isinstance(source, bytes) else str(source))
        # Let the batch axis vary (w600k_mbf's file declares batch 1 on its output).
        model.reshape(
            {
                port.get_any_name(): ov.PartialShape([-1, *port.get_partial_shape()[1:]])
                for port in model.inputs
            }
        )
        if quantization is not None:  # an int8 network: the fp32 file plus its ranges
            model = quantize(model, Ranges.parse(quantization))
        # No CPU pinning: OpenVINO pins its inference threads to cores by default, the same cores
        # in every process, so two workers on one machine ran their recognizers on one core in
        # turns (bench/video.py: a second worker added 0.3x the first's frames/s; bench/pinning.py:
        # two processes of 40 ArcFace batches took 7.8 s each pinned, 3.8 s unpinned, 3.6 s alone).
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
            "ENABLE_CPU_PINNING": False,
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._compiled = core.compile_model(model, "CPU", config)
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: calls take turns
        self._inputs = [
            TensorInfo(p.get_any_name(), _dims(p.get_partial_shape())) for p in self._compiled.inputs
        ]
        self._outputs = [
            TensorInfo(p.get_any_name(), _dims(p.get_partial_shape())) for p in self._compiled.outputs
        ]

    def setting(self, name: str) -> object:
        """A property of the compiled model as OpenVINO applied it (``ENABLE_CPU_PINNING``, ...)."""
        return self._compiled.get_property(name)

    def get_inputs(self) -> list[TensorInfo]:
        return self._inputs

    def get_outputs(self) -> list[TensorInfo]:
        return self._outputs

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, Any]) -> list[NDArray[np.float32]]:
        names = list(output_names) if output_names is not None else [o.name for o in self._outputs]
        with self._lock:
            results = self._request.infer(dict(feeds))
            by_name = {port.get_any_name(): value for port, value in results.items()}
            return [np.array(by_name[name], copy=True) for name in names]


def _dims(shape: Any) -> list[int | str | None]:
    return [d.get_length() if d.is_static else None for d in shape]


def resolve_backend(requested: Backend, device: Device, preferred_on_cpu: Backend) -> Backend:
    """``auto`` picks the runtime measured fastest for this model on this device (bench/runtimes.py)."""
    if requested is not Backend.AUTO:
        if requested is Backend.OPENVINO and device.kind != "cpu":
            raise DeviceUnavailable(f"the OpenVINO backend runs on the CPU only, not on {device}")
        return requested
    return preferred_on_cpu if device.kind == "cpu" else Backend.ONNXRUNTIME


def create_session(
    model: Path | bytes,
    device: Device,
    intra_op_threads: int = 0,
    backend: Backend = Backend.ONNXRUNTIME,
    dynamic_shapes: bool = False,
    quantization: bytes | None = None,
) -> ModelSession:
    """A session for a model's verified file or bytes (worker/inference/files.py), on either runtime.

    ``dynamic_shapes``: the input's size changes from call to call (detectors on a CPU, whose
    canvas follows the photo); such a session allocates per call instead of keeping an arena.
    ``quantization``: an int8 network's ranges file (worker/inference/int8.py), OpenVINO only.
    """
    if backend is Backend.OPENVINO:
        return OpenVinoSession(model, intra_op_threads, quantization)
    if quantization is not None:
        raise DeviceUnavailable(
            f"int8 networks (arcface_int8) run on the CPU with OpenVINO, not with {backend} on {device}: "
            "choose FACEREST_RECOGNIZER=arcface there"
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads or (os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    # w600k_mbf declares batch 1 in its output shape and warns on every batched call.
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # ONNX Runtime's CPU arena keeps its largest size for the life of the session: one 36 MP
    # canvas left SCRFD holding 1.3 GB more after the call. Without it, the activations go back
    # to malloc, which returns blocks this large to the system at once (bench/memory.py --options:
    # RSS back to its level before the call, detection time unchanged on 640x448 canvases).
    # Fixed-shape models (face crops, GPU canvases) keep the arena: it never grows past one shape.
    options.enable_cpu_mem_arena = not dynamic_shapes
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, sess_options=options, providers=providers_for(device))
    # ONNX Runtime falls back to the CPU with only a logged error when the CUDA provider cannot
    # start (a CUDA or cuDNN library missing, no driver): a "GPU" worker would then run every
    # model on the CPU. Fail at load instead (python -m worker.gpucheck relies on it too).
    if device.kind == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        raise DeviceUnavailable(
            f"device {device} requested but ONNX Runtime could not start CUDAExecutionProvider "
            f"(the session runs on {', '.join(session.get_providers())}): check the NVIDIA driver "
            "and the CUDA 13 / cuDNN 9 libraries (the `gpu` extra)"
        )
    checked: ModelSession = session
    return checked


def torch_device(device: Device) -> str:
    """The PyTorch device string for models run by PyTorch (MTCNN), checked like the providers."""
    import torch

    if device.kind == "cpu":
        return "cpu"
    if not torch.cuda.is_available() or device.index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"device {device} requested but PyTorch sees no such CUDA device")
    return str(device)
