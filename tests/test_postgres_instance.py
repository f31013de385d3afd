"""The scale instance's storage for real: an evaluation on PostgreSQL-backed Dagster storage.

Uses the `storage` section of deploy/scale/dagster.yaml as it is, against a private
PostgreSQL server this test starts (the K8sRunLauncher part needs a cluster).
"""

from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from eval_pipelines.core.partitions import partition_key
from eval_pipelines.definitions import build_definitions
from tests.services import PROJECT_ROOT, postgres_server
from tests.test_evaluation_job import FAST

SCALE_INSTANCE = PROJECT_ROOT / "deploy" / "scale" / "dagster.yaml"


@pytest.fixture
def postgres_home(dagster_home: Path, monkeypatch: pytest.MonkeyPatch):
    storage = yaml.safe_load(SCALE_INSTANCE.read_text())["storage"]
    (dagster_home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}})
    )
    with postgres_server() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield dagster_home


def test_evaluation_on_postgres_storage(postgres_home: Path):
    with DagsterInstance.get() as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        instance.add_dynamic_partitions("models", ["reference"])
        result = (
            build_definitions()
            .resolve_job_def("evaluate")
            .execute_in_process(
                instance=instance,
                partition_key=partition_key("reference", "smoke"),
                run_config=FAST,
            )
        )
        assert result.success
        assert instance.get_materialized_partitions(AssetKey("task_scores")) == {"reference|smoke"}
        assert instance.get_run_by_id(result.run_id).tags["dagster/partition"] == "reference|smoke"
