"""End to end through the real services: the webserver takes a launch over GraphQL, the
daemon dequeues it (QueuedRunCoordinator), the run materializes the evaluation assets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
)

from tests.sandbox_support import (
    leftover_sandbox_dirs,
    private_tmpdir,
    require_sandbox_host,
    sandbox_processes,
)
from tests.services import BIN, PROJECT_ROOT, Service, free_port, tail

# The tests through the webserver and daemon share one start of them (`module_services`,
# tests/conftest.py); each tells its runs apart by run id. `evalctl ui` starts its own,
# before them.

MODEL, SUITE = "reference", "smoke"
PARTITION = f"{MODEL}|{SUITE}"
ASSETS = ("eval_logs", "sample_results", "task_scores")
RUN_TIMEOUT_S = 180
RUN_LIFECYCLE = {
    DagsterEventType.RUN_ENQUEUED,
    DagsterEventType.RUN_DEQUEUED,
    DagsterEventType.RUN_STARTING,
    DagsterEventType.RUN_START,
    DagsterEventType.RUN_SUCCESS,
    DagsterEventType.RUN_FAILURE,
}
TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def _service_tails(services: dict) -> str:
    return "\n".join(tail(log) for log in services["logs"])


def _run_errors(instance: DagsterInstance, run_id: str) -> str:
    lines = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if entry.level >= 40 or (event is not None and event.is_failure):
            text = entry.user_message or ""
            if event is not None and getattr(event.event_specific_data, "error", None) is not None:
                text += "\n" + event.event_specific_data.error.to_string()
            lines.append(f"[{entry.step_key or '-'}] {text}")
    return "\n".join(lines) or "<no error events>"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_evalctl_ui_serves_the_project_without_an_activated_venv(
    dagster_home: Path, tmp_path: Path
):
    import json
    import urllib.request

    port, viewer_port = free_port(), free_port()
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(dagster_home)}
    command = [
        str(BIN / "evalctl"),
        "ui",
        "--port",
        str(port),
        "--log-viewer-port",
        str(viewer_port),
    ]
    ui = Service("evalctl-ui", command, tmp_path, bare)
    try:
        ui.wait_for_http(f"http://127.0.0.1:{port}/server_info", timeout=180)
        query = {
            "query": "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=json.dumps(query).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            nodes = json.load(response)["data"]["repositoriesOrError"]["nodes"]
        assert {"evaluate", "refresh_leaderboard"} <= {job["name"] for job in nodes[0]["jobs"]}
    finally:
        ui.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_launch_evaluation_through_webserver_and_daemon(module_services: dict):
    from dagster import MultiPartitionKey
    from dagster_graphql import DagsterGraphQLClient

    from eval_pipelines.core.partitions import model_partitions, partition_key

    # Imported only now: the definitions build their resources from DAGSTER_HOME.
    from eval_pipelines.definitions import defs

    services = module_services
    key = partition_key(MODEL, SUITE)
    assert isinstance(key, MultiPartitionKey) and str(key) == PARTITION
    partition_tags = defs.resolve_job_def("evaluate").partitions_def.get_tags_for_partition_key(key)
    assert partition_tags == {
        "dagster/partition": PARTITION,
        "dagster/partition/model": MODEL,
        "dagster/partition/suite": SUITE,
    }

    with DagsterInstance.get() as instance:
        assert Path(instance.root_directory) == services["home"]
        instance.add_dynamic_partitions(model_partitions.name, [MODEL])

        webserver, daemon = services["services"]
        webserver.wait_for_http(f"http://127.0.0.1:{services['port']}/server_info", timeout=180)
        daemon.check_alive()

        client = DagsterGraphQLClient("127.0.0.1", port_number=services["port"])
        # The launch going through is the proof that the webserver answers GraphQL.
        run_id = client.submit_job_execution(
            "evaluate",
            repository_location_name="evals",
            repository_name="__repository__",
            run_config={
                "ops": {
                    "evaluation": {"ops": {"prepare_evaluation": {"config": {"sample_limit": 3}}}}
                }
            },
            tags=partition_tags,
        )

        deadline = time.monotonic() + RUN_TIMEOUT_S
        status = client.get_run_status(run_id)
        while status not in TERMINAL and time.monotonic() < deadline:
            time.sleep(1)
            status = client.get_run_status(run_id)

        run = instance.get_run_by_id(run_id)
        assert status == DagsterRunStatus.SUCCESS, (
            f"run {run_id} ended as {status} (stored: {run.status if run else None})\n"
            f"{_run_errors(instance, run_id)}\n{_service_tails(services)}"
        )

        # Queued -> dequeued by the daemon: the QueuedRunCoordinator only enqueues.
        assert instance.get_run_by_id(run_id).tags.get("dagster/partition") == PARTITION
        # (this Dagster records no RUN_DEQUEUED event: ENQUEUED then STARTING shows the hand-off)
        events = [
            e.dagster_event.event_type
            for e in instance.all_logs(run_id)
            if e.dagster_event is not None and e.dagster_event.event_type in RUN_LIFECYCLE
        ]
        assert DagsterEventType.RUN_ENQUEUED in events, f"run was not queued: {events}"
        assert DagsterEventType.RUN_STARTING in events, (
            f"run was never dequeued and launched: {events}"
        )
        assert events.index(DagsterEventType.RUN_ENQUEUED) < events.index(
            DagsterEventType.RUN_STARTING
        ), events

        for name in ASSETS:
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(name), asset_partitions=[PARTITION]), limit=10
            ).records
            mine = [r for r in records if r.run_id == run_id]
            assert mine, f"{name}: no materialization of partition {PARTITION} by run {run_id}"
            assert mine[0].event_log_entry.dagster_event.partition == PARTITION

        latest = instance.get_latest_materialization_event(AssetKey("task_scores"))
        assert latest is not None and latest.run_id == run_id
        assert latest.dagster_event.partition == PARTITION
        metadata = latest.asset_materialization.metadata
        missing = {
            "code_version",
            "data_version",
            "git_sha",
            "inspect_ai_version",
            "model_id",
        } - set(metadata)
        assert not missing, f"task_scores metadata lacks {sorted(missing)}; has {sorted(metadata)}"
        assert metadata["model_id"].value == MODEL


@pytest.fixture(scope="module")
def module_services_env():
    """The module's services see the test suites, and make their sandboxes in a TMPDIR of
    the module's own (checked for leftovers)."""
    with pytest.MonkeyPatch.context() as monkeypatch, private_tmpdir(monkeypatch) as folder:
        yield {
            "EVAL_SUITE_PATH": str(PROJECT_ROOT / "tests" / "data" / "suites"),
            "TMPDIR": str(folder),
        }


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_terminating_a_run_takes_its_sandboxes_down(module_services_env, module_services: dict):
    """Terminate from the UI's API while a tool call spins in a sandbox: nothing survives."""
    services, long_suite = module_services, module_services_env["TMPDIR"]
    require_sandbox_host()
    from dagster_graphql import DagsterGraphQLClient

    from eval_pipelines.core.partitions import model_partitions, partition_key
    from eval_pipelines.definitions import defs

    key = partition_key("red-team", "red-team-long")
    tags = defs.resolve_job_def("evaluate").partitions_def.get_tags_for_partition_key(key)
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(model_partitions.name, ["red-team"])
        webserver, _ = services["services"]
        webserver.wait_for_http(f"http://127.0.0.1:{services['port']}/server_info", timeout=180)
        client = DagsterGraphQLClient("127.0.0.1", port_number=services["port"])
        run_id = client.submit_job_execution(
            "evaluate",
            repository_location_name="evals",
            repository_name="__repository__",
            tags=tags,
        )

        deadline = time.monotonic() + 150
        while not any("python3" in p for p in sandbox_processes(str(long_suite))):
            assert time.monotonic() < deadline, (
                f"the CPU spin never started\n{_service_tails(services)}"
            )
            assert client.get_run_status(run_id) not in TERMINAL, _run_errors(instance, run_id)
            time.sleep(0.5)

        client.terminate_run(run_id)
        deadline = time.monotonic() + 60
        while client.get_run_status(run_id) not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.5)
        assert client.get_run_status(run_id) == DagsterRunStatus.CANCELED

        deadline = time.monotonic() + 10
        ours = str(long_suite)
        while (
            sandbox_processes(ours) or leftover_sandbox_dirs(ours)
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sandbox_processes(ours) == []
        assert leftover_sandbox_dirs(ours) == []


PARTITION_TAGS_QUERY = """
query PartitionTags($selector: PipelineSelector!, $partition: String!) {
  pipelineOrError(params: $selector) {
    ... on Pipeline {
      partition(partitionName: $partition) {
        tagsOrError { ... on PartitionTags { results { key value } } }
      }
    }
  }
}
"""


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_per_model_limit_holds_launches_that_add_no_tags(module_services: dict):
    """Two launches of one model, each with only the tags the UI asks the code location for:
    the queue runs them one after the other."""
    from dagster_graphql import DagsterGraphQLClient

    from eval_pipelines.core.partitions import model_partitions

    services = module_services

    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(model_partitions.name, [MODEL])
        webserver, _ = services["services"]
        webserver.wait_for_http(f"http://127.0.0.1:{services['port']}/server_info", timeout=180)
        client = DagsterGraphQLClient("127.0.0.1", port_number=services["port"])
        selector = {
            "repositoryLocationName": "evals",
            "repositoryName": "__repository__",
            "pipelineName": "evaluate",
        }
        answer = client._execute(
            PARTITION_TAGS_QUERY, {"selector": selector, "partition": PARTITION}
        )
        results = answer["pipelineOrError"]["partition"]["tagsOrError"]["results"]
        tags = {tag["key"]: tag["value"] for tag in results}
        assert tags.get("dagster/partition/model") == MODEL and "eval/model" not in tags
        config = {
            "ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": {"sample_limit": 2}}}}}
        }
        run_ids = [
            client.submit_job_execution(
                "evaluate",
                repository_location_name="evals",
                repository_name="__repository__",
                run_config=config,
                tags=tags,
            )
            for _ in range(2)
        ]
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
            assert sum(r.status == DagsterRunStatus.STARTED for r in runs) <= 1
            if all(r.status in TERMINAL for r in runs):
                break
            time.sleep(0.5)
        records = sorted(instance.get_run_records(), key=lambda r: r.start_time or 0)
        records = [r for r in records if r.dagster_run.run_id in run_ids]
        assert [r.dagster_run.status for r in records] == [DagsterRunStatus.SUCCESS] * 2, (
            _service_tails(services)
        )
        first, second = records
        assert first.end_time <= second.start_time, "two runs of one model ran at once"
