"""Submit an evaluation to the run queue, as the UI does, and follow it to the end.

The run is created from the code location of `workspace.yaml` (a remote job, like
`dagster job launch` and GraphQL `launchPipelineExecution`), so the QueuedRunCoordinator
holds it until the daemon dequeues it under the instance's limits and the
DefaultRunLauncher starts it in a run worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.events import DagsterEvent
from dagster._core.events.log import EventLogEntry

from eval_pipelines.daemon import DaemonLease
from eval_pipelines.home import PROJECT_ROOT

LOCATION, REPOSITORY = "evals", "__repository__"
_WAITING = {DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED}


def submit(
    instance: DagsterInstance, job_name: str, run_config: Mapping, tags: Mapping[str, str]
) -> str:
    """Create the run from workspace.yaml's code location and hand it to the run coordinator."""
    from dagster._cli.job import _create_run  # what `dagster job launch` does; pinned dagster
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    target = WorkspaceFileTarget(paths=[str(PROJECT_ROOT / "workspace.yaml")])
    with WorkspaceProcessContext(instance, target, code_server_log_level="WARNING") as workspace:
        context = workspace.create_request_context()
        error = context.get_code_location_error(LOCATION)
        if error is not None:
            raise RuntimeError(f"code location {LOCATION!r} failed to load: {error.message}")
        location = context.get_code_location(LOCATION)
        repository = location.get_repository(REPOSITORY)
        run = _create_run(
            instance=instance,
            code_location=location,
            remote_repo=repository,
            remote_job=repository.get_full_job(job_name),
            run_config=run_config,
            tags=tags,
            op_selection=None,
            run_id=None,
        )
        return instance.submit_run(run.run_id, context).run_id


def follow(
    instance: DagsterInstance,
    home: Path,
    run_id: str,
    on_entry: Callable[[EventLogEntry], None],
    poll_seconds: float = 1.0,
) -> tuple[DagsterRunStatus, list[DagsterEvent]]:
    """Stream the run's log to `on_entry` until it ends; keeps a daemon draining the queue."""
    cursor, events = None, []
    with DaemonLease(home) as lease:
        while True:
            run = instance.get_run_by_id(run_id)
            connection = instance.get_records_for_run(run_id, cursor=cursor)
            cursor = connection.cursor
            for record in connection.records:
                entry = record.event_log_entry
                on_entry(entry)
                if entry.dagster_event is not None:
                    events.append(entry.dagster_event)
            if run is None:
                raise RuntimeError(f"run {run_id} disappeared from the instance")
            if run.is_finished and not connection.has_more:
                return run.status, events
            if run.status in _WAITING:
                lease.ensure_daemon(instance)
            time.sleep(poll_seconds)


def failure_reasons(events: list[DagsterEvent]) -> list[str]:
    """Why a run failed, from its events: failed steps first, then run-level errors."""
    reasons = []
    for event in events:
        if event.event_type == DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            detail = (data.user_failure_data.description if data.user_failure_data else None) or (
                _error_text(data.error) if data.error else "failed without an error"
            )
            reasons.append(f"{event.step_key}: {detail}")
        elif event.event_type in (DagsterEventType.RUN_FAILURE, DagsterEventType.ENGINE_EVENT):
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                reasons.append(f"{event.message or 'run'}: {_error_text(error)}")
            elif event.event_type == DagsterEventType.RUN_FAILURE and not reasons:
                reasons.append(event.message or "run failed")
    return reasons


def _error_text(error) -> str:
    """`Type: message` of a serialized error, following its causes to the root."""
    while error.cause is not None and not error.message.strip():
        error = error.cause
    message = error.message.strip()
    return message if message.startswith(error.cls_name or "") else f"{error.cls_name}: {message}"
