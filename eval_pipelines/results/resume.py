"""Resume: a new run of a partition reuses what its unfinished predecessors already evaluated.

Each run carries a fingerprint of everything that decides its results (harness and Inspect
versions, the model spec, the suite spec, the run's limits and sample/epoch overrides), and
records per task, as run tags, where its work is: `done` (the finished log) or `partial`
(the samples completed before a stop or failure). A later run with the same fingerprint
looks back through the unfinished runs since the partition's last success and reuses the
newest record of each task: a finished log as it is, a partial one through Inspect's own
retry (its completed samples are kept, the rest run). A run whose process was killed left
no record, only its in-flight log folder on this host; that is salvaged the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Literal

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from pydantic import BaseModel, ConfigDict

from eval_pipelines.core.home import local_home
from eval_pipelines.core.names import FINGERPRINT_TAG, PARTITION_TAG, TASK_TAG_PREFIX
from eval_pipelines.core.run_tags import add_run_tags_durably

# How far back a resume looks for unfinished runs of the same partition.
LOOKBACK_RUNS = 25


class TaskCheckpoint(BaseModel):
    """Where one task of one run got to; stored as the run tag `eval/task/<task key>`."""

    model_config = ConfigDict(frozen=True)

    status: Literal["done", "partial"]
    log_uri: str
    samples: int
    run_id: str = ""
    # The task's safety audit trail (JSONL: every sandbox event and monitor verdict).
    audit_uri: str | None = None


def task_key(task_name: str) -> str:
    """A task's key in step names and its `eval/task/<task key>` tag."""
    return re.sub(r"[^A-Za-z0-9_]", "_", task_name)


def fingerprint(parts: dict) -> str:
    """A short digest of everything that must match for earlier work to be reused."""
    data = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:20]


def inflight_dir(run_id: str, task_key: str) -> Path:
    """Where Inspect writes a task's log while it runs: under the instance, not /tmp."""
    return local_home() / "inflight" / run_id / task_key


def record(
    instance: DagsterInstance, run_id: str, task_key: str, checkpoint: TaskCheckpoint
) -> None:
    """Tag the run with the task's checkpoint, where a later run's resume looks for it."""
    add_run_tags_durably(
        instance,
        run_id,
        {TASK_TAG_PREFIX + task_key: checkpoint.model_dump_json(exclude={"run_id"})},
    )


def unfinished_predecessors(
    instance: DagsterInstance, partition: str, fingerprint_value: str, run_id: str
) -> list:
    """Failed or canceled runs of this partition and fingerprint since its last success, newest first."""
    records = instance.get_run_records(
        RunsFilter(tags={PARTITION_TAG: partition}), limit=LOOKBACK_RUNS
    )
    found = []
    for record_ in records:  # newest first
        run = record_.dagster_run
        if run.run_id == run_id:
            continue
        if run.status == DagsterRunStatus.SUCCESS:
            break
        if (
            run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
            and run.tags.get(FINGERPRINT_TAG) == fingerprint_value
        ):
            found.append(run)
    return found


def find_checkpoint(runs: list, task_key: str) -> TaskCheckpoint | None:
    """The newest reusable record of a task among `runs` (from `unfinished_predecessors`)."""
    for run in runs:
        value = run.tags.get(TASK_TAG_PREFIX + task_key)
        if value:
            return TaskCheckpoint.model_validate_json(value).model_copy(
                update={"run_id": run.run_id}
            )
        crashed = _inflight_log(run.run_id, task_key)
        if crashed is not None:
            return TaskCheckpoint(
                status="partial", log_uri=crashed.as_uri(), samples=-1, run_id=run.run_id
            )
    return None


def _inflight_log(run_id: str, task_key: str) -> Path | None:
    folder = inflight_dir(run_id, task_key)
    logs = sorted(folder.glob("*.eval")) if folder.is_dir() else []
    return logs[-1] if logs else None


def discard_inflight(run_id: str, task_key: str) -> None:
    folder = inflight_dir(run_id, task_key)
    shutil.rmtree(folder, ignore_errors=True)
    for parent in (folder.parent, folder.parent.parent):
        try:
            parent.rmdir()  # only if empty
        except OSError:
            break
