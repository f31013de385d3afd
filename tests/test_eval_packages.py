"""Third-party eval packages added the documented way stay installed through every `make`
target, and their tasks load by registry name."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(__file__).parent / "data" / "evalpkg"


@pytest.mark.timeout(600)
def test_an_eval_package_added_to_the_evals_group_survives_uv_sync(tmp_path: Path):
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not installed (make setup installs it)")
    project = tmp_path / "project"
    # The project's own files, as a fresh clone has them (its venv and state left out).
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", ".dagster_home", "__pycache__", "*.egg-info"
        ),
    )
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(project / ".venv")}
    env.pop("VIRTUAL_ENV", None)

    def uv_run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [uv, *args], cwd=project, env=env, capture_output=True, text=True, timeout=500
        )

    added = uv_run("add", "--quiet", "--group", "evals", str(PACKAGE))
    assert added.returncode == 0, added.stderr
    # What every make target runs (scripts/setup.sh), twice: it must keep the package.
    for _ in range(2):
        synced = uv_run("sync", "--frozen", "--quiet")
        assert synced.returncode == 0, synced.stderr
    loaded = subprocess.run(
        [project / ".venv" / "bin" / "python", "-c",
         "from eval_pipelines.catalog.specs import SuiteSpec, TaskSpec\n"
         "from eval_pipelines.engine.bridge import load_task\n"
         "suite = SuiteSpec(name='s', version='1', tasks=[TaskSpec(name='t', task='fixture_evals/hello')])\n"
         "print(load_task(suite, suite.tasks[0]).name)"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "fixture_evals/hello"
    assert "fixture-evals" in (project / "uv.lock").read_text()
