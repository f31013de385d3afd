"""Versions recorded on every materialization, so any result can be traced and reproduced."""

from __future__ import annotations

import os
import subprocess
from functools import cache
from importlib.metadata import version
from pathlib import Path

HARNESS_VERSION = version("eval-pipelines")
GIT_SHA_ENV = "EVAL_GIT_SHA"


@cache
def git_sha() -> str:
    """The project's commit (EVAL_GIT_SHA in images without .git), or 'unknown'."""
    if os.environ.get(GIT_SHA_ENV):
        return os.environ[GIT_SHA_ENV]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = result.stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout.strip()
    return f"{sha}-dirty" if dirty else sha


def runtime_versions() -> dict[str, str]:
    return {
        "harness_version": HARNESS_VERSION,
        "inspect_ai_version": version("inspect-ai"),
        "dagster_version": version("dagster"),
        "git_sha": git_sha(),
    }


def code_version(suite_version: str) -> str:
    """Harness and suite version together: either changing makes results stale."""
    return f"harness-{HARNESS_VERSION}+suite-{suite_version}"
