"""Results are all or nothing, never blocked by other runs, never silently dropped.

Each test runs the real `evaluate` job on a real SQLite instance with the scripted models.
"""

from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    evaluate_automation_conditions,
)
from dagster._core.execution.api import create_execution_plan

from eval_pipelines.core.names import RESULT_ASSETS
from eval_pipelines.core.partitions import partition_key
from eval_pipelines.definitions import build_definitions
from eval_pipelines.results.records import published_result
from resources.artifact_store import ArtifactWriteError, LocalArtifactStore, check_content
from tests.conftest import write_suite
from tests.services import fill_disk, small_tmpfs
from tests.test_evaluation_job import FAST, run_evaluation

MORE_SAMPLES = {
    "ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": {"sample_limit": 10}}}}}
}


def recorded_by(instance: DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return [r.asset_materialization.asset_key.to_user_string() for r in records]


def latest_run_of(instance: DagsterInstance, asset: str, partition: str) -> str:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return records[0].run_id


def step_failure(result) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = failure.step_failure_data
    return f"{failure.step_key}: {data.error.to_string() if data.error else data}"


def leaderboard(defs, instance: DagsterInstance) -> list[dict]:
    board = defs.resolve_job_def("refresh_leaderboard").execute_in_process(instance=instance)
    return board.output_for_node("leaderboard")


class FailsOnSampleResults(LocalArtifactStore):
    """Fails the second snapshot publish writes (eval_logs, then sample_results)."""

    def put(self, key: str, data: bytes) -> str:
        if key.startswith("results/") and "/sample_results/" in key:
            raise ArtifactWriteError(f"could not write artifact {key}: injected failure")
        return super().put(key, data)


def test_a_failure_between_the_outputs_records_nothing_for_the_run(dagster_home, instance):
    good = run_evaluation(build_definitions(), instance, "reference", "smoke")
    assert good.success
    failing = build_definitions(
        resources={"artifacts": FailsOnSampleResults(root=str(dagster_home / "artifacts"))}
    )
    bad = run_evaluation(failing, instance, "reference", "smoke")

    assert not bad.success
    assert instance.get_run_by_id(bad.run_id).status == DagsterRunStatus.FAILURE
    assert "injected failure" in step_failure(bad)
    assert recorded_by(instance, bad.run_id) == []
    for asset in RESULT_ASSETS:
        assert latest_run_of(instance, asset, "reference|smoke") == good.run_id, asset
    [row] = leaderboard(build_definitions(), instance)
    assert row["run_id"] == good.run_id


def test_disk_full_during_publishing_leaves_the_previous_result(dagster_home, instance):
    snapshots = dagster_home / "artifacts" / "results"  # eval logs stay on the big disk
    with small_tmpfs(snapshots, size="64k"):
        defs = build_definitions()
        good = run_evaluation(defs, instance, "reference", "smoke", run_config=FAST)
        assert good.success
        # Room for the small eval_logs snapshot (one page), not for sample_results (three).
        fill_disk(snapshots, leave_bytes=4096)
        full = run_evaluation(defs, instance, "reference", "smoke", run_config=MORE_SAMPLES)

        assert not full.success
        assert instance.get_run_by_id(full.run_id).status == DagsterRunStatus.FAILURE
        message = step_failure(full)
        assert "evaluation.publish_results" in message and "sample_results/" in message
        assert "No space left on device" in message
        assert recorded_by(instance, full.run_id) == []
        for asset in RESULT_ASSETS:
            assert latest_run_of(instance, asset, "reference|smoke") == good.run_id, asset
        assert published_result(instance, "reference|smoke").run_id == good.run_id
        [row] = leaderboard(defs, instance)
        assert row["run_id"] == good.run_id
        # Nothing truncated or half-written is left in the store.
        for path in (dagster_home / "artifacts").rglob("*"):
            if path.is_file() and path.name != ".filler":
                check_content(path.name, path.read_bytes())


def stuck_run(defs, instance: DagsterInstance, job_name: str, partition: str | None = None):
    """A run that started and never ends, as a killed worker leaves one."""
    job = defs.resolve_job_def(job_name)
    tags = job.partitions_def.get_tags_for_partition_key(partition) if partition else {}
    config = FAST if job_name == "evaluate" else {}
    plan = create_execution_plan(job, run_config=config, tags=tags, instance_ref=instance.get_ref())
    return instance.create_run_for_job(
        job, execution_plan=plan, run_config=config, tags=tags, status=DagsterRunStatus.STARTED
    )


def test_a_stuck_evaluation_never_blocks_the_leaderboard(defs, instance):
    def requested(cursor):
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        return result.get_requested_partitions(AssetKey("leaderboard")), result.cursor

    _, cursor = requested(None)  # the first tick sets the baseline
    stuck_run(defs, instance, "evaluate", partition_key("weak", "smoke"))
    assert run_evaluation(defs, instance, "reference", "smoke").success
    wanted, cursor = requested(cursor)
    assert wanted == {None}, "a stuck run of another partition blocked the leaderboard"

    # Never two leaderboards at once: a running one defers the next refresh until it ends.
    running = stuck_run(defs, instance, "refresh_leaderboard")
    assert run_evaluation(defs, instance, "reference", "smoke").success
    wanted, cursor = requested(cursor)
    assert wanted == set()
    instance.report_run_failed(running)
    wanted, _ = requested(cursor)
    assert wanted == {None}


def test_results_of_a_suite_that_stops_loading_stay_visible_and_marked(
    dagster_home, instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    suite = write_suite(
        tmp_path / "suites",
        "extra",
        "name: extra\nversion: '1'\ntasks:\n"
        "  - {name: theory-of-mind, task: eval_pipelines/theory_of_mind}\n",
    )
    monkeypatch.setenv("EVAL_SUITE_PATH", str(suite.parent))
    defs = build_definitions()
    assert run_evaluation(defs, instance, "reference", "extra").success
    assert run_evaluation(defs, instance, "reference", "smoke").success

    suite.write_text("name: extra\nversion: '2'\ntasks: nope\n")  # the file breaks
    rows = leaderboard(build_definitions(), instance)

    status = {r["suite"]: r["suite_status"] for r in rows}
    assert status == {"extra": "not in catalog", "smoke": "in catalog"}
    [extra] = [r for r in rows if r["suite"] == "extra"]
    assert extra["tasks"] == {"theory-of-mind": 1.0}
