#!/bin/sh
# Build-time checks of the GPU worker image (docker/worker-gpu.Dockerfile), none needing a GPU:
# ONNX Runtime is the GPU build (no CPU onnxruntime beside it) and offers CUDAExecutionProvider;
# every shared library that ONNX Runtime and the nvidia-* wheels (CUDA, cuDNN) link resolves inside
# the image, except the driver's libcuda.so.1 (the NVIDIA container toolkit mounts it at start);
# the weights' SHA-256 (python -m worker.weights).
# With a GPU, `python -m worker.gpucheck` runs the models on it.
set -eu
python - <<'PY'
import importlib.metadata as m
import onnxruntime as ort
assert m.version("onnxruntime-gpu"), "onnxruntime-gpu is not installed"
try:
    m.version("onnxruntime")
except m.PackageNotFoundError:
    pass
else:
    raise SystemExit("the CPU onnxruntime is installed beside onnxruntime-gpu")
providers = ort.get_available_providers()
assert "CUDAExecutionProvider" in providers, providers
print("gpu-image-check: onnxruntime", ort.__version__, providers)
PY
capi=$(python -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')
nvidia=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia
# The TensorRT provider is left out: TensorRT is no dependency (it links libnvinfer.so.10), and
# the worker's sessions ask for CUDA and the CPU only (worker/inference/session.py).
missing=$(find "$capi" "$nvidia" -name 'lib*.so*' -type f ! -name 'libonnxruntime_providers_tensorrt.so' \
  | while read -r lib; do ldd "$lib" | sed -n "s|^\s*\(\S*\) => not found|$lib: \1|p"; done \
  | grep -v ': libcuda\.so\.1$' || true)
if [ -n "$missing" ]; then
  echo "gpu-image-check: unresolved libraries:" >&2
  echo "$missing" >&2
  exit 1
fi
echo "gpu-image-check: every CUDA/cuDNN library resolves (but the driver's libcuda.so.1)"
ldd "$capi/libonnxruntime_providers_cuda.so" | grep -E 'libcu|libnvrtc'
python -m worker.weights
