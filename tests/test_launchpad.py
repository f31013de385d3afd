"""The evaluate job's Launchpad: opens pre-filled, documents every field, refuses bad values.

The refusal is checked through the webserver's GraphQL launch, which is what the UI calls.
"""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, DagsterInvalidConfigError, validate_run_config

from eval_pipelines.catalog.launch_config import (
    EvaluationConfig,
    LimitsConfig,
    evaluation_run_config,
)
from tests.test_ui_end_to_end import MODEL, PARTITION

BAD_VALUES = [
    ({"sample_limit": 0}, "sample_limit"),
    ({"epochs": -1}, "epochs"),
    ({"max_samples": 0}, "max_samples"),
    ({"limits": {"messages": 0}}, "limits.messages"),
]


def prepare_config_type(job):
    return (
        job.run_config_schema.config_type.fields["ops"]
        .config_type.fields["evaluation"]
        .config_type.fields["ops"]
        .config_type.fields["prepare_evaluation"]
        .config_type.fields["config"]
        .config_type
    )


def test_launchpad_opens_with_every_field_at_its_default(defs):
    job = defs.resolve_job_def("evaluate")
    config = job.get_run_config_for_partition_key(PARTITION)
    assert config == evaluation_run_config(EvaluationConfig().model_dump())
    prepared = config["ops"]["evaluation"]["ops"]["prepare_evaluation"]["config"]
    assert set(prepared) == set(EvaluationConfig.model_fields)
    assert set(prepared["limits"]) == set(LimitsConfig.model_fields)
    validate_run_config(job, config)


def test_every_launchpad_field_is_documented(defs):
    shape = prepare_config_type(defs.resolve_job_def("evaluate"))
    undocumented = [name for name, field in shape.fields.items() if not field.description]
    undocumented += [
        f"limits.{name}"
        for name, field in shape.fields["limits"].config_type.fields.items()
        if not field.description
    ]
    assert undocumented == []


@pytest.mark.parametrize(("config", "field"), BAD_VALUES, ids=[f for _, f in BAD_VALUES])
def test_out_of_range_values_are_refused_by_config_validation(defs, config, field):
    with pytest.raises(DagsterInvalidConfigError, match=rf"{field}: Input should be greater"):
        validate_run_config(defs.resolve_job_def("evaluate"), evaluation_run_config(config))


LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


@pytest.mark.slow
def test_ui_launch_with_out_of_range_values_is_refused_before_a_run_exists(
    services: dict,
):
    import json
    import urllib.error
    import urllib.request

    from eval_pipelines.core.partitions import model_partitions

    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(model_partitions.name, [MODEL])
        port = services["port"]
        services["services"][0].wait_for_http(f"http://127.0.0.1:{port}/server_info", timeout=180)
        for config, field in BAD_VALUES:
            params = {
                "selector": {
                    "repositoryLocationName": "evals",
                    "repositoryName": "__repository__",
                    "jobName": "evaluate",
                },
                "runConfigData": evaluation_run_config(config),
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": PARTITION}]},
            }
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/graphql",
                data=json.dumps({"query": LAUNCH, "variables": {"params": params}}).encode(),
                headers={"content-type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    answer = json.load(response)["data"]["launchRun"]
            except urllib.error.HTTPError as error:  # a PythonError answer comes with a 500
                answer = json.load(error)["data"]["launchRun"]
            assert answer["__typename"] == "PythonError", answer
            assert "DagsterInvalidConfigError" in answer["message"]
            assert f"{field}: Input should be greater than 0" in json.dumps(answer), answer
        assert instance.get_runs_count() == 0
