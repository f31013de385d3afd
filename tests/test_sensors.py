"""The model catalog sensor against a real instance."""

from pathlib import Path

import pytest
from dagster import build_sensor_context

from eval_pipelines.core.partitions import model_partitions
from tests.conftest import write_suite


def tick(defs, instance):
    sensor = defs.resolve_sensor_def("model_catalog_sensor")
    return sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))


def test_adds_a_partition_per_catalog_model_then_skips(defs, dagster_home):
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        result = tick(defs, instance)
        [request] = result.dynamic_partitions_requests
        assert request.partitions_def_name == model_partitions.name
        assert set(request.partition_keys) == {"reference", "weak", "red-team", "idle"}
        instance.add_dynamic_partitions(model_partitions.name, list(request.partition_keys))
        again = tick(defs, instance)
        assert not again.dynamic_partitions_requests
        assert again.skip_message and "no new models" in again.skip_message


def test_a_broken_model_file_does_not_stop_the_sensor(
    defs, dagster_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from dagster import DagsterInstance

    models = tmp_path / "models"
    write_suite(models, "broken", "id: Not Valid\nmodel: x\n")
    write_suite(models, "extra", "id: extra\nmodel: scripted/weak\n")
    monkeypatch.setenv("EVAL_MODEL_PATH", str(models))
    with DagsterInstance.get() as instance:
        result = tick(defs, instance)
        [request] = result.dynamic_partitions_requests
        assert "extra" in request.partition_keys
        assert not any("Not Valid" in key for key in request.partition_keys)


def test_leaderboard_refreshes_after_each_new_evaluation(defs, instance):
    from dagster import AssetKey, evaluate_automation_conditions

    from eval_pipelines.core.partitions import partition_key
    from tests.test_evaluation_job import FAST

    def requested(cursor=None):
        result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        return result.get_requested_partitions(AssetKey("leaderboard")), result.cursor

    wanted, cursor = requested()  # the first tick sets the baseline
    assert wanted == set()

    evaluate = defs.resolve_job_def("evaluate")
    assert evaluate.execute_in_process(
        instance=instance, partition_key=partition_key("reference", "smoke"), run_config=FAST
    ).success
    wanted, cursor = requested(cursor)
    assert wanted == {None}  # the unpartitioned leaderboard

    defs.resolve_job_def("refresh_leaderboard").execute_in_process(instance=instance)
    wanted, cursor = requested(cursor)
    assert wanted == set()

    assert evaluate.execute_in_process(
        instance=instance, partition_key=partition_key("weak", "smoke"), run_config=FAST
    ).success
    wanted, _ = requested(cursor)
    assert wanted == {None}
