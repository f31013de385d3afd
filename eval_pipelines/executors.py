"""The executor that runs an evaluation's ops, chosen by `EVAL_EXECUTOR`.

- `default`: Dagster's multiprocess executor (one process per op; `evalctl run` picks
  in-process or multiprocess per run).
- `k8s`: one Kubernetes Job per op (`k8s_job_executor`); needs the K8sRunLauncher of
  `deploy/scale/dagster.yaml`.
"""

import os
from collections.abc import Callable

from dagster import ExecutorDefinition

from eval_pipelines.k8s import scale_executor

EXECUTOR_ENV = "EVAL_EXECUTOR"
_EXECUTORS: dict[str, Callable[[], ExecutorDefinition | None]] = {
    "default": lambda: None,
    "k8s": scale_executor,
}


def executor_from_env() -> ExecutorDefinition | None:
    name = os.environ.get(EXECUTOR_ENV, "default")
    if name not in _EXECUTORS:
        raise ValueError(
            f"{EXECUTOR_ENV}={name!r} is not an executor; known: {', '.join(_EXECUTORS)}"
        )
    return _EXECUTORS[name]()
