"""The layering rule holds: imports point down only (pyproject's `[tool.importlinter]`).

import-linter reads every import statement, lazy ones inside functions included, so a
circle or a back-arrow fails here whether or not it would fail at import time.
"""

import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("eval_pipelines", "assets", "resources", "sensors")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter over the packages under `root`, with the project's contract."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contract_holds():
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_a_back_arrow_breaks_the_contract(tmp_path: Path):
    """The same contract on a copy whose bottom layer imports the code location, lazily."""
    for package in PACKAGES:
        shutil.copytree(
            PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path)
    names = tmp_path / "eval_pipelines" / "core" / "names.py"
    names.write_text(
        names.read_text()
        + "\n\ndef _back_arrow():\n    from eval_pipelines.definitions import defs\n\n    return defs\n"
    )

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert (
        "eval_pipelines.core is not allowed to import eval_pipelines.definitions" in result.stdout
    )
    assert "eval_pipelines.core.names -> eval_pipelines.definitions" in result.stdout
