#!/usr/bin/env bash
# Local base images for hosts that reach no image registry (make test-images): a Debian 12
# (bookworm) root file system made with debootstrap and imported into podman, with Debian's
# Python 3.11, and Redis and HAProxy images made from it with their Debian packages. Each image is
# built only when missing: the base's tag carries BASE_VERSION (raise it when what goes in
# changes), the others' also a hash of their Containerfile.
# The base carries this host's CA bundle (and PIP_CERT pointing at it), so pip inside a build
# reaches the package index through the same TLS interception, if any, as pip on the host.
#   scripts/podman-base.sh            # prints the three image names, one per line
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/docker/podman/containers.conf}
BASE_VERSION=1
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=localhost/facerest-base:bookworm-$BASE_VERSION
tag() { echo "bookworm-$BASE_VERSION-$(sha256sum "docker/podman/$1.Containerfile" | head -c 8)"; }
redis=localhost/facerest-redis:$(tag redis)
haproxy=localhost/facerest-haproxy:$(tag haproxy)

say() { echo "podman-base: $*" >&2; }

if ! podman image exists "$base"; then
  [ "$(id -u)" -eq 0 ] || { say "debootstrap needs root: run this as root once (the base is then cached)"; exit 1; }
  command -v debootstrap >/dev/null || PATH=$PATH:/usr/sbin
  for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || { say "$tool is not installed (scripts/install-system-deps.sh --images)"; exit 1; }
  done
  mkdir -p var/images
  root=$(mktemp -d "$PWD/var/images/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  say "debootstrap bookworm into $root (a few minutes, once)"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; say "debootstrap failed (log: $root.log)"; exit 1; }
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root.log"
  tar -C "$root" --numeric-owner -c . | podman import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$base" >/dev/null
  rm -rf "$root"
  trap - EXIT
  say "imported $base"
fi

build() {  # image, Containerfile: from the base, with the host's network (apt-get)
  podman image exists "$1" && return 0
  say "building $1"
  podman build --network host --build-arg "BASE_IMAGE=$base" -f "$2" -t "$1" docker/podman >&2
}
build "$redis" docker/podman/redis.Containerfile
build "$haproxy" docker/podman/haproxy.Containerfile
printf '%s\n' "$base" "$redis" "$haproxy"
