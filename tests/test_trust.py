"""Trustworthy results (issue 9, item 3): every number says how it was obtained."""

import pytest
from dagster import DagsterRunStatus

from eval_pipelines.partitions import model_partitions
from eval_pipelines.provenance import UNKNOWN_VERSION, run_provenance, run_status
from eval_pipelines.resume import TASK_TAG_PREFIX
from eval_pipelines.safety.monitor import SAFETY_STOPPED_TAG
from tests.test_evaluation_job import run_evaluation


def limited(sample_limit: int | None = None, epochs: int | None = None) -> dict:
    config = {"sample_limit": sample_limit, "epochs": epochs}
    return {"ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": config}}}}}


def test_provenance_of_a_limited_run_and_of_a_refused_one(defs, instance):
    result = run_evaluation(defs, instance, "reference", "smoke", limited(sample_limit=2))
    assert result.success
    provenance = run_provenance(instance, result.run_id)
    assert provenance.model_dump(exclude={"evaluated_at"}) == {
        "run_id": result.run_id,
        "model_id": "reference",
        "suite": "smoke",
        "suite_version": "1.0.0",
        "status": "complete",
        "limited": True,
        "sample_limit": 2,
        "epochs": None,
    }
    scores = result.output_for_node("evaluation", "task_scores")
    assert provenance.evaluated_at == scores["evaluated_at"]

    # A model the catalog does not know: refused in prepare, before its suite version ran.
    instance.add_dynamic_partitions(model_partitions.name, ["ghost"])
    refused = run_evaluation(defs, instance, "ghost", "smoke", {})
    assert not refused.success
    provenance = run_provenance(instance, refused.run_id)
    assert (provenance.status, provenance.limited, provenance.suite_version) == (
        "failed",
        False,
        UNKNOWN_VERSION,
    )


def test_provenance_refuses_runs_that_are_not_evaluations(defs, instance):
    board = defs.resolve_job_def("refresh_leaderboard").execute_in_process(instance=instance)
    with pytest.raises(ValueError, match="not an evaluation"):
        run_provenance(instance, board.run_id)
    with pytest.raises(LookupError, match="no run"):
        run_provenance(instance, "0" * 36)


@pytest.mark.parametrize(
    ("status", "tags", "expected"),
    [
        (DagsterRunStatus.SUCCESS, {}, "complete"),
        (DagsterRunStatus.FAILURE, {}, "failed"),
        (DagsterRunStatus.FAILURE, {TASK_TAG_PREFIX + "popularity": "{}"}, "partial"),
        (DagsterRunStatus.CANCELED, {}, "canceled"),
        (DagsterRunStatus.CANCELED, {SAFETY_STOPPED_TAG: "true"}, "safety-stopped"),
        (DagsterRunStatus.STARTED, {}, "running"),
        (DagsterRunStatus.QUEUED, {}, "running"),
    ],
)
def test_run_status_names_how_a_run_ended(status, tags, expected):
    assert run_status(status, tags) == expected
