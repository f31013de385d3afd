"""Issue 7 items 5-6: incidents become alerts, quarantines and stops, through real sensors.

Real instance, real daemon (the `services` fixture) and a real HTTP receiver on 127.0.0.1
standing in for the webhook, Slack and PagerDuty endpoints.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_sensor_context,
)

from eval_pipelines.catalog import Catalog
from eval_pipelines.cli import main as evalctl
from eval_pipelines.core.names import ALERT_TAG, INCIDENT_TAG
from eval_pipelines.evaluation.inspect_work import validate_evaluation
from eval_pipelines.results.records import published_result
from eval_pipelines.safety.incidents import Incident, record_incident
from eval_pipelines.safety.quarantine import ModelQuarantined, all_states
from resources.alerting import ALERT_ENV, PAGERDUTY_ROUTING_KEY_ENV
from resources.artifact_store import LocalArtifactStore
from resources.sandbox import SandboxBackend
from sensors.safety import RETRY_ENV, SAFETY_STOPPED_TAG, SafetyCursor
from tests.run_support import wait_for
from tests.services import BIN, PROJECT_ROOT, Service
from tests.test_evaluation_job import run_evaluation

CHANNELS = ("webhook", "slack", "pagerduty")


class Receiver:
    """A real HTTP endpoint per channel; `failing` channels answer 503."""

    def __init__(self):
        self.posts: list[tuple[str, dict, float]] = []  # channel, body, when received
        self.failing: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                channel = self.path.strip("/")
                if channel in receiver.failing:
                    self.send_response(503)
                else:
                    receiver.posts.append((channel, body, time.time()))
                    self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _received(self, channel: str, alert_id: str) -> list[tuple[dict, float]]:
        def ident(body: dict) -> str:
            if channel == "pagerduty":
                return body["dedup_key"]
            if channel == "slack":
                return json.dumps(body["blocks"])
            return body["id"]

        return [(b, at) for c, b, at in self.posts if c == channel and alert_id in ident(b)]

    def got(self, channel: str, alert_id: str) -> list[dict]:
        return [body for body, _ in self._received(channel, alert_id)]

    def received_at(self, channel: str, alert_id: str) -> float | None:
        """When the channel first received the alert (bench/safety.py times alerts by it)."""
        return min((at for _, at in self._received(channel, alert_id)), default=None)


@pytest.fixture
def receiver(dagster_home: Path, monkeypatch: pytest.MonkeyPatch):
    """Every channel pointed at the receiver; set before the daemon starts (it reads env)."""
    server = Receiver()
    for channel, variable in ALERT_ENV.items():
        monkeypatch.setenv(variable, f"{server.url}/{channel}")
    monkeypatch.setenv(PAGERDUTY_ROUTING_KEY_ENV, "test-routing-key")
    monkeypatch.setenv(RETRY_ENV, "1")
    yield server
    server.server.shutdown()


def artifacts(home: Path) -> LocalArtifactStore:
    return LocalArtifactStore(root=str(home / "artifacts"))


def incident_for(run_id: str, model: str = "reference", suite: str = "smoke", **fields) -> Incident:
    values = dict(
        rule_id="net-egress", severity="critical", action="stop_evaluation", run_id=run_id,
        partition=f"{model}|{suite}", model_id=model, suite=suite,
        summary="connection attempt to 203.0.113.9:443", evidence={"port": 443},
    )  # fmt: skip
    return Incident(**{**values, **fields})


def fake_run(instance: DagsterInstance, status: DagsterRunStatus, tags: dict | None = None) -> str:
    """A run record of the evaluate job in a given state (no worker behind it)."""
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="evaluate", run_id=run_id, status=status, tags=tags or {}))
    return run_id


def tick(defs, instance: DagsterInstance, cursor: str | None):
    """One tick's result as the sensor returns it (the daemon resolves its partitions)."""
    sensor = defs.resolve_sensor_def("safety_incident_sensor")
    return sensor(build_sensor_context(instance=instance, definitions=defs, cursor=cursor))


def keys_of(result, *jobs: str) -> list[str]:
    return sorted(r.run_key for r in result.run_requests if r.job_name in jobs)


# --- The sensor, tick by tick --------------------------------------------------------


def test_each_incident_is_requested_once_and_its_evaluation_stopped(defs, instance, dagster_home):
    running = fake_run(instance, DagsterRunStatus.STARTED)
    first = incident_for(running, quarantine=True)
    record_incident(instance, artifacts(dagster_home), first)

    result = tick(defs, instance, None)
    keys = keys_of(result, "safety_alert", "quarantine")
    assert keys == [f"{first.id}:quarantine", f"{first.id}:safety_alert"]
    # ... and one refresh of the partition's incidents table per tick's announcements.
    [refresh] = [r for r in result.run_requests if r.job_name == "record_incidents"]
    assert refresh.run_key.startswith(f"{first.partition}:record_incidents:")
    assert str(refresh.partition_key) == first.partition
    run = instance.get_run_by_id(running)
    assert run.tags[SAFETY_STOPPED_TAG] == "true"
    assert run.tags["eval/stop-reason"] == f"safety: net-egress: {first.summary}"
    assert run.status in (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED)

    # The next tick (cursor stored) asks for nothing more.
    again = tick(defs, instance, result.cursor)
    assert not again.run_requests
    # A tick repeated after a daemon restart that lost the cursor asks for the same keys,
    # which the daemon skips (tested with the real daemon below).
    repeated = tick(defs, instance, None)
    assert keys_of(repeated, "safety_alert", "quarantine") == keys

    # Many incidents in one tick: an alert each, one refresh of their partition's table.
    many = [incident_for(running, action="record", severity="warning") for _ in range(5)]
    for incident in many:
        record_incident(instance, artifacts(dagster_home), incident)
    later = tick(defs, instance, again.cursor)
    assert keys_of(later, "safety_alert", "quarantine") == sorted(
        f"{i.id}:safety_alert" for i in many
    )
    assert len([r for r in later.run_requests if r.job_name == "record_incidents"]) == 1
    assert SafetyCursor.parse(later.cursor).incidents > SafetyCursor.parse(again.cursor).incidents


def _ended_run(instance, job_name: str, tags: dict, started: bool, **run) -> str:
    """A run of `job_name` the daemon marked failed: before it started, or after."""
    run_id = str(uuid.uuid4())
    instance.add_run(
        DagsterRun(
            job_name=job_name, run_id=run_id, status=DagsterRunStatus.FAILURE, tags=tags, **run
        )
    )
    if started:
        event = DagsterEvent(DagsterEventType.RUN_START.value, job_name=job_name)
        instance.report_dagster_event(event, run_id)
    return run_id


def test_an_alert_run_that_never_started_is_launched_again(
    defs, instance, dagster_home, monkeypatch: pytest.MonkeyPatch
):
    """The daemon could not dequeue the alert run (its code server timed out on a loaded
    host, seen in tests/test_safety_e2e.py) and marked it failed: no channel recorded
    anything, yet the alert is launched again, not lost."""
    monkeypatch.setenv(RETRY_ENV, "0")
    incident = incident_for(fake_run(instance, DagsterRunStatus.SUCCESS), action="record")
    record_incident(instance, artifacts(dagster_home), incident)
    first = tick(defs, instance, None)
    [request] = [r for r in first.run_requests if r.job_name == "safety_alert"]

    _ended_run(instance, "safety_alert", request.tags, False, run_config=request.run_config)
    # A run that started and failed on its own (no channel configured) said why: not retried.
    other = {ALERT_TAG: "other-alert", INCIDENT_TAG: "other-alert"}
    _ended_run(instance, "safety_alert", other, True, run_config=request.run_config)
    retry = tick(defs, instance, first.cursor)
    assert keys_of(retry, "safety_alert") == [f"{incident.id}:safety_alert:retry-1"]
    [again] = retry.run_requests
    assert again.run_config == request.run_config and again.tags == request.tags


def test_an_incidents_refresh_that_never_started_is_requested_again(defs, instance, dagster_home):
    """Its announcements would otherwise wait for the partition's next incident: the table
    (and the leaderboard's open-incident marks) would miss them until then."""
    incident = incident_for(fake_run(instance, DagsterRunStatus.SUCCESS), action="record")
    record_incident(instance, artifacts(dagster_home), incident)
    first = tick(defs, instance, None)
    [request] = [r for r in first.run_requests if r.job_name == "record_incidents"]
    tags = {"dagster/partition": incident.partition, "dagster/run_key": request.run_key}
    lost = _ended_run(instance, "record_incidents", tags, False)
    _ended_run(instance, "record_incidents", tags, True)  # ran and failed: said why

    retry = tick(defs, instance, first.cursor)
    [again] = retry.run_requests
    assert again.job_name == "record_incidents"
    assert again.run_key == f"{incident.partition}:record_incidents:retry-of-{lost}"
    assert again.partition_key == request.partition_key
    # Once: the next tick asks for nothing more.
    assert not tick(defs, instance, retry.cursor).run_requests


def test_alert_request_config_refuses_both_or_neither_source():
    from eval_pipelines.safety.jobs import AlertRequest

    with pytest.raises(ValueError, match="exactly one"):
        AlertRequest()
    with pytest.raises(ValueError, match="exactly one"):
        AlertRequest(incident_record="file:///x", failed_run_id="r")


# --- With the real daemon ------------------------------------------------------------


def safety_runs(
    instance: DagsterInstance, job: str, incident: str | None = None
) -> list[DagsterRun]:
    """The runs of `job` (for `incident` only, if given)."""
    from dagster import RunsFilter

    tags = {INCIDENT_TAG: incident} if incident else {}
    return list(instance.get_runs(RunsFilter(job_name=job, tags=tags)))


def wait_for_run(
    instance: DagsterInstance,
    job: str,
    status: DagsterRunStatus,
    count: int = 1,
    incident: str | None = None,
):
    return wait_for(
        lambda: (
            len([r for r in safety_runs(instance, job, incident) if r.status == status]) >= count
        ),
        240,
        f"{count} {job} run(s) {status.value}",
        interval=0.5,
    )


# Both tests share one start of the daemon (`module_services`, tests/conftest.py) and one
# receiver, set in its environment; each follows the alerts of its own incidents.


@pytest.fixture(scope="module")
def module_receiver():
    server = Receiver()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def module_services_env(module_receiver: Receiver):
    """Every channel pointed at the module's receiver (the daemon reads them at start)."""
    channels = {var: f"{module_receiver.url}/{channel}" for channel, var in ALERT_ENV.items()}
    yield {**channels, PAGERDUTY_ROUTING_KEY_ENV: "test-routing-key", RETRY_ENV: "1"}


@pytest.fixture
def shared_receiver(module_receiver: Receiver, module_services: dict):
    """The module's receiver, every channel answering again after the test."""
    yield module_receiver
    module_receiver.failing = set()


def restart_daemon(services: dict, tmp_path: Path) -> None:
    daemon = services["services"][1]
    daemon.stop()
    again = Service(
        "daemon-restarted",
        [str(BIN / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        tmp_path,
        dict(os.environ),
    )
    services["services"][1] = again


@pytest.mark.timeout(900)
def test_alerts_undelivered_then_delivered_once_per_channel_across_a_daemon_restart(
    shared_receiver: Receiver, module_services: dict, tmp_path: Path
):
    """Slack is down: its alert is recorded undelivered, the run fails, the sensor relaunches
    it when due; once Slack is back each channel holds the alert exactly once, and neither a
    daemon restart nor more ticks send anything again."""
    receiver, services = shared_receiver, module_services
    home = services["home"]
    receiver.failing = {"slack"}
    with DagsterInstance.get() as instance:
        incident = incident_for(fake_run(instance, DagsterRunStatus.SUCCESS), action="record")
        record_incident(instance, artifacts(home), incident)

        wait_for_run(instance, "safety_alert", DagsterRunStatus.FAILURE, incident=incident.id)
        assert len(receiver.got("webhook", incident.id)) == 1
        assert len(receiver.got("pagerduty", incident.id)) == 1
        assert receiver.got("slack", incident.id) == []

        receiver.failing = set()
        wait_for(lambda: receiver.got("slack", incident.id), 240, "slack to get the alert")
        wait_for_run(instance, "safety_alert", DagsterRunStatus.SUCCESS, incident=incident.id)

        restart_daemon(services, tmp_path)
        second = incident_for(incident.run_id, action="record", severity="warning")
        record_incident(instance, artifacts(home), second)
        wait_for(lambda: all(receiver.got(c, second.id) for c in CHANNELS), 240, "the second alert")
        # Several more ticks of the restarted daemon: nothing is sent twice.
        time.sleep(15)
        for alert in (incident, second):
            for channel in CHANNELS:
                assert len(receiver.got(channel, alert.id)) == 1, (channel, alert.id)
        pagerduty = receiver.got("pagerduty", incident.id)[0]
        assert pagerduty["routing_key"] == "test-routing-key"
        assert pagerduty["event_action"] == "trigger"
        assert pagerduty["payload"]["severity"] == "critical"
        assert pagerduty["payload"]["summary"].endswith(incident.summary)
        slack = receiver.got("slack", incident.id)[0]
        assert slack["blocks"][0]["type"] == "header"
        webhook = receiver.got("webhook", incident.id)[0]
        assert webhook["details"]["evidence"] == {"port": 443}
        assert webhook["links"]["record"].startswith("file://")


@pytest.mark.timeout(600)
def test_an_alert_run_starts_at_once_while_evaluations_fill_their_slots(
    shared_receiver: Receiver, module_services: dict
):
    """Two evaluations running, the most the queue allows them: the alert run for a new
    incident does not queue behind them (dagster.yaml's run coordinator)."""
    receiver, services = shared_receiver, module_services
    with DagsterInstance.get() as instance:
        running = [
            fake_run(
                instance,
                DagsterRunStatus.STARTED,
                {"kind": "evaluation", "dagster/partition/model": model},
            )  # fmt: skip
            for model in ("m1", "m2")
        ]
        incident = incident_for(running[0], action="record", severity="warning")
        record_incident(instance, artifacts(services["home"]), incident)
        wait_for(lambda: all(receiver.got(c, incident.id) for c in CHANNELS), 240, "the alert")
        # Evaluations keep their own limit of two: the room is for safety runs only.
        limits = instance.run_coordinator.get_run_queue_config().tag_concurrency_limits
        assert {"key": "kind", "value": "evaluation", "limit": 2} in limits
        assert all(instance.get_run_by_id(r).status == DagsterRunStatus.STARTED for r in running)


# --- Quarantine ----------------------------------------------------------------------


def run_requested(defs, instance: DagsterInstance, request):
    """Execute a sensor's run request in this process, as the daemon would launch it."""
    job = defs.resolve_job_def(request.job_name)
    return job.execute_in_process(
        instance=instance, run_config=request.run_config, tags=request.tags, raise_on_error=False
    )


def test_quarantine_refuses_the_model_hides_its_results_and_lift_is_recorded(
    defs, instance, dagster_home, capsys
):
    evaluation = run_evaluation(defs, instance, "reference", "smoke")
    assert evaluation.success
    published_result(instance, "reference|smoke")  # on the leaderboard before
    incident = incident_for(evaluation.run_id, action="record", quarantine=True)
    record_incident(instance, artifacts(dagster_home), incident)
    [request] = [r for r in tick(defs, instance, None).run_requests if r.job_name == "quarantine"]
    assert run_requested(defs, instance, request).success

    sandbox = SandboxBackend(backend="bwrap")
    with pytest.raises(ModelQuarantined) as refused:
        validate_evaluation(Catalog.default(), "reference", "smoke", sandbox, instance)
    assert incident.id in str(refused.value)
    assert "evalctl quarantine lift reference" in str(refused.value)
    assert evalctl(["run", "--model", "reference", "--suite", "smoke"]) == 2
    assert incident.id in capsys.readouterr().err
    # Another model is not affected.
    validate_evaluation(Catalog.default(), "weak", "smoke", sandbox, instance)

    # The run's logs and snapshots, copied write-once under quarantine/.
    copies = sorted((dagster_home / "artifacts" / "quarantine").rglob("*"))
    names = {
        p.relative_to(dagster_home / "artifacts" / "quarantine").parts[3]
        for p in copies
        if p.is_file()
    }
    assert {"eval-logs", "results", "manifest"} <= names
    assert instance.get_run_by_id(evaluation.run_id).tags["eval/quarantined"] == incident.id
    with pytest.raises(LookupError):  # the only published run is quarantined
        published_result(instance, "reference|smoke")

    assert evalctl(["quarantine", "lift", "weak", "--reason", "x"]) == 2
    assert evalctl(["quarantine", "lift", "reference", "--reason", "rule fixed, reviewed"]) == 0
    validate_evaluation(Catalog.default(), "reference", "smoke", sandbox, instance)
    [state] = all_states(instance)
    assert (state.quarantined, state.reason) == (False, "rule fixed, reviewed")
    assert state.by and state.at > incident.detected_at
    capsys.readouterr()
    assert evalctl(["quarantine", "list"]) == 0
    listing = capsys.readouterr().out
    assert "reference" in listing and "lifted" in listing and "rule fixed" in listing


# --- Operator stops and failures -----------------------------------------------------


def test_an_operator_stop_becomes_an_incident_that_alerts(defs, instance, dagster_home):
    from dagster import DagsterEventType, build_run_status_sensor_context

    def canceled(tags: dict) -> DagsterRun:
        run_id = fake_run(instance, DagsterRunStatus.STARTED, tags)
        instance.report_run_canceled(instance.get_run_by_id(run_id))
        return instance.get_run_by_id(run_id)

    def stop_sensor(run: DagsterRun):
        [event] = [
            e.dagster_event
            for e in instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_CANCELED)
        ]
        context = build_run_status_sensor_context(
            sensor_name="operator_stop_sensor", dagster_event=event,
            dagster_instance=instance, dagster_run=run,
        )  # fmt: skip
        sensor = defs.resolve_sensor_def("operator_stop_sensor")
        return sensor(context, artifacts=artifacts(dagster_home))

    partition = {"dagster/partition": "weak|smoke"}
    by_cli = canceled({**partition, "eval/stop-reason": "wrong suite (by alice)"})
    from_ui = canceled(partition)
    safety = canceled({**partition, SAFETY_STOPPED_TAG: "true"})
    for run in (by_cli, from_ui, safety):
        stop_sensor(run)
    stop_sensor(by_cli)  # a repeated tick records the same incident id

    assert keys_of(tick(defs, instance, None), "safety_alert") == sorted(
        f"operator-stop-{run.run_id}:safety_alert" for run in (by_cli, from_ui)
    )
    summaries = [
        r.asset_observation.metadata["summary"].value
        for r in instance.fetch_observations(AssetKey("incidents"), limit=10).records
    ]
    assert any("wrong suite (by alice)" in s for s in summaries)
    assert any("terminated from the Dagster UI" in s for s in summaries)


def test_a_failed_evaluation_alerts_unless_it_was_safety_stopped(defs, instance):
    from dagster import DagsterEventType, build_run_status_sensor_context

    def failure_sensor(tags: dict):
        run_id = fake_run(instance, DagsterRunStatus.STARTED, tags)
        instance.report_run_failed(instance.get_run_by_id(run_id), message="task smoke failed")
        run = instance.get_run_by_id(run_id)
        [event] = [
            e.dagster_event for e in instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
        ]
        context = build_run_status_sensor_context(
            sensor_name="evaluation_failure_sensor", dagster_event=event,
            dagster_instance=instance, dagster_run=run,
        ).for_run_failure()  # fmt: skip
        return run_id, defs.resolve_sensor_def("evaluation_failure_sensor")(context)

    run_id, request = failure_sensor({"dagster/partition": "weak|smoke"})
    assert request.run_key == f"run-failure-{run_id}:safety_alert"
    config = request.run_config["ops"]["deliver_alert"]["config"]
    assert config["failed_run_id"] == run_id and "task smoke failed" in config["failure_reason"]
    _, skipped = failure_sensor({SAFETY_STOPPED_TAG: "true"})
    assert "safety-stopped" in skipped.skip_message
