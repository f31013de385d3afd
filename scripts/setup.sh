#!/usr/bin/env bash
# Install everything the project needs from its own files: Debian packages (bubblewrap and
# libseccomp for the local sandbox, PostgreSQL for the tests), uv, then the locked Python
# environment.
# Safe to re-run; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=(libseccomp2)
# PostgreSQL server binaries: the tests start a private cluster for the scale instance.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    # Not fatal: everything else works, and sandboxed tasks fail closed saying what to install.
    echo "setup: warning: install ${missing[*]} (Debian: sudo apt-get install ${missing[*]})" \
      "or sandboxed tasks will refuse to run" >&2
  fi
fi

if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "setup: installing uv $UV_VERSION" >&2
  python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

# The lock file is the source of truth; --frozen fails instead of silently re-resolving.
uv sync --frozen --quiet
