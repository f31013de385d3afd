"""The local deployment's state folder: Dagster instance, IO storage and artifacts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTANCE_CONFIG = PROJECT_ROOT / "dagster.yaml"


def local_home() -> Path:
    """$DAGSTER_HOME, or `.dagster_home` in the project (the embedded default)."""
    return Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()


def ensure_local_home() -> Path:
    """Create the home folder with the project's `dagster.yaml` and export DAGSTER_HOME."""
    home = local_home()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() and INSTANCE_CONFIG.exists():
        shutil.copyfile(INSTANCE_CONFIG, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
