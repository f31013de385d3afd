"""The evaluation history: every finished evaluation run, appended once, never rewritten.

The history is a manifest (one row per run: identity, provenance, and the URIs of the
parts holding its rows) plus immutable Parquet parts: tasks (one row per task per run) and,
for runs that published results, samples (one row per sample and epoch), split by suite so
a comparison reads one suite at a time. Each append writes parts for its new runs only and
a new manifest; earlier parts are never touched, and a run already in the manifest is
skipped, so re-materializing is idempotent. Which runs and rows
come from the Dagster instance is `runs`' concern; this module only needs an artifact store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from eval_pipelines.analytics.store import read_frame, write_frame
from resources.artifact_store import ArtifactStore

PREFIX = "analytics/history"
# Who, what and how a run ran: on the manifest and on every task row.
_RUN_FIELDS = ["run_id", "model_id", "suite", "suite_version", "status", "limited"]
RUN_COLUMNS = [*_RUN_FIELDS, "sample_limit", "epochs", "evaluated_at", "tasks_uri", "samples_uri"]
TASK_COLUMNS = [
    *_RUN_FIELDS,
    "evaluated_at",
    "task",
    "published",
    "mean",
    "stderr",
    "n",
    "errors",
    "headline",
    "metrics",
]
# Fixed so every part reads back alike, scored or not (no score: NaN; errors unknown: <NA>).
TASK_DTYPES = {"mean": float, "stderr": float, "n": int, "errors": "Int64", "published": bool}
# The overrides are None on complete runs: a nullable integer, so every append concatenates
# alike whether or not its runs were limited.
RUN_DTYPES = {"sample_limit": "Int64", "epochs": "Int64"}
# Sample rows an append buffers before writing them (about 50 MB in memory).
FLUSH_ROWS = 250_000
_PENDING = object()
SAMPLE_COLUMNS = ["run_id", "task", "sample_id", "epoch", "score"]


@dataclass(frozen=True)
class RunFrames:
    """One run's rows: `run` is its manifest row without the part URIs; `tasks` has task,
    published, mean, stderr, n, errors, headline (the metric `mean` is) and metrics (every
    metric Inspect computed, as JSON); `samples` (None if it published nothing) has task,
    sample_id, epoch, score (NaN when unscored or errored)."""

    run: dict
    tasks: pd.DataFrame
    samples: pd.DataFrame | None


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=RUN_DTYPES.get(c, object)) for c in RUN_COLUMNS})


def append_runs(
    artifacts: ArtifactStore, manifest: pd.DataFrame, runs: Iterable[RunFrames]
) -> pd.DataFrame:
    """The manifest with `runs` appended (their parts written); known run ids are skipped.

    One append writes one tasks part for all its runs and, per suite, samples parts of at
    most about `FLUSH_ROWS` rows, so a large append holds a bounded number of sample rows in
    memory and writes few artifacts (an fsync each).
    """
    known = set(manifest["run_id"])
    added, task_frames = [], []
    pending: dict[str, list[pd.DataFrame]] = {}  # suite -> sample frames not yet written
    pending_rows = 0

    def flush() -> None:
        nonlocal pending_rows
        for suite, frames in pending.items():
            uri = write_frame(
                artifacts, f"{PREFIX}/samples/suite={suite}", pd.concat(frames, ignore_index=True)
            )
            for run in added:
                if run["suite"] == suite and run["samples_uri"] is _PENDING:
                    run["samples_uri"] = uri
        pending.clear()
        pending_rows = 0

    for frames in runs:
        run = frames.run
        if run["run_id"] in known:
            continue
        known.add(run["run_id"])
        task_frames.append(frames.tasks.assign(run_id=run["run_id"]))
        has_samples = frames.samples is not None
        added.append({**run, "samples_uri": _PENDING if has_samples else None})
        if has_samples:
            samples = frames.samples.assign(run_id=run["run_id"])[SAMPLE_COLUMNS]
            pending.setdefault(run["suite"], []).append(samples)
            pending_rows += len(samples)
            if pending_rows >= FLUSH_ROWS:
                flush()
    if not added:
        return manifest
    flush()
    new = pd.DataFrame(added)
    run_fields = [c for c in TASK_COLUMNS if c in new.columns]
    tasks = pd.concat(task_frames, ignore_index=True).merge(new[run_fields], on="run_id")
    tasks = tasks[TASK_COLUMNS].astype(TASK_DTYPES)
    new["tasks_uri"] = write_frame(artifacts, f"{PREFIX}/tasks", tasks)
    new = new[RUN_COLUMNS].astype(RUN_DTYPES)
    return new if manifest.empty else pd.concat([manifest, new], ignore_index=True)


def _parts(artifacts: ArtifactStore, uris: Iterable[str], run_ids: Iterable[str]) -> pd.DataFrame:
    """The rows of `run_ids` in the parts `uris` (a part may hold other runs too)."""
    frames = [read_frame(artifacts, uri) for uri in dict.fromkeys(uris)]
    rows = pd.concat(frames, ignore_index=True)
    return rows[rows["run_id"].isin(set(run_ids))].reset_index(drop=True)


def load_tasks(artifacts: ArtifactStore, manifest: pd.DataFrame) -> pd.DataFrame:
    """The task rows of every run in `manifest` (filter the manifest first to read less)."""
    if manifest.empty:
        return pd.DataFrame(columns=TASK_COLUMNS)
    return _parts(artifacts, manifest["tasks_uri"], manifest["run_id"])


def sample_loader(artifacts: ArtifactStore):
    """`load_samples(runs)` for `stats.model_comparison`: the samples of those manifest rows."""

    def load(runs: pd.DataFrame) -> pd.DataFrame:
        return _parts(artifacts, runs["samples_uri"], runs["run_id"])

    return load


def model_history(
    manifest: pd.DataFrame, artifacts: ArtifactStore, model: str, suite: str | None
) -> pd.DataFrame:
    """The model's task rows, newest run first (only its runs' parts are read)."""
    runs = manifest[
        (manifest["model_id"] == model) & ((suite is None) | (manifest["suite"] == suite))
    ]
    tasks = load_tasks(artifacts, runs)
    return tasks.sort_values(["evaluated_at", "suite", "task"], ascending=[False, True, True])
