"""Issue 7's "Done when", end to end: the red-team agent launched as from the UI, with the
real daemon and sensors, a real sandbox and one real HTTP receiver for every alert channel.

One test (it is slow): the run is safety-stopped, its incidents carry evidence, each channel
gets each alert once, the logs are quarantined and the model refused until lifted, and
nothing (no model call, no sandbox process) outlives the stop.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from eval_pipelines.catalog import Catalog
from eval_pipelines.cli import main as evalctl
from eval_pipelines.ops import validate_evaluation
from resources.artifact_store import LocalArtifactStore
from resources.sandbox import SandboxBackend
from sensors.safety import SAFETY_STOPPED_TAG
from tests.run_support import (
    graphql,
    launch_from_the_ui_api,
    model_calls,
    wait_for,
    wait_for_status,
    write_ledger_model,
)
from tests.sandbox_support import private_tmpdir, require_sandbox_host, sandbox_processes
from tests.test_safety_monitor import incidents
from tests.test_safety_response import CHANNELS, receiver, wait_for_run  # noqa: F401 (fixture)

MODEL, SUITE = "red-team-ledger", "red-team"
# A stop must end all model and tool calls within this (as tests/test_run_faults.py).
QUIET_AFTER_S = 5.0

RUN_TAGS = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { status tags { key value } } }
}
"""


@pytest.fixture
def red_team_ledger(dagster_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The red-team agent logging each model call, in a model folder the daemon's runs see,
    its sandboxes in a TMPDIR of this test's own. Set before the services start."""
    require_sandbox_host()
    calls = tmp_path / "model-calls.log"
    write_ledger_model(tmp_path / "models", calls, model=MODEL, policy="red-team")
    monkeypatch.setenv("EVAL_MODEL_PATH", str(tmp_path / "models"))
    with private_tmpdir(monkeypatch) as sandboxes:
        yield calls, sandboxes


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
