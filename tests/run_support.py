"""Helpers shared by the run tests and the benches (control, stop_interrupts): a scripted
model whose calls are logged, UI-style launches over GraphQL, Terminate, waiting on run
states, and a started run with a stand-in eval for stopping without Inspect."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from pathlib import Path

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, job, op

MODEL, SUITE = "weak-ledger", "agentic-smoke"
TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@op
def noop():
    pass


@job
def placeholder():
    noop()


def started_run(instance: DagsterInstance, tags: dict[str, str] | None = None) -> DagsterRun:
    """A run of a placeholder job, STARTED in `instance`: something for a watch to watch."""
    run = instance.create_run_for_job(placeholder, tags=tags or {}, status=DagsterRunStatus.STARTED)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED
    return run


class Work:
    """A stand-in for an Inspect eval: runs until cancelled, then cleans up for a while."""

    def __init__(self, cleanup_seconds: float = 0.0):
        self.cleanup_seconds = cleanup_seconds
        self.started = threading.Event()
        self.cleaned_up = threading.Event()

    async def __call__(self):
        self.started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(self.cleanup_seconds)  # like Inspect writing its log
            self.cleaned_up.set()


def write_ledger_model(
    models: Path,
    calls: Path,
    model: str = MODEL,
    policy: str = "weak",
    latency: float = 0.0,
    rendezvous: int = 1,
) -> None:
    """A scripted model (`policy`) that logs each call to `calls` (wall time per line) and
    answers after `latency` seconds, like a remote API; with `rendezvous` > 1, each
    process's first call waits until that many processes have called."""
    models.mkdir(parents=True, exist_ok=True)
    (models / f"{model}.yaml").write_text(
        f"id: {model}\nmodel: scripted/{policy}\n"
        f"model_args: {{call_log: {calls}, latency_seconds: {latency}, "
        f"rendezvous_processes: {rendezvous}}}\n"
    )


def model_calls(ledger: Path) -> list[float]:
    if not ledger.exists():
        return []
    return [float(line.split()[0]) for line in ledger.read_text().splitlines() if line]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def graphql(port: int, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


TERMINATE = """
mutation Terminate($runId: String!, $policy: TerminateRunPolicy) {
  terminateRun(runId: $runId, terminatePolicy: $policy) {
    __typename
    ... on PythonError { message }
    ... on TerminateRunFailure { message }
  }
}
"""


def launch_from_the_ui_api(
    port: int,
    instance: DagsterInstance,
    executor: str,
    epochs: int,
    model: str = MODEL,
    suite: str = SUITE,
) -> str:
    """What the Launchpad does: a GraphQL launch carrying only the partition's tags."""
    from dagster_graphql import DagsterGraphQLClient

    from eval_pipelines.core.partitions import model_partitions, partition_key
    from eval_pipelines.definitions import build_definitions

    instance.add_dynamic_partitions(model_partitions.name, [model])
    job = build_definitions().resolve_job_def("evaluate")
    tags = job.partitions_def.get_tags_for_partition_key(partition_key(model, suite))
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    return client.submit_job_execution(
        "evaluate",
        repository_location_name="evals",
        repository_name="__repository__",
        run_config={
            "ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": {"epochs": epochs}}}}},
            "execution": {"config": {executor: {}}},
        },
        tags=tags,
    )


def wait_for_status(instance: DagsterInstance, run_id: str, timeout: float):
    return wait_for(
        lambda: (r := instance.get_run_by_id(run_id)).status in TERMINAL and r,
        timeout,
        f"run {run_id} to end",
    )
