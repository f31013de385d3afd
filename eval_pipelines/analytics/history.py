"""The evaluation history: every finished evaluation run, appended once, never rewritten.

The history is a manifest (one row per run: identity, provenance, and the URIs of its
parts) plus, per run, two immutable Parquet parts: its tasks (one row per task) and, when
the run published results, its samples (one row per sample and epoch). Appending writes
the new runs' parts and a new manifest; parts of earlier runs are never touched, and a run
already in the manifest is skipped, so re-materializing is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from eval_pipelines.analytics.store import read_frame, write_frame
from eval_pipelines.jobs import EVALUATION_JOB
from eval_pipelines.provenance import run_provenance
from eval_pipelines.records import run_result
from eval_pipelines.resume import PARTITION_TAG, TASK_TAG_PREFIX, TaskCheckpoint
from resources.artifact_store import ArtifactStore

PREFIX = "analytics/history"
RUN_COLUMNS = [
    "run_id",
    "model_id",
    "suite",
    "suite_version",
    "status",
    "limited",
    "sample_limit",
    "epochs",
    "evaluated_at",
    "tasks_uri",
    "samples_uri",
]
TASK_COLUMNS = [
    "run_id",
    "model_id",
    "suite",
    "suite_version",
    "status",
    "limited",
    "evaluated_at",
    "task",
    "published",
    "mean",
    "stderr",
    "n",
    "errors",
]
# Fixed so every part reads back alike, scored or not (no score: NaN; errors unknown: <NA>).
TASK_DTYPES = {"mean": float, "stderr": float, "n": int, "errors": "Int64", "published": bool}
SAMPLE_COLUMNS = ["run_id", "task", "sample_id", "epoch", "score"]
# A run enters the history once it can no longer change.
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


@dataclass(frozen=True)
class RunFrames:
    """One run's rows: `run` is its manifest row without the part URIs."""

    run: dict
    tasks: pd.DataFrame
    samples: pd.DataFrame | None


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in RUN_COLUMNS})


def append_runs(
    artifacts: ArtifactStore, manifest: pd.DataFrame, runs: Iterable[RunFrames]
) -> pd.DataFrame:
    """The manifest with `runs` appended (their parts written); known run ids are skipped."""
    known = set(manifest["run_id"])
    added = []
    for frames in runs:
        run = frames.run
        if run["run_id"] in known:
            continue
        known.add(run["run_id"])
        prefix = f"{PREFIX}/model={run['model_id']}/suite={run['suite']}/{run['run_id']}"
        tasks = frames.tasks.assign(**{k: run[k] for k in TASK_COLUMNS if k in run}).astype(
            TASK_DTYPES
        )
        added.append(
            {
                **run,
                "tasks_uri": write_frame(artifacts, f"{prefix}/tasks", tasks[TASK_COLUMNS]),
                "samples_uri": None
                if frames.samples is None
                else write_frame(
                    artifacts,
                    f"{prefix}/samples",
                    frames.samples.assign(run_id=run["run_id"])[SAMPLE_COLUMNS],
                ),
            }
        )
    if not added:
        return manifest
    new = pd.DataFrame(added, columns=RUN_COLUMNS)
    return new if manifest.empty else pd.concat([manifest, new], ignore_index=True)


def load_tasks(artifacts: ArtifactStore, manifest: pd.DataFrame) -> pd.DataFrame:
    """The task rows of every run in `manifest` (filter the manifest first to read less)."""
    parts = [read_frame(artifacts, uri) for uri in manifest["tasks_uri"]]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=TASK_COLUMNS)


def sample_loader(artifacts: ArtifactStore):
    """`load_samples(uris)` for `stats.model_comparison`."""

    def load(uris: list[str]) -> pd.DataFrame:
        return pd.concat([read_frame(artifacts, uri) for uri in uris], ignore_index=True)

    return load


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
        tasks = pd.DataFrame(scores)[["task", "mean", "stderr", "n", "errors"]]
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
    tasks = pd.DataFrame(progress).assign(mean=None, stderr=None, errors=None, published=False)
    return RunFrames(row, tasks, None)
