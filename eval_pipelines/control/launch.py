"""Submit an evaluation to the run queue, as the UI does, and follow it to the end.

The run is created from the code location of `workspace.yaml` (a remote job, like
`dagster job launch` and GraphQL `launchPipelineExecution`), so the QueuedRunCoordinator
holds it until the daemon dequeues it under the instance's limits and the
DefaultRunLauncher starts it in a run worker.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.events import DagsterEvent
from dagster._core.events.log import EventLogEntry

from eval_pipelines.control.daemon import DaemonLease
from eval_pipelines.core.home import PROJECT_ROOT

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
                # The daemon may be ours alone: keep it until the run's incidents are answered.
                wait_for_safety_response(instance, run_id)
                return run.status, events
            if run.status in _WAITING:
                lease.ensure_daemon(instance)
            time.sleep(poll_seconds)


def wait_for_safety_response(
    instance: DagsterInstance, run_id: str, timeout: float = 300, poll_seconds: float = 2.0
) -> None:
    """Wait until every incident of the run has its alert run, and its quarantine run where
    the incident asks for one, finished (the safety sensor launches them)."""
    from dagster import AssetRecordsFilter, RunsFilter

    from eval_pipelines.core.names import (
        INCIDENT_TAG,
        INCIDENTS_ASSET,
        QUARANTINE_JOB,
        SAFETY_ALERT_JOB,
    )

    deadline, reported = time.monotonic() + timeout, False
    while True:
        observations = instance.fetch_observations(
            AssetRecordsFilter(asset_key=INCIDENTS_ASSET), limit=1000
        ).records
        expected = set()
        for record in observations:
            meta = {k: v.value for k, v in record.asset_observation.metadata.items()}
            if meta.get("run_id") == run_id:
                expected.add((str(meta["incident_id"]), SAFETY_ALERT_JOB))
                if meta.get("quarantine"):
                    expected.add((str(meta["incident_id"]), QUARANTINE_JOB))
        done = {
            (run.tags.get(INCIDENT_TAG), run.job_name)
            for incident_id, _ in expected
            for run in instance.get_runs(RunsFilter(tags={INCIDENT_TAG: incident_id}))
            if run.is_finished
        }
        missing = expected - done
        if not missing:
            return
        if not reported:
            print(
                f"Run {run_id} raised {len({i for i, _ in expected})} incident(s): waiting for "
                "their alert and quarantine runs",
                file=sys.stderr,
                flush=True,
            )
            reported = True
        if time.monotonic() > deadline:
            print(
                f"warning: still not answered after {timeout:.0f}s: "
                + ", ".join(f"{job} for incident {i}" for i, job in sorted(missing))
                + "; a running daemon (`evalctl ui`) will finish them",
                file=sys.stderr,
            )
            return
        time.sleep(poll_seconds)


def failure_reasons(events: list[DagsterEvent]) -> list[str]:
    """Why a run failed, from its events: failed steps and engine errors, else the run's."""
    reasons = []
    for event in events:
        error = getattr(event.event_specific_data, "error", None)
        if event.event_type == DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            detail = (data.user_failure_data.description if data.user_failure_data else None) or (
                _error_text(error) if error else "failed without an error"
            )
            reasons.append(f"{event.step_key}: {detail}")
        elif event.event_type == DagsterEventType.ENGINE_EVENT and error is not None:
            reasons.append(f"{event.message}: {_error_text(error)}")
    if not reasons:
        failures = [e for e in events if e.event_type == DagsterEventType.RUN_FAILURE]
        for event in failures:
            error = getattr(event.event_specific_data, "error", None)
            reasons.append(f"{event.message}: {_error_text(error)}" if error else event.message)
    return reasons


def _error_text(error) -> str:
    """The error's first line, and its root cause (the storage or OS error users can act on)."""
    root = error
    while root.cause is not None:
        root = root.cause
    return _line(error) if root is error else f"{_line(error)} (caused by {_line(root)})"


def _line(error) -> str:
    """`Class: first line`, without the `module.Class: ` prefix serialized errors carry."""
    first = (error.message.strip().splitlines() or [""])[0]
    prefix, sep, rest = first.partition(": ")
    return f"{error.cls_name}: {rest if sep and prefix.endswith(str(error.cls_name)) else first}"
