"""The model catalog sensor against a real instance."""

from pathlib import Path

import pytest
from dagster import build_sensor_context

from eval_pipelines.partitions import model_partitions
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
        assert set(request.partition_keys) == {"reference", "weak", "red-team"}
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
