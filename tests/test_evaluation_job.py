"""The evaluation job end to end on a real (SQLite) Dagster instance."""

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterInvalidConfigError, validate_run_config
from inspect_ai.log import read_eval_log

from eval_pipelines.core.partitions import partition_key
from eval_pipelines.definitions import build_definitions
from resources.artifact_store import LocalArtifactStore
from resources.sandbox import SandboxBackend

FAST = {"ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": {"sample_limit": 4}}}}}}


def run_evaluation(defs, instance: DagsterInstance, model: str, suite: str, run_config=FAST):
    job = defs.resolve_job_def("evaluate")
    return job.execute_in_process(
        instance=instance,
        partition_key=partition_key(model, suite),
        run_config=run_config,
        raise_on_error=False,
    )


def latest_metadata(instance: DagsterInstance, asset: str, key: str) -> dict:
    records = instance.fetch_materializations(AssetKey(asset), limit=100).records
    for record in records:
        if record.partition_key == key:
            return {k: v.value for k, v in record.asset_materialization.metadata.items()}
    raise AssertionError(f"no materialization of {asset} for {key}")


def artifact_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "artifacts").rglob("*") if p.is_file())


def test_reference_on_smoke_materializes_versioned_assets(defs, instance, dagster_home):
    result = run_evaluation(defs, instance, "reference", "smoke")
    assert result.success

    scores = result.output_for_node("evaluation", "task_scores")
    assert [t["task"] for t in scores["tasks"]] == [
        "security-guide",
        "theory-of-mind",
        "popularity",
    ]
    assert all(t["mean"] == 1.0 and t["n"] == 4 for t in scores["tasks"])

    rows = result.output_for_node("evaluation", "sample_results")
    assert len(rows) == 12 and {r["model_id"] for r in rows} == {"reference"}

    metadata = latest_metadata(instance, "task_scores", "reference|smoke")
    for field in (
        "code_version",
        "data_version",
        "git_sha",
        "inspect_ai_version",
        "harness_version",
        "model_id",
    ):
        assert metadata[field], field
    assert metadata["code_version"].endswith("+suite-1.0.0")
    assert metadata["score/theory-of-mind"] == 1.0

    checks = {ev.check_name: ev.passed for ev in result.get_asset_check_evaluations()}
    assert checks == {
        "every_sample_scored": True,
        "error_rate_within_threshold": True,
        "every_task_scored": True,
        "below_capability_thresholds": True,
    }
    # How each number was obtained: the metric it is, every metric, epochs, the sandbox.
    popularity = scores["tasks"][2]
    assert popularity["headline"] == "match/accuracy"
    assert popularity["metrics"] == {"match/accuracy": 1.0, "match/stderr": 0.0}
    assert (popularity["epochs"], popularity["sandbox"], popularity["problem"]) == (1, None, None)


def test_stored_eval_log_opens_with_inspect(defs, instance):
    result = run_evaluation(defs, instance, "reference", "smoke")
    logs = result.output_for_node("evaluation", "eval_logs")
    store = LocalArtifactStore(root="unused")
    log = read_eval_log(store.local_path(logs["theory-of-mind"]["uri"]))
    assert log.status == "success"
    assert log.eval.model == "scripted/reference"
    assert len(log.samples) == 4


def test_rerun_adds_a_version_and_never_overwrites(defs, instance, dagster_home):
    first = run_evaluation(defs, instance, "reference", "smoke")
    before = {p: p.read_bytes() for p in artifact_files(dagster_home)}
    second = run_evaluation(defs, instance, "reference", "smoke")
    assert first.success and second.success
    after = artifact_files(dagster_home)
    assert set(before) < set(after)
    assert all(p.read_bytes() == data for p, data in before.items())
    records = instance.fetch_materializations(AssetKey("eval_logs"), limit=10).records
    assert len([r for r in records if r.partition_key == "reference|smoke"]) == 2


def test_second_model_adds_a_partition_and_leaderboard_ranks_both(defs, instance):
    assert run_evaluation(defs, instance, "reference", "smoke").success
    assert run_evaluation(defs, instance, "weak", "smoke").success
    board = defs.resolve_job_def("refresh_leaderboard").execute_in_process(instance=instance)
    rows = board.output_for_node("leaderboard")
    assert [(r["model_id"], r["suite"]) for r in rows] == [
        ("reference", "smoke"),
        ("weak", "smoke"),
    ]
    assert rows[0]["overall"] == 1.0 > rows[1]["overall"]
    materialized = instance.get_materialized_partitions(AssetKey("task_scores"))
    assert materialized == {"reference|smoke", "weak|smoke"}


def test_agentic_suite_runs_tool_calls_in_the_sandbox(defs, instance):
    result = run_evaluation(defs, instance, "reference", "agentic-smoke")
    assert result.success
    [score] = result.output_for_node("evaluation", "task_scores")["tasks"]
    assert score["mean"] == 1.0 and score["n"] == 3
    logs = result.output_for_node("evaluation", "eval_logs")
    log = read_eval_log(LocalArtifactStore(root="unused").local_path(logs["agentic-tools"]["uri"]))
    assert log.eval.sandbox.type == "bwrap"
    tool_outputs = [m.text for s in log.samples for m in s.messages if m.role == "tool"]
    assert str(sum(i * i for i in range(1, 101))) in "".join(tool_outputs)


def test_agentic_suite_without_sandbox_backend_fails_closed_and_writes_nothing(
    dagster_home, instance
):
    defs = build_definitions(resources={"sandbox": SandboxBackend(backend="none")})
    result = run_evaluation(defs, instance, "reference", "agentic-smoke")
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "evaluation.prepare_evaluation"
    assert "needs an isolated sandbox" in failure.step_failure_data.user_failure_data.description
    assert artifact_files(dagster_home) == []
    assert instance.get_materialized_partitions(AssetKey("sample_results")) == set()


def test_unknown_model_partition_fails_in_prepare(defs, instance):
    instance.add_dynamic_partitions("models", ["ghost"])
    result = run_evaluation(defs, instance, "ghost", "smoke")
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "unknown model 'ghost'" in failure.step_failure_data.user_failure_data.description


def test_launchpad_config_is_typed(defs):
    job = defs.resolve_job_def("evaluate")
    bad = {
        "ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": {"sample_limit": "many"}}}}}
    }
    with pytest.raises(DagsterInvalidConfigError, match="sample_limit"):
        validate_run_config(job, bad)
    limits = {"limits": {"messages": 3, "time_seconds": 30}, "epochs": 2}
    validate_run_config(
        job, {"ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": limits}}}}}
    )


def test_launch_config_limits_and_epochs_reach_inspect(defs, instance):
    config = {"sample_limit": 2, "epochs": 2, "limits": {"messages": 1}}
    result = run_evaluation(
        defs,
        instance,
        "reference",
        "smoke",
        run_config={"ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": config}}}}},
    )
    assert result.success
    rows = result.output_for_node("evaluation", "sample_results")
    assert len(rows) == 3 * 2 * 2
    assert {r["epoch"] for r in rows} == {1, 2}
    assert {r["limit"] for r in rows} == {"message"}
