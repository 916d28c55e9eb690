#!/usr/bin/env bash
# Installs the system packages facerest needs (Debian): redis-server, haproxy; with --browser
# (make lint, make test) also chromium, which the browser tests of the web page drive, and node
# and npm, which run its eslint and unit tests; with --images (make test-images) podman, runc
# (docker/podman/containers.conf picks it), debootstrap (the local base image), and the
# container network and init that compose.yaml needs. Idempotent.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v haproxy >/dev/null || missing+=(haproxy)
if [ "${1:-}" = "--browser" ]; then
  command -v chromium >/dev/null || missing+=(chromium)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
if [ "${1:-}" = "--images" ]; then
  if command -v dpkg-query >/dev/null; then
    # Named one by one, since they are podman's Recommends, which --no-install-recommends below
    # leaves out: netavark and aardvark-dns give compose's containers their network and each
    # other's names (HAProxy finds the API replicas by name), catatonit is `init: true`'s PID 1;
    # netavark sets up the containers' networks with iptables.
    for package in podman runc debootstrap netavark aardvark-dns catatonit iptables; do
      dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
    done
  else
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
    command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
  fi
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "install these packages with your system's package manager: ${missing[*]}" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${missing[*]} ..."
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
