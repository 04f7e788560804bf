#!/usr/bin/env bash
# Makes the local base image the tests and offline builds use instead of a registry's Python image
# (docs/test-environment.md, point 2): a debootstrap of Debian bookworm (minbase) with python3,
# python3-venv and ca-certificates, turned into an image with `docker import`.
#
# Usage: images/base/make-base.sh [IMAGE]      (default: taskbox-base:bookworm; env BASE_IMAGE also works)
# Idempotent: exits at once when IMAGE already exists. Needs root (debootstrap) and a Docker engine
# (scripts/docker-engine.sh sets one up). Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

image="${1:-${BASE_IMAGE:-taskbox-base:bookworm}}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
packages=python3,python3-venv,ca-certificates

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base-image: $image already exists"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "base-image: debootstrap needs root; run as root: $0 $image" >&2
  exit 1
fi

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/taskbox-rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
echo "base-image: debootstrap $suite (minbase + $packages) into $rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -n 30 "$rootfs.log" >&2
  rm -f "$rootfs.log"
  exit 1
}
rm -f "$rootfs.log"
# Nothing in the image needs apt's package lists, caches or the docs.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*

echo "base-image: importing as $image"
tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  - "$image" >/dev/null
echo "base-image: $image ($(docker image inspect -f '{{.Size}}' "$image") bytes)"
