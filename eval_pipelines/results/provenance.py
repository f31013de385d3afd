"""Provenance of an evaluation run: what a number was obtained from, read from the instance.

Every result and leaderboard row carries this, so nobody mistakes a `--sample-limit 1`
smoke test, an older suite version or a failed attempt for a complete evaluation. It is
read from the Dagster run itself (status, tags, run config), so it also describes runs
that never published anything (failed, canceled, safety-stopped, still running).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from pydantic import BaseModel, ConfigDict

from eval_pipelines.catalog.launch_config import evaluation_config_of, is_limited
from eval_pipelines.core.names import (
    EVALUATED_AT_TAG,
    EVALUATION_JOB,
    PARTITION_TAG,
    SAFETY_STOPPED_TAG,
    SUITE_VERSION_TAG,
    TASK_TAG_PREFIX,
)
from eval_pipelines.core.partitions import split_partition_key

RunStatus = Literal["complete", "partial", "failed", "safety-stopped", "canceled", "running"]

# A run refused before its suite resolved (unknown suite, quarantined model...).
UNKNOWN_VERSION = "unknown"

_CANCELED = (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED)


class Provenance(BaseModel):
    """Where an evaluation run's results (if any) came from, and how it ended."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    model_id: str
    suite: str
    # The suite version that ran (`UNKNOWN_VERSION` if the run was refused before that).
    suite_version: str
    status: RunStatus
    # True when `sample_limit` or `epochs` overrode the suite: not a complete evaluation.
    limited: bool
    sample_limit: int | None
    epochs: int | None
    # ISO time the run started evaluating (the run's start or creation if it never did).
    evaluated_at: str


def run_status(status: DagsterRunStatus, tags: dict[str, str]) -> RunStatus:
    """How an evaluation run ended, in the words the leaderboard uses.

    safety-stopped: the safety monitor or sensor stopped it (tag `eval/safety-stopped`);
    canceled: stopped by an operator; partial: failed after finishing some tasks or samples
    (it left `eval/task/...` checkpoints a later run resumes); failed: failed before that.
    """
    if status == DagsterRunStatus.SUCCESS:
        return "complete"
    if tags.get(SAFETY_STOPPED_TAG):
        return "safety-stopped"
    if status in _CANCELED:
        return "canceled"
    if status == DagsterRunStatus.FAILURE:
        return "partial" if any(t.startswith(TASK_TAG_PREFIX) for t in tags) else "failed"
    return "running"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def run_provenance(instance: DagsterInstance, run_id: str) -> Provenance:
    """The provenance of evaluation run `run_id`; `LookupError` if there is no such run,
    `ValueError` if it is not a run of the evaluate job."""
    records = instance.get_run_records(RunsFilter(run_ids=[run_id]), limit=1)
    if not records:
        raise LookupError(f"no run {run_id} in this Dagster instance")
    record = records[0]
    run = record.dagster_run
    if run.job_name != EVALUATION_JOB or PARTITION_TAG not in run.tags:
        raise ValueError(
            f"run {run_id} is a run of {run.job_name!r}, not an evaluation "
            f"({EVALUATION_JOB!r} job with a model|suite partition)"
        )
    model_id, suite = split_partition_key(run.tags[PARTITION_TAG])
    config = evaluation_config_of(run.run_config)
    started = record.start_time or record.create_timestamp.timestamp()
    return Provenance(
        run_id=run_id,
        model_id=model_id,
        suite=suite,
        suite_version=run.tags.get(SUITE_VERSION_TAG, UNKNOWN_VERSION),
        status=run_status(run.status, run.tags),
        limited=is_limited(config.sample_limit, config.epochs),
        sample_limit=config.sample_limit,
        epochs=config.epochs,
        evaluated_at=run.tags.get(EVALUATED_AT_TAG) or _iso(started),
    )
