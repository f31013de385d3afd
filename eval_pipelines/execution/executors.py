"""The executor that runs an evaluation's ops, chosen by `EVAL_EXECUTOR`.

- `default`: in-process (fast: one interpreter, as `evalctl run` and the UI use locally)
  or multiprocess (one process per op, like pods), picked per run in the run config; the
  run worker records who it is, so a dead worker is noticed (`eval_pipelines.execution.launcher`).
- `k8s`: one Kubernetes Job per op (`k8s_job_executor`); needs the K8sRunLauncher of
  `deploy/scale/dagster.yaml`, whose own health check watches the run worker pods.
"""

import os
from collections.abc import Callable, Iterator

from dagster import (
    DagsterEvent,
    ExecutorDefinition,
    Field,
    InitExecutorContext,
    multi_or_in_process_executor,
)
from dagster._core.executor.base import Executor

from eval_pipelines.core.names import WORKER_TAG
from eval_pipelines.core.processes import ProcessIdentity
from eval_pipelines.execution.k8s import scale_executor

EXECUTOR_ENV = "EVAL_EXECUTOR"


class WorkerRecordingExecutor(Executor):
    """Dagster's executor, plus a run tag naming the run worker process (host, pid, start)."""

    def __init__(self, inner: Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator[DagsterEvent]:
        plan_context.instance.add_run_tags(
            plan_context.run_id, {WORKER_TAG: ProcessIdentity.current().to_tag()}
        )
        yield from self._inner.execute(plan_context, execution_plan)


def _local_executor(init_context: InitExecutorContext) -> Executor:
    return WorkerRecordingExecutor(multi_or_in_process_executor.executor_creation_fn(init_context))


local_executor = ExecutorDefinition(
    name="local_evaluation_executor",
    config_schema=Field(
        multi_or_in_process_executor.config_schema.as_field().config_type,
        default_value={"in_process": {}},
        description="in_process (default: one interpreter) or multiprocess (a process per op).",
    ),
    requirements=multi_or_in_process_executor.get_requirements,
    executor_creation_fn=_local_executor,
    description="Dagster's in-process/multiprocess executor that records its run worker.",
)

_EXECUTORS: dict[str, Callable[[], ExecutorDefinition]] = {
    "default": lambda: local_executor,
    "k8s": scale_executor,
}


def executor_from_env() -> ExecutorDefinition:
    name = os.environ.get(EXECUTOR_ENV, "default")
    if name not in _EXECUTORS:
        raise ValueError(
            f"{EXECUTOR_ENV}={name!r} is not an executor; known: {', '.join(_EXECUTORS)}"
        )
    return _EXECUTORS[name]()
