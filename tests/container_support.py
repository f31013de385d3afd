"""Helpers for tests that need the container engine and the offline base image."""

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from eval_pipelines.containers import engine_problems
from eval_pipelines.containers._engine import LABEL, client, reap

ROOT = Path(__file__).resolve().parents[1]
# One start of the engine and one base image build for every test process of a session.
_SETUP_LOCK = Path("/tmp/eval-pipelines-container-setup.lock")


def require_container_engine() -> None:
    """Start the engine and build the base image (once; both idempotent). Skip on a
    workstation that cannot (not root, no docker.io); in CI, where setup installs them, fail."""
    if os.geteuid() != 0 and engine_problems():
        _unavailable("starting the Docker engine needs root")
    with _SETUP_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for script in ("docker_engine.sh", "base_image.sh"):
            result = subprocess.run(
                [ROOT / "scripts" / script], capture_output=True, text=True, timeout=600
            )
            if result.returncode != 0:
                _unavailable(f"scripts/{script} failed:\n{result.stderr}")
    engine = client()
    try:
        reap(engine)
    finally:
        engine.close()


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def leftovers() -> list[str]:
    """Containers, networks and volumes of samples that still exist."""
    engine = client()
    try:
        found = [
            f"container {c.name}"
            for c in engine.containers.list(all=True, filters={"label": LABEL})
        ]
        found += [f"network {n.name}" for n in engine.networks.list(filters={"label": LABEL})]
        found += [f"volume {v.name}" for v in engine.volumes.list(filters={"label": LABEL})]
        return found
    finally:
        engine.close()
