#!/usr/bin/env bash
# Start the Docker engine the container sandbox uses, if none answers yet (idempotent).
#
# Debian's docker.io (installed by scripts/setup.sh) with the project's settings, in a config
# file of the project's own (a host's /etc/docker/daemon.json is left alone):
# - gVisor (`runsc`) registered as a runtime;
# - the engine's networks drawn from 198.18.0.0/15, the benchmarking range, so sandbox traffic
#   never uses a private range a real network might;
# - its data on a btrfs file system of its own (a loop-mounted image, sparse, bounded), with
#   simple quotas on: the `btrfs` storage driver can then cap what each container writes
#   (`disk_mb`), which overlay2 on ext4 cannot. A hostile agent fills its own quota, never the
#   host's disk.
# Usage: scripts/docker_engine.sh [--check]   (--check: exit 1 if no engine answers)
set -euo pipefail

SOCKET=${EVAL_DOCKER_SOCKET:-/var/run/docker.sock}
LOG=${EVAL_DOCKERD_LOG:-/var/log/eval-dockerd.log}
CONFIG=/etc/eval-pipelines/dockerd.json
DATA=${EVAL_DOCKER_DATA:-/var/lib/eval-docker}
# The data file system's size: this many GiB, at most half of what the host has free.
DATA_GIB=${EVAL_DOCKER_DATA_GIB:-32}

answers() { docker -H "unix://$SOCKET" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# The engine's internal networks keep samples off the internet, not off the host: each
# bridge's gateway address is the host's. Drop what the sandbox pool sends to the host itself
# (the container sandbox checks this rule before every sample and refuses to start without it).
guard_host() {
  if [ "$(id -u)" = 0 ] && ! iptables -C INPUT -s "$POOL" -j DROP 2>/dev/null; then
    iptables -I INPUT -s "$POOL" -j DROP
  fi
}
POOL=198.18.64.0/18

if answers; then guard_host; exit 0; fi
if [ "${1:-}" = "--check" ]; then
  echo "docker_engine: no Docker engine answers on $SOCKET" >&2
  exit 1
fi
if ! command -v dockerd >/dev/null; then
  echo "docker_engine: error: dockerd is not installed (apt-get install docker.io, or make setup)" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "docker_engine: error: starting dockerd needs root; start it as root, or point" \
    "EVAL_DOCKER_SOCKET at a running engine" >&2
  exit 2
fi
# The engine's data file system: btrfs, loop-mounted from a sparse image, simple quotas on.
data_filesystem() {
  if mountpoint -q "$DATA"; then
    [ "$(stat -f -c %T "$DATA")" = btrfs ] && return 0
    echo "docker_engine: error: $DATA is mounted but is not btrfs" >&2
    return 1
  fi
  command -v mkfs.btrfs >/dev/null || {
    echo "docker_engine: error: mkfs.btrfs is missing (apt-get install btrfs-progs, or make setup)" >&2
    return 1
  }
  mkdir -p "$DATA"
  if [ ! -f "$DATA.img" ]; then
    local free_gib size
    free_gib=$(($(df --output=avail -k "$(dirname "$DATA")" | tail -1) / 1048576))
    size=$((free_gib / 2 < DATA_GIB ? free_gib / 2 : DATA_GIB))
    if [ "$size" -lt 4 ]; then
      echo "docker_engine: error: $((free_gib)) GiB free under $(dirname "$DATA"); need 8" >&2
      return 1
    fi
    truncate -s "${size}G" "$DATA.img"
    mkfs.btrfs -q "$DATA.img" >/dev/null
  fi
  mount -o loop "$DATA.img" "$DATA"
  simple_quotas "$DATA"
}

# Simple quotas (Linux 6.7+): each container's subvolume is charged for what it writes, never
# for the image it shares, and the numbers never go stale. Full qgroups are marked
# inconsistent whenever the engine deletes a container, and then stop enforcing limits (seen:
# a 16 MB container wrote 200 MB). Debian 12's btrfs-progs predates `quota enable --simple`,
# so the ioctl is called directly (BTRFS_IOC_QUOTA_CTL, BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA).
simple_quotas() {
  python3 - "$1" <<'PY' || {
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, 0xC0109428, struct.pack("QQ", 4, 0))
PY
    echo "docker_engine: error: cannot enable btrfs simple quotas on $1 (Linux 6.7 or later" \
      "is needed); without them no container's disk can be capped" >&2
    return 1
  }
}
data_filesystem
mkdir -p "$(dirname "$CONFIG")"
cat >"$CONFIG" <<JSON
{
  "data-root": "$DATA",
  "storage-driver": "btrfs",
  "runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]}},
  "default-address-pools": [{"base": "198.18.64.0/18", "size": 24}],
  "bip": "198.18.128.1/24",
  "log-driver": "json-file",
  "log-opts": {"max-size": "1m", "max-file": "1"}
}
JSON
# Own session: the engine outlives this script and ignores the caller's terminal signals.
# A clean environment: the engine must not keep the caller's (a TMPDIR that a test session
# removes later broke every gVisor container; API keys have no business there either).
setsid env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  dockerd --config-file "$CONFIG" -H "unix://$SOCKET" >>"$LOG" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  if answers; then
    guard_host
    exit 0
  fi
  sleep 0.5
done
echo "docker_engine: error: dockerd did not answer within 60 s; see $LOG" >&2
tail -n 20 "$LOG" >&2
exit 1
