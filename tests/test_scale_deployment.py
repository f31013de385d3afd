"""The `scale` deployment: intermediate outputs and artifacts in S3 (a real S3 API)."""

from pathlib import Path

import boto3
import pytest
from inspect_ai.log import read_eval_log

from eval_pipelines.core.partitions import partition_key
from eval_pipelines.definitions import build_definitions
from tests.test_evaluation_job import FAST


def test_evaluation_runs_with_s3_io_and_artifacts(
    instance, s3_endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("EVAL_DEPLOYMENT", "scale")
    monkeypatch.setenv("EVAL_S3_BUCKET", "evals")
    monkeypatch.setenv("EVAL_S3_ENDPOINT_URL", s3_endpoint)
    defs = build_definitions()

    result = defs.resolve_job_def("evaluate").execute_in_process(
        instance=instance, partition_key=partition_key("reference", "smoke"), run_config=FAST
    )
    assert result.success

    keys = {
        o["Key"]
        for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="evals")[
            "Contents"
        ]
    }
    # Intermediate outputs go through the S3 IO manager; results are only their snapshots.
    assert any(k.startswith("dagster-io/") for k in keys)
    assert not any(k.startswith("dagster-io/task_scores") for k in keys)
    assert any(k.startswith("evals/results/model=reference/suite=smoke/") for k in keys)
    uri = result.output_for_node("evaluation", "eval_logs")["popularity"]["uri"]
    assert uri.startswith("s3://evals/evals/eval-logs/")

    board = defs.resolve_job_def("refresh_leaderboard").execute_in_process(instance=instance)
    [row] = board.output_for_node("leaderboard")
    assert row["run_id"] == result.run_id and row["overall"] == 1.0

    local = tmp_path / "popularity.eval"
    local.write_bytes(defs.resources["artifacts"].get(uri))
    assert read_eval_log(str(local)).status == "success"
