"""The local run launcher: Dagster's default, plus what it lacks to keep run states true.

Dagster's `DefaultRunLauncher` can only terminate runs it launched through a code server,
and has no worker health check, so a run whose worker was killed stayed STARTED forever
(and held the leaderboard's automation). This launcher:

- terminates any run whose worker runs on this host (`evalctl run --local` included) by
  interrupting that worker, the way Dagster's code server does;
- reports the worker's health from the `eval/worker` tag the executor records, so the
  daemon's run monitoring marks a run FAILURE within a poll interval of its worker dying.

`fail_runs_with_dead_workers` applies the same check where no daemon runs (`evalctl`).
"""

from __future__ import annotations

import os
import signal

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
from dagster._core.storage.tags import GRPC_INFO_TAG

from eval_pipelines.core.names import WORKER_TAG
from eval_pipelines.core.processes import ProcessIdentity


def run_worker(run: DagsterRun) -> ProcessIdentity | None:
    return ProcessIdentity.from_tag(run.tags.get(WORKER_TAG))


def worker_health(run: DagsterRun) -> CheckRunHealthResult:
    """FAILED only when the recorded worker is known dead; RUNNING when we cannot tell."""
    worker = run_worker(run)
    if worker is None or not worker.is_local:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker not observable from here")
    if worker.alive():
        return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(worker.pid))
    return CheckRunHealthResult(
        WorkerStatus.FAILED,
        f"the run worker ({worker.describe()}) is gone: it was killed or crashed",
        run_worker_id=str(worker.pid),
    )


class EvalRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` that can stop and health-check runs whose worker is on this host."""

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        if GRPC_INFO_TAG in run.tags:
            return super().terminate(run_id)
        worker = run_worker(run)
        self._instance.report_run_canceling(run)
        if worker is None or not worker.is_local or not worker.alive():
            self._instance.report_engine_event(
                "No live local run worker to interrupt; its ops stop when they see the run "
                "canceling.",
                run,
                cls=self.__class__,
            )
            return False
        os.kill(worker.pid, signal.SIGINT)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        return worker_health(run)


def fail_runs_with_dead_workers(instance: DagsterInstance) -> list[str]:
    """Mark STARTED/CANCELING runs whose local worker is dead as FAILURE/CANCELED; their ids."""
    ended = []
    runs = instance.get_runs(
        RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING])
    )
    for run in runs:
        health = worker_health(run)
        if health.status != WorkerStatus.FAILED:
            continue
        if run.status == DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message=health.msg)
        else:
            instance.report_run_failed(run, message=f"Run worker failed: {health.msg}")
        ended.append(run.run_id)
    return ended
