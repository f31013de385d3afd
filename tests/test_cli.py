"""`evalctl` as a user runs it: a subprocess with its own DAGSTER_HOME."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_suite
from tests.sandbox_support import require_sandbox_host, run_without_bubblewrap

EVALCTL = str(Path(sys.executable).parent / "evalctl")


def evalctl(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DAGSTER_HOME": str(home), **(env or {})}
    for variable in ("EVAL_DEPLOYMENT",):
        environment.pop(variable, None)
    return subprocess.run(
        [EVALCTL, *args], capture_output=True, text=True, env=environment, timeout=300
    )


def test_run_prints_scores_and_stores_results(tmp_path: Path):
    home = tmp_path / "home"
    result = evalctl(home, "run", "--model", "reference", "--suite", "smoke", "--sample-limit", "3")
    assert result.returncode == 0, result.stderr
    assert "Task scores for reference on smoke" in result.stdout
    assert "theory-of-mind  1.000" in result.stdout
    assert "Task theory-of-mind: running" in result.stderr  # progress, through Dagster's log
    assert (home / "dagster.yaml").exists()
    assert list((home / "artifacts").rglob("*.eval"))


def test_run_json_output(tmp_path: Path):
    result = evalctl(
        tmp_path / "home",
        "run",
        "--model",
        "weak",
        "--suite",
        "smoke",
        "--sample-limit",
        "5",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout[result.stdout.index("\n{") :])
    assert {t["task"] for t in payload["task_scores"]["tasks"]} == {
        "security-guide",
        "theory-of-mind",
        "popularity",
    }
    assert payload["leaderboard"][0]["model_id"] == "weak"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nobody", "--suite", "smoke"], "unknown model 'nobody'"),
        (["--model", "reference", "--suite", "nothing"], "unknown suite 'nothing'"),
        (
            ["--model", "reference", "--suite", "broken"],
            "tasks.0.epochs: Input should be greater than 0",
        ),
        (["--model", "reference", "--suite", "ghost-task"], "found no Inspect task"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
):
    suites = tmp_path / "suites"
    write_suite(
        suites, "broken", "name: broken\nversion: '1'\ntasks: [{name: a, task: x, epochs: 0}]\n"
    )
    write_suite(
        suites,
        "ghost",
        "name: ghost-task\nversion: '1'\ntasks: [{name: a, task: eval_pipelines/ghost}]\n",
    )
    home = tmp_path / "home"
    result = evalctl(home, "run", *args, env={"EVAL_SUITE_PATH": str(suites)})
    assert result.returncode == 2
    assert message in result.stderr
    assert not (home / "artifacts").exists()
    assert not (home / "storage").exists()


def test_suites_and_models_listings(tmp_path: Path):
    suites = evalctl(tmp_path, "suites")
    assert suites.returncode == 0 and "agentic-smoke" in suites.stdout and "yes" in suites.stdout
    models = evalctl(tmp_path, "models")
    assert models.returncode == 0 and "scripted/red-team" in models.stdout
    bad = tmp_path / "suites"
    write_suite(bad, "broken", "name: [")
    strict = evalctl(tmp_path, "suites", "--strict", env={"EVAL_SUITE_PATH": str(bad)})
    assert strict.returncode == 1 and "broken.yaml: not valid YAML" in strict.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="hiding bwrap needs a private mount namespace (root)")
def test_doctor_names_what_is_missing(tmp_path: Path):
    require_sandbox_host()
    assert evalctl(tmp_path, "doctor").returncode == 0
    result = run_without_bubblewrap([EVALCTL, "doctor"])
    assert result.returncode == 1
    assert "NOT ready" in result.stdout and "apt-get install bubblewrap" in result.stdout
