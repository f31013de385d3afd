#!/usr/bin/env bash
# Build the container sandbox's offline base image from Debian's packages, once.
#
# No image registry is reachable, so task Dockerfiles build `FROM` this image (or another
# already in the engine's store). debootstrap fetches from the apt mirror this machine is
# configured with (read at run time, never written into the project), then the tree is
# imported into the engine. About 35 s; a no-op when the image exists.
# Usage: scripts/base_image.sh [IMAGE]   (default: eval-base:bookworm)
set -euo pipefail

IMAGE=${1:-eval-base:bookworm}
SUITE=bookworm
# What agents' tools need (bash, python3 for Inspect's python()), and a few tools CTFs use.
INCLUDE=python3,procps,netcat-openbsd,iproute2,findutils,sed,less

if docker image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
mirror=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1)
if [ -z "$mirror" ]; then
  mirror=$(grep -rhs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | head -n1)
fi
if [ -z "$mirror" ]; then
  echo "base_image: error: no apt mirror configured in /etc/apt/sources.list*" >&2
  exit 2
fi
command -v debootstrap >/dev/null || { echo "base_image: error: debootstrap is not installed (make setup)" >&2; exit 2; }
root=$(mktemp -d /var/tmp/eval-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "base_image: debootstrap $SUITE from the configured mirror into $root" >&2
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -n 20 "$root.log" >&2
  exit 1
}
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# mktemp made the folder 0700, and tar records that mode for the image's `/`: a storage driver
# that keeps it (btrfs does) would lock every non-root user out of the whole file system.
chmod 0755 "$root"
tar -C "$root" -c . | docker import \
  --change 'CMD ["/bin/bash"]' \
  --change 'LABEL org.eval-pipelines.base=debootstrap-minbase-'"$SUITE" \
  - "$IMAGE" >/dev/null
rm -f "$root.log"
echo "base_image: $IMAGE built" >&2
