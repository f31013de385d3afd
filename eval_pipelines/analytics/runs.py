"""The history rows of finished evaluation runs, read from the Dagster instance."""

from __future__ import annotations

import pandas as pd
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from eval_pipelines.analytics.history import RunFrames
from eval_pipelines.core.names import (
    EVALUATION_JOB,
    PARTITION_TAG,
    QUARANTINED_TAG,
    TASK_TAG_PREFIX,
)
from eval_pipelines.core.text import canonical_json
from eval_pipelines.results.provenance import run_provenance
from eval_pipelines.results.records import run_result
from eval_pipelines.results.resume import TaskCheckpoint
from resources.artifact_store import ArtifactStore

# A run enters the history once it can no longer change.
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def quarantined_runs(instance: DagsterInstance) -> set[str]:
    """Runs held by the quarantine job (tag `eval/quarantined`, whose value is the incident):
    like the leaderboard, trends and comparisons leave their results out."""
    incidents = {v for _, values in instance.get_run_tags([QUARANTINED_TAG]) for v in values}
    if not incidents:
        return set()
    held = instance.get_runs(RunsFilter(tags={QUARANTINED_TAG: sorted(incidents)}))
    return {run.run_id for run in held}


def finished_runs(instance: DagsterInstance, known: set[str]) -> list[DagsterRun]:
    """Finished evaluation runs not yet in the history, oldest first."""
    runs = instance.get_runs(RunsFilter(job_name=EVALUATION_JOB, statuses=FINISHED))
    return [r for r in reversed(runs) if r.run_id not in known and PARTITION_TAG in r.tags]


def run_frames(instance: DagsterInstance, artifacts: ArtifactStore, run: DagsterRun) -> RunFrames:
    """A run's history rows: its published task scores and samples, or, for a run that
    published nothing (failed, stopped), the tasks it recorded progress on, unscored."""
    provenance = run_provenance(instance, run.run_id)
    row = {
        "run_id": run.run_id,
        "model_id": provenance.model_id,
        "suite": provenance.suite,
        "suite_version": provenance.suite_version,
        "status": provenance.status,
        "limited": provenance.limited,
        "sample_limit": provenance.sample_limit,
        "epochs": provenance.epochs,
        "evaluated_at": provenance.evaluated_at,
    }
    published = run_result(instance, run.tags[PARTITION_TAG], run.run_id)
    if published is not None:
        scores = published.value("task_scores", artifacts)["tasks"]
        tasks = pd.DataFrame(scores).reindex(columns=["task", "mean", "stderr", "n", "errors"])
        tasks["headline"] = [t.get("headline") for t in scores]
        tasks["metrics"] = [canonical_json(t.get("metrics") or {}).decode() for t in scores]
        rows = pd.DataFrame(published.value("sample_results", artifacts))
        score = rows["score"].astype(float).where(rows["error"].isna())
        samples = rows[["task", "sample_id", "epoch"]].assign(score=score)
        return RunFrames(row, tasks.assign(published=True), samples)
    progress = [
        {"task": key.removeprefix(TASK_TAG_PREFIX), "n": max(checkpoint.samples, 0)}
        for key, value in sorted(run.tags.items())
        if key.startswith(TASK_TAG_PREFIX)
        for checkpoint in [TaskCheckpoint.model_validate_json(value)]
    ] or [{"task": None, "n": 0}]
    tasks = pd.DataFrame(progress).assign(
        mean=None, stderr=None, errors=None, headline=None, metrics=None, published=False
    )
    return RunFrames(row, tasks, None)
