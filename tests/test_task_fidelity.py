"""Third-party tasks run as their authors wrote them and are reported as Inspect scored them:
never silently in another sandbox than the one they declare, every scorer and metric kept,
their own epochs and reducer, and a task with no scored samples an error, never a number."""

import asyncio
from pathlib import Path

import pytest

from eval_pipelines.catalog.specs import ModelSpec, SuiteSpec, TaskSpec, UsageLimits
from eval_pipelines.engine.bridge import (
    SandboxUnavailableError,
    check_isolation,
    load_task,
    resolve_model,
    run_task,
    sample_rows,
    task_score,
)
from resources.sandbox import SandboxBackend

TASKS = Path(__file__).parent / "data" / "tasks"
# Containers off: what a deployment without the container sandbox does with these tasks.
BWRAP = SandboxBackend(backend="bwrap", containers="off")


def suite_of(task: str, **fields) -> tuple[SuiteSpec, TaskSpec]:
    spec = TaskSpec(name="t", task=task, **fields)
    return SuiteSpec(name="s", version="1", tasks=[spec], source_dir=TASKS), spec


def test_a_compose_task_is_not_run_in_bwrap_instead_of_its_containers():
    """Run in bwrap on the host, this task scores 1.0 for a model that does nothing."""
    suite, spec = suite_of("two_service_ctf/task.py@two_service_ctf", sandbox=True)
    task = load_task(suite, spec)
    with pytest.raises(SandboxUnavailableError) as refused:
        check_isolation(suite, spec, task, BWRAP)
    message = str(refused.value)
    assert "the task declares Inspect's 'docker' sandbox" in message
    assert str(TASKS / "two_service_ctf" / "compose.yaml") in message
    assert "container sandbox is off" in message
    assert "sandbox: {replace_declared: true}" in message


def test_replacing_a_compose_task_s_sandbox_is_refused_naming_what_it_needs():
    suite, spec = suite_of(
        "two_service_ctf/task.py@two_service_ctf", sandbox={"replace_declared": True}
    )
    with pytest.raises(SandboxUnavailableError) as refused:
        check_isolation(suite, spec, load_task(suite, spec), BWRAP)
    message = str(refused.value)
    for need in (
        "service 'victim'",
        "image ctf-agent:1.0 (service 'default')",
        "the image built for service 'victim'",
        "user 'ctf' (service 'victim')",
    ):
        assert need in message


def test_a_dockerfile_task_needs_its_image():
    suite, spec = suite_of(
        "dockerfile_task/task.py@dockerfile_task", sandbox={"replace_declared": True}
    )
    with pytest.raises(
        SandboxUnavailableError, match="the image built from .*dockerfile_task/Dockerfile"
    ):
        check_isolation(suite, spec, load_task(suite, spec), BWRAP)


def test_a_task_on_inspect_s_default_image_may_run_in_bwrap_by_choice_and_says_so():
    spec = TaskSpec(name="t", task="default_image/task.py@default_image", sandbox=True)
    suite = SuiteSpec(name="s", version="1", tasks=[spec], source_dir=TASKS)
    task = load_task(suite, spec)
    with pytest.raises(SandboxUnavailableError, match="declares Inspect's 'docker' sandbox"):
        check_isolation(suite, spec, task, BWRAP)
    chosen = spec.model_copy(
        update={"sandbox": spec.sandbox.model_copy(update={"replace_declared": True})}
    )
    assert check_isolation(suite, chosen, task, BWRAP) == (
        "bwrap in place of Inspect's 'docker' sandbox "
        "(Inspect's default image aisiuk/inspect-tool-support)"
    )


def test_a_task_without_a_sandbox_of_its_own_runs_in_bwrap():
    suite = SuiteSpec(
        name="s",
        version="1",
        tasks=[TaskSpec(name="t", task="eval_pipelines/agentic_smoke", sandbox=True)],
    )
    spec = suite.tasks[0]
    assert check_isolation(suite, spec, load_task(suite, spec), BWRAP) == "bwrap"


def scored(task: str, tmp_path: Path, **fields):
    """Run a shipped scoring task with a scripted model; its rows and score as published."""
    suite, spec = suite_of(f"scoring.py@{task}", **fields)
    log = asyncio.run(
        run_task(
            load_task(suite, spec),
            resolve_model(ModelSpec(id="weak", model="scripted/weak")),
            spec,
            UsageLimits(),
            tmp_path,
            sandbox=None,
        )
    )
    rows = sample_rows(spec.name, log, spec.headline)
    return rows, task_score(spec.name, log, rows, headline=spec.headline)


def test_every_metric_of_a_dict_valued_scorer_is_kept(tmp_path: Path):
    rows, score = scored("two_metrics", tmp_path)
    assert score.metrics == {"utility/mean": 1.0, "security/mean": 0.5}
    assert (score.headline, score.mean, score.n) == ("utility/mean", 1.0, 4)
    assert rows[0].scores == {"utility_and_security": {"utility": 1.0, "security": 0.0}}
    assert [r.score for r in rows] == [1.0] * 4


def test_a_suite_names_the_headline_metric(tmp_path: Path):
    rows, score = scored("two_metrics", tmp_path, headline="security/mean")
    assert (score.headline, score.mean) == ("security/mean", 0.5)
    assert sorted(r.score for r in rows) == [0.0, 0.0, 1.0, 1.0]


def test_a_headline_the_task_does_not_compute_is_no_score(tmp_path: Path):
    _, score = scored("two_metrics", tmp_path, headline="safety/mean")
    assert score.mean is None
    assert score.problem == "the suite's headline 'safety/mean' is not among the task's metrics"


def test_a_task_s_own_epochs_and_reducer_are_kept(tmp_path: Path):
    rows, score = scored("best_of_three", tmp_path)
    assert (score.epochs, score.reducer) == (3, "max")
    assert len(rows) == 12
    assert score.mean == 1.0 and score.stderr == 0.0


def test_a_suite_may_still_override_the_epochs(tmp_path: Path):
    _, score = scored("best_of_three", tmp_path, epochs=2)
    assert (score.epochs, score.reducer, score.mean) == (2, "max", 0.0)


def test_a_task_with_no_scored_samples_is_an_error_with_its_causes(tmp_path: Path):
    rows, score = scored("always_errors", tmp_path)
    assert score.mean is None and score.n == 0 and score.errors == 4
    assert score.problem == "no scored samples (4 errored)"
    assert len(score.first_errors) == 3
    assert "setup script /challenge/setup.sh not found" in score.first_errors[0]


FIDELITY_SUITE = f"""
name: fidelity
version: "1"
max_error_rate: 1.0
tasks:
  - name: two-metrics
    task: {TASKS}/scoring.py@two_metrics
    headline: security/mean
  - name: always-errors
    task: {TASKS}/scoring.py@always_errors
"""


def test_an_errored_task_is_an_error_on_the_leaderboard_not_a_mean_of_the_rest(
    tmp_path: Path, dagster_home: Path, monkeypatch: pytest.MonkeyPatch
):
    from dagster import DagsterInstance

    from assets.leaderboard import display_sections
    from eval_pipelines.core.partitions import partition_key
    from eval_pipelines.definitions import build_definitions
    from tests.conftest import write_suite

    monkeypatch.setenv(
        "EVAL_SUITE_PATH", str(write_suite(tmp_path / "suites", "fidelity", FIDELITY_SUITE).parent)
    )
    defs = build_definitions()
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("models", ["weak"])
        result = defs.resolve_job_def("evaluate").execute_in_process(
            instance=instance, partition_key=partition_key("weak", "fidelity"), raise_on_error=False
        )
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not checks["every_task_scored"].passed
        assert checks["every_task_scored"].description == (
            "always-errors: no scored samples (4 errored)"
        )
        errors = checks["error_rate_within_threshold"]
        assert "setup script /challenge/setup.sh not found" in errors.description
        [rows] = [result.output_for_node("evaluation", "sample_results")]
        assert {r["task"] for r in rows} == {"two-metrics", "always-errors"}

        board = defs.resolve_job_def("refresh_leaderboard").execute_in_process(instance=instance)
        [row] = board.output_for_node("leaderboard")
    assert row["tasks"] == {"two-metrics": 0.5, "always-errors": None}
    assert row["overall"] is None
    [(_, header, [cells])] = display_sections([row])
    shown = dict(zip(header, cells, strict=True))
    assert shown["overall"] == "ERROR"
    assert shown["always-errors"] == "ERROR: no score (4 errored)"
    assert shown["two-metrics"] == "0.500 (n=4)"
