"""Start, stop and list the code location's schedules, as the UI toggle does.

Schedule state lives in the instance, keyed by the schedule's origin in the workspace; so,
like `dagster schedule start`, we load the code location through `workspace.yaml` (the
same origin the daemon and webserver use) and change the state through the instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dagster import DagsterInstance
from dagster._cli.workspace.cli_target import RepositoryOpts, get_repository_from_cli_opts
from dagster._core.remote_representation.external import RemoteRepository, RemoteSchedule
from dagster._core.scheduler.instigation import InstigatorStatus
from dagster.version import __version__ as dagster_version
from dagster_shared.cli import WorkspaceOpts

from eval_pipelines.core.home import PROJECT_ROOT

LOCATION = "evals"


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    cron: str
    timezone: str
    running: bool
    description: str


@contextmanager
def _repository(instance: DagsterInstance) -> Iterator[RemoteRepository]:
    workspace = WorkspaceOpts(workspace=[str(PROJECT_ROOT / "workspace.yaml")])
    with get_repository_from_cli_opts(
        instance, dagster_version, workspace, RepositoryOpts(location=LOCATION)
    ) as repository:
        yield repository


def _running(instance: DagsterInstance, schedule: RemoteSchedule) -> bool:
    stored = instance.get_instigator_state(schedule.get_remote_origin_id(), schedule.selector_id)
    status = schedule.get_current_instigator_state(stored).status
    return status in (InstigatorStatus.RUNNING, InstigatorStatus.DECLARED_IN_CODE)


def list_schedules(instance: DagsterInstance) -> list[ScheduleRow]:
    with _repository(instance) as repository:
        return [
            ScheduleRow(
                s.name,
                str(s.cron_schedule),
                s.execution_timezone or "UTC",
                _running(instance, s),
                s.description or "",
            )  # fmt: skip
            for s in sorted(repository.get_schedules(), key=lambda s: s.name)
        ]


def set_running(instance: DagsterInstance, name: str, running: bool) -> None:
    """Start or stop schedule `name`; `KeyError` names the known ones if there is none."""
    with _repository(instance) as repository:
        if not repository.has_schedule(name):
            known = ", ".join(sorted(s.name for s in repository.get_schedules())) or "none"
            raise KeyError(f"no schedule {name!r}; known schedules: {known}")
        schedule = repository.get_schedule(name)
        if running == _running(instance, schedule):
            return
        if running:
            instance.start_schedule(schedule)
        else:
            instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)
