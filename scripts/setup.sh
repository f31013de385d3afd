#!/usr/bin/env bash
# Install everything the project needs from its own files: Debian packages (bubblewrap and
# libseccomp for the local sandbox, Docker Engine, gVisor and debootstrap for the container
# sandbox, PostgreSQL for the tests), uv, a Python of the version in .python-version, then the
# locked Python environment.
# Safe to re-run; does nothing that is already done. Sourcing it (as the tests do) only
# defines the functions.
set -euo pipefail

UV_VERSION="0.13.9"
# How long to wait for another apt/dpkg process (unattended upgrades on a fresh machine).
APT_LOCK_WAIT="${SETUP_APT_LOCK_WAIT:-300}"

have_libseccomp() {
  # Not `ldconfig -p | grep -q`: grep -q exits at the first match, ldconfig dies of SIGPIPE
  # writing the rest and pipefail reports "missing" (measured: 12 times in 200).
  local libs
  libs="$(ldconfig -p 2>/dev/null)" || return 1
  [[ $libs == *libseccomp.so.2* ]]
}

apt_get() {
  # apt-get that waits, bounded, while another apt/dpkg process holds a lock. A retry on
  # apt's lock error rather than -o DPkg::Lock::Timeout: `apt-get update` ignores that
  # option for its lists lock and fails at once (apt 2.6).
  local deadline=$((SECONDS + APT_LOCK_WAIT)) err held said=""
  while true; do
    if err="$(DEBIAN_FRONTEND=noninteractive apt-get "$@" 2>&1 >/dev/null)"; then
      return 0
    fi
    held="$(grep -m1 -o 'Could not get lock.*' <<<"$err")" || {
      printf '%s\n' "$err" >&2
      return 1
    }
    if ((SECONDS >= deadline)); then
      echo "setup: error: gave up after ${APT_LOCK_WAIT}s waiting for another package" \
        "manager to finish (${held}); re-run when it is done" >&2
      return 1
    fi
    if [ "$held" != "$said" ]; then
      echo "setup: waiting up to ${APT_LOCK_WAIT}s for another package manager to finish" \
        "(${held})" >&2
      said="$held"
    fi
    sleep 2
  done
}

find_python() {
  # uv cannot download interpreters offline: also look where pyenv and Debian put them.
  local want="$1" candidate
  for candidate in "$(uv python find --system "$want" 2>/dev/null)" \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python"$want" \
    /usr/local/bin/python"$want" /usr/bin/python"$want"; do
    if [ -x "$candidate" ] &&
      "$candidate" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$want')" 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."

  local missing=() python want
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  have_libseccomp || missing+=(libseccomp2)
  # The sandbox's network trap: a network namespace per call, set up with ip and nsenter.
  command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing+=(iproute2)
  command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
  # PostgreSQL server binaries: the tests start a private cluster for the scale instance.
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  # The container sandbox: Debian's Docker Engine, gVisor, btrfs-progs for the engine's data
  # file system (per-container disk quotas), and debootstrap for the offline base image
  # (scripts/docker_engine.sh and scripts/base_image.sh start and build them).
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v mkfs.btrfs >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.btrfs ] || missing+=(btrfs-progs)
  command -v runsc >/dev/null 2>&1 || missing+=(runsc)
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing ${missing[*]}" >&2
      apt_get update -qq
      apt_get install -y -qq --no-install-recommends "${missing[@]}"
    else
      # Not fatal: everything else works, and sandboxed tasks fail closed saying what to install.
      echo "setup: warning: install ${missing[*]} (Debian: sudo apt-get install ${missing[*]})" \
        "or sandboxed tasks will refuse to run" >&2
    fi
  fi

  # `uv` may be a pyenv shim that does not run for the Python .python-version selects.
  if [ "$(uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    echo "setup: installing uv $UV_VERSION" >&2
    python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi

  want="$(cat .python-version)"
  python="$(find_python "$want")" || {
    echo "setup: error: no Python $want found (uv cannot download one offline); install it" \
      "(pyenv install $want, apt-get install python$want, or uv python install $want" \
      "when online) and re-run" >&2
    exit 1
  }
  # The lock file is the source of truth; --frozen fails instead of silently re-resolving.
  uv sync --frozen --quiet --python "$python"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
