#!/usr/bin/env bash
# Builds facerest's images with podman (make test-images runs it; usable by hand as well):
# facerest-api and facerest-worker-cpu from docker/Dockerfile, on the local Debian base of
# scripts/podman-base.sh (no registry needed), or with IMAGE_BASE=official on
# python:3.11-slim-bookworm. With GPU=1 also facerest-worker-gpu (docker/worker-gpu.Dockerfile) on
# the same base: its CUDA and cuDNN libraries are PyPI wheels, so it builds without a GPU or an
# NVIDIA registry (about 4.6 GB; make test-images leaves it out).
# Layers are cached by podman: a rebuild after a code change reinstalls no dependency.
# Prints the image names and their sizes; writes the base images' names to var/images/base.env
# for compose (REDIS_IMAGE, HAPROXY_IMAGE, PYTHON_IMAGE).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/docker/podman/containers.conf}
# Docker's image format: OCI images drop HEALTHCHECK, which compose and the tests rely on.
export BUILDAH_FORMAT=docker

say() { echo "build-images: $*" >&2; }
command -v podman >/dev/null || { say "podman is not installed (scripts/install-system-deps.sh --images)"; exit 1; }

mkdir -p var/images
if [ "${IMAGE_BASE:-local}" = official ]; then
  python_image=python:3.11-slim-bookworm redis_image=redis:7.2-alpine haproxy_image=haproxy:2.6-alpine
else
  start=$SECONDS
  { read -r python_image; read -r redis_image; read -r haproxy_image; } < <(scripts/podman-base.sh)
  say "base images ready in $((SECONDS - start)) s: $python_image $redis_image $haproxy_image"
fi
printf 'PYTHON_IMAGE=%s\nREDIS_IMAGE=%s\nHAPROXY_IMAGE=%s\n' "$python_image" "$redis_image" "$haproxy_image" \
  > var/images/base.env

build() {  # tag, then podman build arguments
  local tag=$1 start=$SECONDS old
  shift
  old=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  say "building $tag"
  if ! podman build --network host --layers -t "$tag" "$@" . > "var/images/${tag#*/}.log" 2>&1; then
    tail -40 "var/images/${tag#*/}.log" >&2
    say "building $tag failed (whole log: var/images/${tag#*/}.log)"
    exit 1
  fi
  # The image the tag named before, now untagged: 1 GB a run otherwise (not the layer cache,
  # which is the build stages' images; podman refuses while a container uses it).
  if [ -n "$old" ] && [ "$old" != "$(podman image inspect --format '{{.Id}}' "$tag")" ]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
  say "built $tag in $((SECONDS - start)) s"
}
build localhost/facerest-api:latest -f docker/Dockerfile --target api --build-arg "PYTHON_IMAGE=$python_image"
build localhost/facerest-worker-cpu:latest -f docker/Dockerfile --target worker-cpu \
  --build-arg "PYTHON_IMAGE=$python_image"
if [ "${GPU:-0}" = 1 ]; then
  build localhost/facerest-worker-gpu:latest -f docker/worker-gpu.Dockerfile --build-arg "PYTHON_IMAGE=$python_image"
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^localhost/facerest-' | sort
