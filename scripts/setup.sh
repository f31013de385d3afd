#!/usr/bin/env bash
# Install everything the project needs from its own files: uv, then the locked Python
# environment. Safe to re-run; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"

if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "setup: installing uv $UV_VERSION" >&2
  python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

# The lock file is the source of truth; --frozen fails instead of silently re-resolving.
uv sync --frozen --quiet
