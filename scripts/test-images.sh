#!/usr/bin/env bash
# make test-images: build the images (scripts/build-images.sh: the local Debian base once, then
# podman's layer cache) and run tests/images against compose.yaml with podman-compose. The
# test project's containers and volumes are removed before and after, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/docker/podman/containers.conf}
python=${PYTHON:-.venv/bin/python}
project=facerest-images-test

down() {
  "${python%/python}/podman-compose" -p "$project" -f compose.yaml down -v >/dev/null 2>&1 || true
  # What compose may not know of any more (an interrupted run, a changed compose.yaml).
  podman ps -aq --filter "label=io.podman.compose.project=$project" | xargs -r podman rm -f >/dev/null 2>&1 || true
  podman volume ls -q --filter "label=io.podman.compose.project=$project" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
}
trap down EXIT
down

start=$SECONDS
scripts/build-images.sh
build_s=$((SECONDS - start))
"$python" -m pytest tests/images -p no:cacheprovider -v -s --durations=0 "$@"
echo "test-images: images built in $build_s s, whole run $((SECONDS - start)) s"
