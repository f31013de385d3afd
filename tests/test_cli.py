"""`evalctl` as a user runs it: a subprocess with its own DAGSTER_HOME."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from eval_pipelines.core.home import INSTANCE_CONFIG
from tests.conftest import write_suite
from tests.sandbox_support import require_sandbox_host, run_without_bubblewrap
from tests.services import private_daemons

EVALCTL = str(Path(sys.executable).parent / "evalctl")


def evalctl(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DAGSTER_HOME": str(home), **(env or {})}
    for variable in ("EVAL_DEPLOYMENT",):
        environment.pop(variable, None)
    return subprocess.run(
        [EVALCTL, *args], capture_output=True, text=True, env=environment, timeout=300
    )


@pytest.mark.slow  # the default path: queued, drained by a private daemon
def test_run_prints_scores_and_stores_results(tmp_path: Path):
    home = tmp_path / "home"
    result = evalctl(home, "run", "--model", "reference", "--suite", "smoke", "--sample-limit", "3")
    assert result.returncode == 0, result.stderr
    assert "Task scores for reference on smoke" in result.stdout
    assert re.search(r"theory-of-mind +includes/accuracy +1\.000 ", result.stdout), result.stdout
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
        "--local",  # the queued path is test_run_prints_scores_and_stores_results's
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
            "failed to load: invalid SuiteSpec:\n  - tasks.0.epochs: Input should be greater than 0",
        ),
        (["--model", "Reference", "--suite", "smoke"], "did you mean 'reference'"),
        (["--model", "reference", "--suite", "smoke", "--sample-limit", "-3"], "--sample-limit -3"),
        (["--model", "reference", "--suite", "smoke", "--sample-limit", "0"], "--sample-limit 0"),
        (["--model", "reference", "--suite", "smoke", "--epochs", "0"], "--epochs 0"),
        (["--model", "reference", "--suite", "smoke", "--max-samples", "-1"], "--max-samples -1"),
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
    home.mkdir()
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    with DagsterInstance.from_config(str(home)) as instance:
        result = evalctl(home, "run", *args, env={"EVAL_SUITE_PATH": str(suites)})
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert result.stderr.count("tasks.0.epochs") <= 1  # a broken file is reported once
        assert "Traceback" not in result.stderr
        assert instance.get_runs_count() == 0
    assert not (home / "artifacts").exists()
    assert not (home / "storage").exists()


def test_missing_catalog_folder_warns_in_listings_and_refuses_a_run(tmp_path: Path):
    missing = {"EVAL_MODEL_PATH": str(tmp_path / "no-such-folder")}
    listing = evalctl(tmp_path / "home", "models", env=missing)
    assert listing.returncode == 0 and "reference" in listing.stdout
    assert "no-such-folder: folder in EVAL_MODEL_PATH does not exist" in listing.stderr
    run = evalctl(tmp_path / "home", "run", "--model", "reference", "--suite", "smoke", env=missing)
    assert run.returncode == 2
    assert "error: " in run.stderr and "no-such-folder" in run.stderr


@pytest.mark.slow
def test_a_storage_error_is_reported_with_its_reason(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "storage").write_text("a file where the IO manager wants its folder")
    args = ["run", "--model", "reference", "--suite", "smoke", "--sample-limit", "1", "--local"]
    result = evalctl(home, *args)
    assert result.returncode == 1
    report = result.stderr[result.stderr.index("\nerror: evaluation run ") :]
    assert "ended FAILURE:" in report and "Traceback" not in report
    assert "NotADirectoryError: [Errno 20] Not a directory" in report


def test_suites_and_models_listings(tmp_path: Path):
    suites = evalctl(tmp_path, "suites")
    assert suites.returncode == 0
    assert re.search(r"agentic-smoke +1\.0\.0 +1 +1 task\(s\) ", suites.stdout), suites.stdout
    models = evalctl(tmp_path, "models")
    assert models.returncode == 0 and "scripted/red-team" in models.stdout
    bad = tmp_path / "suites"
    write_suite(bad, "broken", "name: [")
    strict = evalctl(tmp_path, "suites", "--strict", env={"EVAL_SUITE_PATH": str(bad)})
    assert strict.returncode == 1 and "broken.yaml: not valid YAML" in strict.stderr


def test_suites_check_says_where_each_task_s_tools_run(tmp_path: Path):
    suites = tmp_path / "suites"
    tasks = Path(__file__).parent / "data" / "tasks"
    write_suite(
        suites,
        "third-party",
        "name: third-party\nversion: '1'\ntasks:\n"
        f"  - {{name: ctf, task: {tasks}/two_service_ctf/task.py@two_service_ctf, sandbox: true}}\n"
        "  - {name: agent, task: eval_pipelines/agentic_smoke, sandbox: true}\n",
    )
    # Containers off: the refusal a deployment without the container sandbox gives.
    result = evalctl(
        tmp_path,
        "suites",
        "--check",
        env={"EVAL_SUITE_PATH": str(suites), "EVAL_CONTAINER_RUNTIME": "off"},
    )
    assert result.returncode == 1, result.stdout
    assert re.search(r"third-party +ctf +REFUSED", result.stdout)
    assert re.search(r"third-party +agent +bwrap", result.stdout)
    assert "refused: suite 'third-party', task 'ctf': the task declares Inspect's 'docker'" in (
        result.stdout
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="hiding bwrap needs a private mount namespace (root)")
def test_doctor_names_what_is_missing(tmp_path: Path):
    require_sandbox_host()
    assert evalctl(tmp_path, "doctor").returncode == 0
    result = run_without_bubblewrap([EVALCTL, "doctor"])
    assert result.returncode == 1
    assert "NOT ready" in result.stdout and "apt-get install bubblewrap" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_concurrent_runs_of_one_partition_queue_behind_one_private_daemon(tmp_path: Path):
    """Two `evalctl run` of one partition, no daemon running: one private daemon drains
    the queue (the second run waits behind the first), the runs never overlap, both
    succeed, and the daemon stops afterwards."""
    home = tmp_path / "home"
    environment = {**os.environ, "DAGSTER_HOME": str(home)}
    environment.pop("EVAL_DEPLOYMENT", None)
    args = [EVALCTL, "run", "--model", "reference", "--suite", "smoke", "--sample-limit", "2"]
    procs = [
        subprocess.Popen(args, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=800) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-3000:]
        assert b"queued" in out
    with DagsterInstance.from_config(str(home)) as instance:
        # Other runs (the leaderboard's refresh) may still be queued, with no start time.
        evaluations = sorted(
            (r for r in instance.get_run_records() if r.dagster_run.job_name == "evaluate"),
            key=lambda r: r.start_time,
        )
        assert len(evaluations) == 2
        assert all(r.dagster_run.status.value == "SUCCESS" for r in evaluations)
        for earlier, later in zip(evaluations, evaluations[1:], strict=False):
            assert earlier.end_time <= later.start_time, "two runs of one partition overlapped"
    # The daemon outlives the last evalctl only to let the runs it started end, and none
    # of them dies with it (a refresh killed mid-way shows as a failed run).
    deadline = time.monotonic() + 360
    while private_daemons(home) and time.monotonic() < deadline:
        time.sleep(1)
    assert private_daemons(home) == []
    with DagsterInstance.from_config(str(home)) as instance:
        failed = [
            r.job_name for r in instance.get_runs() if r.status.value in ("FAILURE", "CANCELED")
        ]
        assert failed == [], f"runs ended with the private daemon: {failed}"
