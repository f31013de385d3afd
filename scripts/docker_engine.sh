#!/usr/bin/env bash
# Start the Docker engine the container sandbox uses, if none answers yet (idempotent).
#
# Debian's docker.io (installed by scripts/setup.sh) with the project's settings: gVisor
# (`runsc`) registered as a runtime, and the engine's networks drawn from 198.18.0.0/15, the
# benchmarking range, so sandbox traffic never uses a private range a real network might.
# Usage: scripts/docker_engine.sh [--check]   (--check: exit 1 if no engine answers)
set -euo pipefail

SOCKET=${EVAL_DOCKER_SOCKET:-/var/run/docker.sock}
LOG=${EVAL_DOCKERD_LOG:-/var/log/eval-dockerd.log}
CONFIG=/etc/docker/daemon.json

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
if [ ! -e "$CONFIG" ]; then
  mkdir -p "$(dirname "$CONFIG")"
  cat >"$CONFIG" <<'JSON'
{
  "runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]}},
  "default-address-pools": [{"base": "198.18.64.0/18", "size": 24}],
  "bip": "198.18.128.1/24",
  "log-driver": "json-file",
  "log-opts": {"max-size": "1m", "max-file": "1"}
}
JSON
fi
# Own session: the engine outlives this script and ignores the caller's terminal signals.
# A clean environment: the engine must not keep the caller's (a TMPDIR that a test session
# removes later broke every gVisor container; API keys have no business there either).
setsid env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  dockerd -H "unix://$SOCKET" >>"$LOG" 2>&1 </dev/null &
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
