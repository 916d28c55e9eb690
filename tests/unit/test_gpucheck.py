"""The GPU start-up check's parts that run without a GPU: a CUDA session that ONNX Runtime
quietly starts on the CPU is refused, and the device comparison passes real CPU runs and fails on
mismatched embeddings or faces. On a GPU: ``python -m worker.gpucheck`` (docs/deployment.md)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

from worker import gpucheck
from worker.gpucheck import GpuCheckFailed, compare, run
from worker.inference.files import read_model
from worker.inference.registry import ARCFACE_MBF
from worker.inference.session import Device, DeviceUnavailable, create_session


def test_a_cuda_session_that_onnx_runtime_starts_on_the_cpu_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This CPU build lacks the CUDA provider: claimed available, ONNX Runtime falls back as it
    # does when the provider's libraries or the driver are missing on a GPU host.
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    model = read_model(ARCFACE_MBF)
    with (
        pytest.raises(DeviceUnavailable, match="could not start CUDAExecutionProvider"),
        pytest.warns(UserWarning, match="'CUDAExecutionProvider' is not in available provider names"),
    ):
        create_session(model, Device("cuda", 0))
    # The CPU keeps working.
    session = create_session(model, Device("cpu"))
    crop = np.zeros((1, 3, 112, 112), np.float32)
    assert session.run(None, {session.get_inputs()[0].name: crop})[0].shape == (1, 512)


@pytest.mark.slow
def test_the_comparison_passes_the_same_models_and_fails_on_other_faces() -> None:
    image = gpucheck.photo().read_bytes()
    first, second = run(Device("cpu"), image), run(Device("cpu"), image)
    assert first.faces == second.faces >= 2
    assert first.embeddings.shape == (first.faces, 512)
    assert compare(first, second) > 0.999
    shuffled = dataclasses.replace(second, embeddings=np.roll(second.embeddings, 1, axis=0))
    with pytest.raises(GpuCheckFailed, match="differ from the CPU's"):
        compare(first, shuffled)
    sure = int(np.argmax(second.probs))
    moved = second.boxes.copy()
    moved[sure] += 200  # a sure face the other device did not find where this one did
    with pytest.raises(GpuCheckFailed, match=r"1 faces found on cpu \(score >= 0.7\) are not on cpu"):
        compare(first, dataclasses.replace(second, boxes=moved))


def test_main_refuses_a_cpu_device(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACEREST_DEVICE", "cpu")
    assert gpucheck.main() == 1
    assert "FACEREST_DEVICE is cpu: set cuda:N" in capsys.readouterr().err
