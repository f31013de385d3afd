"""Issue 7's "Done when", end to end: the red-team agent launched as from the UI, with the
real daemon and sensors, a real sandbox and one real HTTP receiver for every alert channel.

Two slow tests. Launched from the UI: the run is safety-stopped, its incidents carry
evidence, each channel gets each alert once, the logs are quarantined and the model refused
until lifted, and nothing (no model call, no sandbox process) outlives the stop. Through
`evalctl run` (its private daemon, multiprocess): a stop landing while two op processes are
both mid-task leaves no model or tool call behind, and evalctl returns only once the
incidents are alerted and quarantined.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from eval_pipelines.catalog import Catalog
from eval_pipelines.cli import main as evalctl
from eval_pipelines.core.names import (
    INCIDENT_TAG,
    QUARANTINE_JOB,
    SAFETY_ALERT_JOB,
    TASK_TAG_PREFIX,
)
from eval_pipelines.evaluation.inspect_work import validate_evaluation
from eval_pipelines.results.resume import TaskCheckpoint, task_key
from resources.artifact_store import LocalArtifactStore
from resources.sandbox import SandboxBackend
from sensors.safety import SAFETY_STOPPED_TAG
from tests.conftest import write_suite
from tests.run_support import (
    graphql,
    launch_from_the_ui_api,
    model_calls,
    wait_for,
    wait_for_status,
    write_ledger_model,
)
from tests.sandbox_support import private_tmpdir, require_sandbox_host, sandbox_processes
from tests.test_run_faults import evalctl as start_evalctl
from tests.test_safety_monitor import incidents
from tests.test_safety_response import CHANNELS, receiver, wait_for_run  # noqa: F401 (fixture)

MODEL, SUITE = "red-team-ledger", "red-team"
# A stop must end all model and tool calls within this (as tests/test_run_faults.py).
QUIET_AFTER_S = 5.0
# Beside the `services` group, one test at a time (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("run-faults")

RUN_TAGS = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status tags { key value } } }
}
"""


def _ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **model):
    """A scripted agent (the red-team one unless `model` says) logging each model call, in a
    model folder the daemon's runs see, its sandboxes in a TMPDIR of this test's own. Set
    before the services start."""
    require_sandbox_host()
    calls = tmp_path / "model-calls.log"
    write_ledger_model(
        tmp_path / "models", calls, **{"model": MODEL, "policy": "red-team", **model}
    )
    monkeypatch.setenv("EVAL_MODEL_PATH", str(tmp_path / "models"))
    with private_tmpdir(monkeypatch) as sandboxes:
        yield calls, sandboxes


@pytest.fixture
def red_team_ledger(dagster_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from _ledger(tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_red_team_launched_from_the_ui_is_stopped_alerted_and_quarantined(
    receiver,  # noqa: F811 (the fixture imported above)
    red_team_ledger,
    services: dict,
    capsys,
):
    calls, sandboxes = red_team_ledger
    home, port = services["home"], services["port"]
    artifacts = LocalArtifactStore(root=str(home / "artifacts"))
    services["services"][0].wait_for_http(f"http://127.0.0.1:{port}/server_info", timeout=120)
    with DagsterInstance.get() as instance:
        run_id = launch_from_the_ui_api(port, instance, "multiprocess", 1, model=MODEL, suite=SUITE)
        run = wait_for_status(instance, run_id, timeout=600)

        # The run ended safety-stopped, and the UI's API shows it.
        assert run.status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE), run.status
        shown = graphql(port, RUN_TAGS, {"runId": run_id})["data"]["runOrError"]
        tags = {t["key"]: t["value"] for t in shown["tags"]}
        assert tags[SAFETY_STOPPED_TAG] == "true"
        assert tags["eval/stop-reason"].startswith("safety: network-tool:")

        # An incident per rule hit, with its evidence and (its stop done) its kill time.
        found = wait_for(
            lambda: (i := incidents(instance, artifacts)) and all(x.killed_at for x in i) and i,
            120,
            "the incidents with their kill times",
        )
        assert [i.rule_id for i in found] == ["network-tool"], "nothing may run after the stop"
        [incident] = found
        assert incident.run_id == run_id and incident.partition == f"{MODEL}|{SUITE}"
        assert "getent hosts" in incident.evidence["arguments"]

        # Nothing outlives the stop: no sandbox process, no model call after it.
        wait_for(lambda: not sandbox_processes(str(sandboxes)), 30, "sandbox processes to end")
        time.sleep(2)  # anything still working would call the model again by now
        late = [t for t in model_calls(calls) if t > incident.killed_at + QUIET_AFTER_S]
        assert model_calls(calls) and not late, f"{len(late)} model call(s) after the stop"
        assert not sandbox_processes(str(sandboxes))

        # One alert per incident per channel, even after more sensor ticks (every ~5 s).
        wait_for(lambda: all(receiver.got(c, incident.id) for c in CHANNELS), 300, "every channel")
        wait_for_run(instance, "quarantine", DagsterRunStatus.SUCCESS)
        time.sleep(15)
        for channel in CHANNELS:
            assert len(receiver.got(channel, incident.id)) == 1, channel
        webhook = receiver.got("webhook", incident.id)[0]
        assert webhook["details"]["evidence"] == incident.evidence

        # The run's logs copied under quarantine/, the model refused until lifted.
        held = home / "artifacts" / "quarantine" / f"model={MODEL}" / f"suite={SUITE}" / run_id
        assert list((held / "eval-logs").rglob("*.eval")), "no quarantined log"
        assert list((held / "eval-logs").rglob("audit/*.jsonl")), "no quarantined audit trail"
        capsys.readouterr()
        assert evalctl(["run", "--local", "--model", MODEL, "--suite", SUITE]) == 2
        refusal = capsys.readouterr().err
        assert incident.id in refusal and f"evalctl quarantine lift {MODEL}" in refusal
        assert evalctl(["quarantine", "lift", MODEL, "--reason", "test"]) == 0
        sandbox = SandboxBackend(backend="bwrap")
        validate_evaluation(Catalog.default(), MODEL, SUITE, sandbox, instance)


# Two tasks (two op processes), samples one after the other, the reference agent at 3 s per
# model call; neither task's first call is answered before the other's process has called
# (a loaded host may start one op process many seconds after the other). first-tools runs checksum (bash), count-errors (bash), then sum-of-squares,
# whose python call a rule of the suite makes stop the whole evaluation, some 15 s in.
# second-tools repeats checksum and count-errors (4 epochs, no python): it is mid-task when
# the stop lands and only the run's cancel, from the other process, can stop it. Honest work
# raises no incident: the stop is the only one, so evalctl waits for two safety runs, not
# one per red-team attempt (a red-team version raised 18 and outwaited evalctl's 300 s).
TWO_TASKS = """
name: two-tasks
version: "1"
limits: {messages: 20}
tasks:
  - name: first-tools
    task: eval_pipelines/agentic_smoke
    sandbox: &box {memory_mb: 256, pids: 64, disk_mb: 16, timeout_seconds: 20, cpu_seconds: 5}
  - name: second-tools
    task: eval_pipelines/agentic_smoke
    limit: 2
    epochs: 4
    sandbox: *box
safety:
  rules:
    - id: python-tool
      description: Any python call (a stand-in for a rule that fires mid-run).
      severity: critical
      watch: tool_call
      match: {tools: [python]}
      action: stop_evaluation
      quarantine: true
"""
TWO_TASK_NAMES = ("first-tools", "second-tools")
STOP_RULE = "python-tool"


@pytest.fixture
def reference_ledger(dagster_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The reference agent at 3 s per model call, as a remote API, each call logged; the
    two op processes start their work together."""
    yield from _ledger(
        tmp_path,
        monkeypatch,
        model="reference-ledger",
        policy="reference",
        latency=3.0,
        rendezvous=len(TWO_TASK_NAMES),
    )


def finished_runs(instance: DagsterInstance, incident_id: str) -> dict[str, DagsterRunStatus]:
    runs = instance.get_runs(RunsFilter(tags={INCIDENT_TAG: incident_id}))
    return {r.job_name: r.status for r in runs if r.is_finished}


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_evalctl_run_stopped_mid_way_in_two_op_processes_leaves_nothing_and_waits_for_alerts(
    receiver,  # noqa: F811 (the fixture imported above)
    reference_ledger,
    dagster_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    calls, sandboxes = reference_ledger
    write_suite(tmp_path / "suites", "two-tasks", TWO_TASKS)
    monkeypatch.setenv("EVAL_SUITE_PATH", str(tmp_path / "suites"))
    DagsterInstance.get().dispose()  # the schema, before evalctl and its daemon open it
    run = start_evalctl(
        "run", "--model", "reference-ledger", "--suite", "two-tasks",
        "--executor", "multiprocess", "--max-samples", "1",
        tmp_path=tmp_path, name="evalctl",
    )  # fmt: skip
    code = run.wait(timeout=1200)
    output = (tmp_path / "evalctl.log").read_text()
    assert code == 1, output[-3000:]
    assert "safety-stopped" in output and f"safety: {STOP_RULE}:" in output, output[-3000:]

    with DagsterInstance.get() as instance:
        [evaluation] = instance.get_runs(RunsFilter(job_name="evaluate"))
        assert evaluation.tags[SAFETY_STOPPED_TAG] == "true"
        assert evaluation.status in (DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE)
        artifacts = LocalArtifactStore(root=str(dagster_home / "artifacts"))
        found = sorted(
            (i for i in incidents(instance, artifacts) if i.run_id == evaluation.run_id),
            key=lambda i: i.detected_at,
        )
        # Honest work raised nothing: one incident, first-tools' python call.
        [stop] = found
        assert (stop.rule_id, stop.task, stop.sample_id) == (
            STOP_RULE,
            "first-tools",
            "sum-of-squares",
        )
        assert stop.action == "stop_evaluation" and stop.killed_at, stop

        # evalctl returned only once the incident was alerted and quarantined: those runs
        # had already succeeded when it exited (nothing is awaited here).
        done = finished_runs(instance, stop.id)
        assert done.get(SAFETY_ALERT_JOB) == DagsterRunStatus.SUCCESS, done
        assert done.get(QUARANTINE_JOB) == DagsterRunStatus.SUCCESS, done
        assert all(receiver.got(channel, stop.id) for channel in CHANNELS)

        # Both op processes were mid-task when the stop landed: each task's audit trail
        # (stored with its partial log) has tool calls before it, and none after it
        # (second-tools' process stopped on the run's cancel alone).
        for name in TWO_TASK_NAMES:
            tag = evaluation.tags.get(TASK_TAG_PREFIX + task_key(name))
            assert tag, f"{name}: no checkpoint, the task never ran"
            checkpoint = TaskCheckpoint.model_validate_json(tag)
            assert checkpoint.status == "partial" and checkpoint.audit_uri, (name, tag)
            audit = artifacts.get(checkpoint.audit_uri).decode().splitlines()
            tool_calls = [e["at"] for e in map(json.loads, audit) if e["entry"] == "tool_call"]
            assert [t for t in tool_calls if t < stop.detected_at], f"{name}: not started"
            late = [t - stop.killed_at for t in tool_calls if t > stop.killed_at + QUIET_AFTER_S]
            assert not late, f"{name}: tool calls {late} s after the stop"

    # Nothing outlives the stop: no sandbox process, no model call after it.
    wait_for(lambda: not sandbox_processes(str(sandboxes)), 30, "sandbox processes to end")
    made = model_calls(calls)
    assert len([t for t in made if t < stop.detected_at]) >= 4, made
    late = [t - stop.killed_at for t in made if t > stop.killed_at + QUIET_AFTER_S]
    assert not late, f"model calls {late} s after the stop"
