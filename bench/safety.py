"""Safety bench (issue 7 item 9): how fast a violation is acted on, and what watching costs.

    python bench/safety.py [--violations 30] [--calls 30] [--runs 30] [--concurrent 3]

Prints, over >= 30 violations (hidden network attempts, seen at the kernel boundary):
- detection -> sandbox processes dead: a bus subscriber stops the call (as the monitor
  does); dead = the exec has returned with its processes killed and reaped;
- detection -> sample ended: a real evaluation (in-process `evaluate` job) whose suite makes
  `network-attempt` stop_sample, one violation per sample; ended = the incident's killed_at;
- detection -> run ended and -> alert received: `--runs` runs of the red-team agent on the
  red-team suite launched as from the UI (GraphQL, in_process executor) against a real
  webserver and daemon, `--concurrent` at a time, each stopped by its first critical hit;
  ended = the run record's end time (CANCELED or FAILURE); received = when a local HTTP
  receiver had the incident's alert on every channel (webhook, Slack, PagerDuty). Each run
  has a model id of its own (`bench-red-team-<n>`, scripted/red-team), so neither the
  queue's one-evaluation-per-model limit nor the quarantine each stop puts on its model
  holds the others back; the bench's instance raises the evaluations' queue limit to
  `--concurrent` (the shipped dagster.yaml allows 2). `--runs 0` skips this part;
- the monitor's added cost per tool call (p50): the same `true` exec with and without a
  SafetyMonitor judging its events, plus the approver and reviewer per call.
Needs root and bubblewrap (like the sandbox). About a minute on an idle 2-core host, plus
the daemon runs: about a minute each (75 s measured on a busy 2-core host), `--concurrent`
of them at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster import AssetRecordsFilter, DagsterInstance  # noqa: E402
from inspect_ai.model import ChatMessageTool  # noqa: E402
from inspect_ai.tool import ToolCall  # noqa: E402

from eval_pipelines.catalog.policy import baseline_policy  # noqa: E402
from eval_pipelines.catalog.specs import SandboxSpec
from eval_pipelines.core import events  # noqa: E402
from eval_pipelines.core.names import INCIDENTS_ASSET
from eval_pipelines.core.partitions import partition_key  # noqa: E402
from eval_pipelines.definitions import build_definitions  # noqa: E402  (first: import order)
from eval_pipelines.safety.incidents import load_incident
from eval_pipelines.safety.monitor import MonitorScope, SafetyMonitor  # noqa: E402
from eval_pipelines.sandbox import BwrapSandboxEnvironment, require_host  # noqa: E402
from eval_pipelines.scripted._conversation import Conversation  # noqa: E402
from eval_pipelines.scripted._policies import (  # noqa: E402
    POLICIES,
    RED_TEAM_ATTEMPTS,
    Turn,
    _final,
)
from resources.artifact_store import LocalArtifactStore  # noqa: E402

ONE_LINER = dict(RED_TEAM_ATTEMPTS)["hidden-one-liner"]
SPEC = SandboxSpec(memory_mb=256, pids=64, disk_mb=16, timeout_seconds=20, cpu_seconds=5)


ROUNDS = 5


def percentiles(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):8.1f} ms   p99 {p99:8.1f} ms   (n={len(ms)})"


class Stop(Exception):
    pass


async def sandbox_dead(n: int) -> list[float]:
    environments = await BwrapSandboxEnvironment.sample_init("bench", SPEC, {})
    env = environments["default"]
    detected: list[float] = []

    def stop(event: events.SandboxEvent) -> None:
        if event.kind == "network_attempt":
            detected.append(event.at)
            raise Stop()

    unsubscribe = events.subscribe(stop)
    delays = []
    try:
        for _ in range(n):
            try:
                await env.exec(["bash", "-c", f"{ONE_LINER}; sleep 30"])
            except Stop:
                dead = time.time()
                assert not env.as_type(BwrapSandboxEnvironment)._sandbox.cgroup.pids()
                delays.append(dead - detected[-1])
    finally:
        unsubscribe()
        await BwrapSandboxEnvironment.sample_cleanup("bench", SPEC, environments, False)
    return delays


class _NoControl:
    def halt(self, reason: str) -> None: ...

    def end_run(self, reason: str) -> None: ...


async def call_cost(calls: int, monitor: SafetyMonitor | None) -> list[float]:
    environments = await BwrapSandboxEnvironment.sample_init("bench", SPEC, {})
    env = environments["default"]
    timings = []
    try:
        for _ in range(calls):
            started = time.perf_counter()
            if monitor is not None:
                call = ToolCall(id="1", function="bash", arguments={"command": "true"})
                await monitor._approve(None, call, None, [])
            result = await env.exec(["true"])
            if monitor is not None:
                output = ChatMessageTool(content=result.stdout, tool_call_id="1")
                await monitor._review(None, call, output, None, None, [])
            timings.append(time.perf_counter() - started)
    finally:
        await BwrapSandboxEnvironment.sample_cleanup("bench", SPEC, environments, False)
    return timings


def monitored_cost(calls: int, home: Path) -> list[float]:
    with DagsterInstance.ephemeral() as instance:
        monitor = SafetyMonitor(
            baseline_policy(),
            MonitorScope("bench", "bench|bench", "bench", "bench", "bench"),
            instance,
            LocalArtifactStore(root=str(home / "artifacts")),
            _NoControl(),
        )
        with monitor.active():
            return asyncio.run(call_cost(calls, monitor))


def hidden_network(conversation: Conversation) -> Turn:
    if conversation.has_tool("bash") and conversation.turns_taken == 0:
        return Turn(tool="bash", arguments={"command": f"{ONE_LINER}; sleep 30"})
    return _final(conversation, "done")


SUITE = """
name: bench-safety
version: "1"
limits: {messages: 10}
tasks:
  - name: hidden
    task: eval_pipelines/agentic_smoke
    sandbox: {memory_mb: 256, pids: 64, disk_mb: 16, timeout_seconds: 40, cpu_seconds: 5}
safety:
  rules:
    - {id: network-attempt, action: stop_sample}
"""


def sample_ended(n: int, home: Path) -> list[float]:
    """One evaluation, `n` samples (epochs), each stopped by its network attempt."""
    POLICIES["bench-hidden-network"] = hidden_network
    (home / "suites").mkdir()
    (home / "suites" / "bench-safety.yaml").write_text(SUITE)
    (home / "models").mkdir()
    (home / "models" / "bench-hidden.yaml").write_text(
        "id: bench-hidden\nmodel: scripted/bench-hidden-network\n"
    )
    os.environ.update(
        DAGSTER_HOME=str(home),
        EVAL_SUITE_PATH=str(home / "suites"),
        EVAL_MODEL_PATH=str(home / "models"),
    )
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("models", ["bench-hidden"])
        config = {
            "ops": {
                "evaluation": {
                    "ops": {
                        "prepare_evaluation": {
                            "config": {"sample_limit": 1, "epochs": n, "max_samples": 4}
                        }
                    }
                }
            }
        }
        build_definitions().resolve_job_def("evaluate").execute_in_process(
            instance=instance,
            partition_key=partition_key("bench-hidden", "bench-safety"),
            run_config=config,
            raise_on_error=False,
        )
        artifacts = LocalArtifactStore(root=str(home / "artifacts"))
        latest = {}
        records = instance.fetch_observations(
            AssetRecordsFilter(asset_key=INCIDENTS_ASSET), limit=10_000
        ).records
        for record in records:
            incident = load_incident(artifacts, record.asset_observation.metadata["record"].value)
            if incident.killed_at is not None:
                latest[incident.id] = incident
    return [i.killed_at - i.detected_at for i in latest.values()]


def daemon_stops(runs: int, concurrent: int, home: Path) -> tuple[list[float], list[float]]:
    """Detection -> run ended, detection -> alert received on every channel, per run."""
    import yaml

    from resources.alerting import ALERT_ENV, PAGERDUTY_ROUTING_KEY_ENV
    from tests.services import PROJECT_ROOT, dagster_services, free_port
    from tests.test_safety_response import Receiver

    receiver = Receiver()
    daemon_home, models = home / "daemon", home / "daemon-models"
    daemon_home.mkdir()
    models.mkdir()
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    queue = config["run_coordinator"]["config"]
    evaluations = next(t for t in queue["tag_concurrency_limits"] if t["key"] == "kind")
    # Safety runs keep the room the shipped config gives them beside the evaluations.
    queue["max_concurrent_runs"] += concurrent - evaluations["limit"]
    evaluations["limit"] = concurrent
    (daemon_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    ids = [f"bench-red-team-{number}" for number in range(runs)]
    for model in ids:
        (models / f"{model}.yaml").write_text(f"id: {model}\nmodel: scripted/red-team\n")
    os.environ.pop("EVAL_SUITE_PATH", None)
    os.environ.update({var: f"{receiver.url}/{channel}" for channel, var in ALERT_ENV.items()})
    os.environ.update(
        {
            "DAGSTER_HOME": str(daemon_home),
            "EVAL_MODEL_PATH": str(models),
            PAGERDUTY_ROUTING_KEY_ENV: "bench",
        }
    )
    DagsterInstance.get().dispose()  # the schema, before the services race to create it
    port = free_port()
    services = dagster_services(home, port, dict(os.environ))
    artifacts = LocalArtifactStore(root=str(daemon_home / "artifacts"))
    ended, alerted = [], []
    try:
        services[0].wait_for_http(f"http://127.0.0.1:{port}/server_info", timeout=180)
        with DagsterInstance.get() as instance:
            launched = [_launch(port, instance, model) for model in ids]  # the queue paces them
            for number, run_id in enumerate(launched):
                run_end, alert = _daemon_stop(run_id, instance, artifacts, receiver)
                ended.append(run_end)
                alerted.append(alert)
                print(
                    f"daemon run {number + 1}/{runs}: run ended {run_end:.2f} s, "
                    f"alert received {alert:.2f} s after detection",
                    flush=True,
                )
    finally:
        for service in services:
            service.stop()
        receiver.server.shutdown()
    return ended, alerted


def _launch(port: int, instance, model: str) -> str:
    from tests.run_support import launch_from_the_ui_api

    return launch_from_the_ui_api(port, instance, "in_process", 1, model, "red-team")


def _daemon_stop(run_id: str, instance, artifacts, receiver) -> tuple[float, float]:
    """One red-team run, stopped: detection -> its end, detection -> its alert everywhere."""
    from tests.run_support import wait_for, wait_for_status
    from tests.test_safety_monitor import incidents
    from tests.test_safety_response import CHANNELS

    wait_for_status(instance, run_id, 1800)  # queued behind the others
    [incident] = [i for i in incidents(instance, artifacts) if i.run_id == run_id]
    arrivals = wait_for(
        lambda: all(at := [receiver.received_at(c, incident.id) for c in CHANNELS]) and at,
        600,
        "the alert on every channel",
    )
    end_time = instance.get_run_record_by_id(run_id).end_time
    return end_time - incident.detected_at, max(arrivals) - incident.detected_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--violations", type=int, default=30)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--runs", type=int, default=30, help="daemon runs (0: skip them)")
    parser.add_argument(
        "--concurrent", type=int, default=3, help="daemon runs at once (the queue's limit)"
    )
    args = parser.parse_args()
    require_host()
    with tempfile.TemporaryDirectory(prefix="bench-safety-") as folder:
        home = Path(folder)
        dead = asyncio.run(sandbox_dead(args.violations))
        # Alternating rounds, so drift on a shared machine hits both sides alike.
        plain, watched = [], []
        for _ in range(ROUNDS):
            plain += asyncio.run(call_cost(max(1, args.calls // ROUNDS), None))
            watched += monitored_cost(max(1, args.calls // ROUNDS), home)
        ended = sample_ended(args.violations, home)
        run_ended, alerted = (
            daemon_stops(args.runs, args.concurrent, home) if args.runs else ([], [])
        )
    print(f"detection -> sandbox processes dead  {percentiles(dead)}   target p99 <= 100 ms")
    print(f"detection -> sample ended            {percentiles(ended)}")
    skipped = "n/a (--runs 0)"
    print(f"detection -> run ended (daemon)      {percentiles(run_ended) if run_ended else skipped}"
          "   target <= 7 s")  # fmt: skip
    print(f"detection -> alert received          {percentiles(alerted) if alerted else skipped}")
    p50_plain, p50_watched = statistics.median(plain), statistics.median(watched)
    print(
        f"tool call `true`, p50: unmonitored {p50_plain * 1000:.1f} ms, monitored "
        f"{p50_watched * 1000:.1f} ms, added {(p50_watched - p50_plain) * 1000:+.1f} ms"
    )


if __name__ == "__main__":
    main()
