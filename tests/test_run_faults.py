"""Faults a real operator meets, each asserting the run's final state, that nothing is left
working, that nothing is published for the run, and that a re-run resumes without loss.

Model calls are counted with the scripted model's call log; tool calls by the sandbox
processes (each runs as a sandbox uid).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus

from eval_pipelines.core.names import TASK_TAG_PREFIX, WORKER_TAG
from eval_pipelines.core.processes import ProcessIdentity
from tests.run_support import (
    MODEL,
    SUITE,
    TERMINATE,
    graphql,
    launch_from_the_ui_api,
    model_calls,
    wait_for,
    wait_for_status,
    write_ledger_model,
)
from tests.sandbox_support import private_tmpdir, require_sandbox_host, sandbox_processes
from tests.services import BIN, PROJECT_ROOT, fill_disk, tail

TASK_KEY = "agentic_tools"
PARTITION = f"{MODEL}|{SUITE}"
# `evalctl run --local` runs: 3 samples x 12 epochs, some 15 s of model calls (10 at a
# time, 1 s each): long enough to stop mid-way, and the re-run resumes what is left.
EPOCHS = 12
SAMPLES = 3 * EPOCHS
# Daemon-launched runs are only stopped, never resumed: twice the work leaves room for a
# Terminate through the webserver on a loaded machine.
UI_EPOCHS = 24
# A stop or a death must end all model and tool calls within this (the bench measures it).
QUIET_AFTER_S = 5.0
# Beside the `services` group, one test at a time (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("run-faults")


@pytest.fixture
def ledger(dagster_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A scripted model whose every call is logged, in a model folder the run sees; the
    run's sandboxes live in a TMPDIR of this test's own, so only they are watched."""
    require_sandbox_host()
    calls = tmp_path / "model-calls.log"
    # A second per call, as a remote API takes: the run lasts long enough to be stopped
    # mid-way on an idle machine too (the scripted model alone finishes 72 samples in ~10 s).
    write_ledger_model(tmp_path / "models", calls, latency=1.0)
    # The schema exists before the test and its evalctl processes open it side by side.
    DagsterInstance.get().dispose()
    monkeypatch.setenv("EVAL_MODEL_PATH", str(tmp_path / "models"))
    with private_tmpdir(monkeypatch):
        yield calls


def our_sandboxes() -> list[str]:
    return sandbox_processes(os.environ["TMPDIR"])


def evalctl(*args: str, tmp_path: Path, name: str) -> subprocess.Popen:
    out = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [str(BIN / "evalctl"), *args],
        cwd=PROJECT_ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def latest_run(instance: DagsterInstance):
    runs = instance.get_runs(limit=1)
    return runs[0] if runs else None


def run_locally(tmp_path: Path, *extra: str, name: str = "first") -> subprocess.Popen:
    """`evalctl run --local` of the ledger model on the agentic suite: evalctl is the worker."""
    return evalctl(
        "run", "--local", "--model", MODEL, "--suite", SUITE, "--epochs", str(EPOCHS), *extra,
        tmp_path=tmp_path, name=name,
    )  # fmt: skip


def kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_evaluating(
    instance: DagsterInstance, ledger: Path, calls: int = 40, run_id: str | None = None
):
    """The run (default: the newest) is evaluating: `calls` model calls made (some 15
    samples, so Inspect has flushed finished samples to its log: it writes every 10)."""
    wait_for(lambda: len(model_calls(ledger)) >= calls, 480, f"{calls} model calls")
    run = latest_run(instance) if run_id is None else instance.get_run_by_id(run_id)
    assert run is not None and run.status == DagsterRunStatus.STARTED, run
    return run


def assert_quiet_after(ledger: Path, moment: float) -> None:
    """No model call and no sandbox process after `moment` + QUIET_AFTER_S."""
    wait_for(lambda: not our_sandboxes(), QUIET_AFTER_S + 10, "sandbox processes to end")
    time.sleep(2)  # anything still working would call the model again by now
    late = [t - moment for t in model_calls(ledger) if t > moment + QUIET_AFTER_S]
    assert not late, f"{len(late)} model call(s) more than {QUIET_AFTER_S}s after the stop"
    assert not our_sandboxes()


def stop_requested_at(instance: DagsterInstance, run_id: str) -> float:
    """When the run was first marked canceling (or canceled): the stop's moment of record."""
    from dagster import DagsterEventType

    events = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.RUN_CANCELING, DagsterEventType.RUN_CANCELED}
    ).records
    assert events, f"run {run_id} was never marked canceling"
    return min(e.event_log_entry.timestamp for e in events)


def assert_nothing_published(instance: DagsterInstance, run_id: str) -> None:
    for asset in ("eval_logs", "sample_results", "task_scores"):
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[PARTITION]), limit=50
        ).records
        assert not [r for r in records if r.run_id == run_id], f"{asset} published by {run_id}"


def resume_and_check(tmp_path: Path, ledger: Path, instance: DagsterInstance, stopped_run: str):
    """A plain re-run finishes every sample once, making fewer model calls than a full run."""
    before = len(model_calls(ledger))
    rerun = run_locally(tmp_path, "--json", name="resume")
    assert rerun.wait(timeout=400) == 0, tail(tmp_path / "resume.log", 60)
    output = (tmp_path / "resume.log").read_text()
    result = json.loads(output[output.index("{\n") :])
    (score,) = result["task_scores"]["tasks"]
    assert score["n"] + score["errors"] == SAMPLES, score
    log = result["eval_logs"]["agentic-tools"]["uri"].removeprefix("file://")
    from inspect_ai.log import read_eval_log

    samples = read_eval_log(log).samples
    keys = [(s.id, s.epoch) for s in samples]
    assert len(keys) == SAMPLES and len(set(keys)) == SAMPLES, "samples lost or duplicated"
    run = instance.get_run_by_id(result["run_id"])
    assert run.status == DagsterRunStatus.SUCCESS
    # A full run makes as many model calls as the final log holds model events.
    full = sum(1 for s in samples for e in s.events if e.event == "model")
    made = len(model_calls(ledger)) - before
    assert made < full, f"the re-run made {made} model calls; a full run makes {full}"
    said = [line for line in output.splitlines() if f"resuming run {stopped_run}" in line]
    assert said, f"the re-run did not say it resumed {stopped_run}:\n{output[-3000:]}"
    reused = int(said[0].split(f"resuming run {stopped_run}: ")[1].split()[0])
    assert reused > 0 and made <= full - reused, (made, full, reused)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("executor", ["in_process", "multiprocess"])
def test_kill_9_of_evalctl_leaves_nothing_working_and_resumes(
    executor: str, ledger: Path, dagster_home: Path, tmp_path: Path
):
    first = run_locally(tmp_path, "--executor", executor)
    with DagsterInstance.get() as instance:
        run = wait_until_evaluating(instance, ledger)
        os.kill(first.pid, signal.SIGKILL)
        killed_at = time.time()
        first.wait(timeout=30)
        assert_quiet_after(ledger, killed_at)
        assert_nothing_published(instance, run.run_id)

        runs = subprocess.run(
            [str(BIN / "evalctl"), "runs"], capture_output=True, text=True, timeout=120
        )
        assert runs.returncode == 0, runs.stderr
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        resume_and_check(tmp_path, ledger, instance, run.run_id)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("executor", ["in_process", "multiprocess"])
def test_evalctl_stop_during_tool_calls(
    executor: str, ledger: Path, dagster_home: Path, tmp_path: Path
):
    # Two samples at a time: the run has minutes of work left when the stop lands, however
    # long a loaded machine takes to start `evalctl stop`.
    first = run_locally(tmp_path, "--executor", executor, "--max-samples", "2")
    with DagsterInstance.get() as instance:
        # Early: the stop must land while the run still has most of its work ahead.
        run = wait_until_evaluating(instance, ledger, calls=10)
        # Inspect's in-flight log lives under the instance, not in /tmp.
        assert list((dagster_home / "inflight" / run.run_id).glob("*/*.eval"))
        wait_for(our_sandboxes, 60, "a tool call in a sandbox", interval=0.05)
        stop = subprocess.run(
            [str(BIN / "evalctl"), "stop", run.run_id, "--reason", "fault test"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert "CANCELED" in stop.stdout
        assert_quiet_after(ledger, stop_requested_at(instance, run.run_id))
        first.wait(timeout=60)

        run = instance.get_run_by_id(run.run_id)
        assert run.status == DagsterRunStatus.CANCELED
        assert "fault test" in run.tags["eval/stop-reason"]
        assert json.loads(run.tags[TASK_TAG_PREFIX + TASK_KEY])["status"] == "partial"
        assert not (dagster_home / "inflight" / run.run_id).exists(), "kept as partial, not left"
        assert_nothing_published(instance, run.run_id)
        resume_and_check(tmp_path, ledger, instance, run.run_id)


@pytest.mark.slow
def test_the_worker_tag_names_the_evalctl_process(ledger: Path, dagster_home: Path, tmp_path):
    """What the health check relies on: the run worker records itself."""
    proc = run_locally(tmp_path, name="worker")
    try:
        with DagsterInstance.get() as instance:
            run = wait_until_evaluating(instance, ledger, calls=2)
            worker = ProcessIdentity.from_tag(run.tags[WORKER_TAG])
            assert worker is not None and worker.pid == proc.pid and worker.alive()
    finally:
        kill_group(proc)
        wait_for(lambda: not our_sandboxes(), 20, "sandboxes to end")


# --- Runs launched by the daemon, as from the UI ---------------------------------------


def ui_launch(services: dict, instance: DagsterInstance, executor: str) -> str:
    webserver, _ = services["services"]
    webserver.wait_for_http(f"http://127.0.0.1:{services['port']}/server_info", timeout=180)
    return launch_from_the_ui_api(services["port"], instance, executor, UI_EPOCHS)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_webserver_and_daemon_stopped_mid_run_then_restarted(
    ledger: Path, services: dict, tmp_path: Path
):
    from tests.services import Service

    with DagsterInstance.get() as instance:
        run_id = ui_launch(services, instance, "in_process")
        wait_until_evaluating(instance, ledger, calls=20)
        # With the code server they share (and its run worker): all `dagster dev` starts.
        for service in (*services["services"], services["code_server"]):
            service.stop()
        stopped_at = time.time()
        assert_quiet_after(ledger, stopped_at)

        daemon = Service(
            "daemon-again",
            [str(BIN / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
            tmp_path,
            dict(os.environ),
        )
        try:
            run = wait_for_status(instance, run_id, 90)
        finally:
            daemon.stop()
        assert run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED), run.status
        assert_nothing_published(instance, run_id)


# --- Storage faults ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_postgres_down_longer_than_the_retry_budget(
    ledger: Path, dagster_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The run worker cannot record anything while PostgreSQL is down; once it is back, the
    run reads FAILURE (its worker is gone) and a re-run reuses the finished work."""
    import yaml

    from tests.services import postgres_server

    scale = yaml.safe_load((PROJECT_ROOT / "deploy" / "scale" / "dagster.yaml").read_text())
    local = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    (dagster_home / "dagster.yaml").write_text(
        yaml.safe_dump({**local, "storage": scale["storage"]})
    )
    with postgres_server() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        first = run_locally(tmp_path)
        with DagsterInstance.get() as instance:
            run = wait_until_evaluating(instance, ledger)
        server.stop()
        try:
            code = first.wait(timeout=300)
        finally:
            kill_group(first)
        assert code != 0, "evalctl reported success while its storage was down"
        output = (tmp_path / "first.log").read_text()
        assert "error" in output.lower(), output[-2000:]
        ended_at = time.time()
        assert_quiet_after(ledger, ended_at)

        server.start()
        with DagsterInstance.get() as instance:
            listing = subprocess.run(
                [str(BIN / "evalctl"), "runs"], capture_output=True, text=True, timeout=120
            )
            assert listing.returncode == 0, listing.stderr
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
            assert_nothing_published(instance, run.run_id)
            resume_and_check(tmp_path, ledger, instance, run.run_id)


@pytest.fixture
def small_disk(dagster_home: Path):
    """DAGSTER_HOME on its own 64 MiB tmpfs, so a test can fill it."""
    from tests.services import small_tmpfs

    with small_tmpfs(dagster_home, "64m"):
        (dagster_home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
        yield dagster_home


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_disk_full_during_a_task(ledger: Path, small_disk: Path, tmp_path: Path):
    first = run_locally(tmp_path)
    with DagsterInstance.get() as instance:
        run = wait_until_evaluating(instance, ledger)
    fill_disk(small_disk, leave_bytes=0)
    filler = small_disk / ".filler"
    try:
        code = first.wait(timeout=300)
    finally:
        kill_group(first)
    filler.unlink()
    assert code != 0, "evalctl reported success on a full disk"
    assert_quiet_after(ledger, time.time())

    with DagsterInstance.get() as instance:
        subprocess.run([str(BIN / "evalctl"), "runs"], capture_output=True, timeout=120)
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        assert_nothing_published(instance, run.run_id)
        for artifact in (small_disk / "artifacts").rglob("*.eval"):
            from inspect_ai.log import read_eval_log_headers

            read_eval_log_headers([str(artifact)])  # every stored log is whole
        resume_and_check(tmp_path, ledger, instance, run.run_id)


# --- Runs launched by one daemon, as from the UI ---------------------------------------
# Last in the module: they share one start of the webserver and daemon (`module_services`,
# tests/conftest.py), on a DAGSTER_HOME of the module's own, alive until the module ends.


@pytest.fixture(scope="module")
def module_services_env(tmp_path_factory: pytest.TempPathFactory):
    """A model folder for the module's services (`shared_ledger` writes the ledger model
    into it), their runs' sandboxes in a TMPDIR of the module's own."""
    models = tmp_path_factory.mktemp("shared-models")
    with pytest.MonkeyPatch.context() as monkeypatch, private_tmpdir(monkeypatch) as folder:
        yield {"EVAL_MODEL_PATH": str(models), "TMPDIR": str(folder)}


@pytest.fixture
def shared_ledger(module_services_env: dict, module_services: dict, tmp_path: Path):
    """`ledger` for the module's services: the ledger model (re)written to log its calls
    to this test's own file (each run worker reads the model folder afresh); afterwards no
    sandbox of the test's runs may be left running."""
    require_sandbox_host()
    calls = tmp_path / "model-calls.log"
    write_ledger_model(Path(module_services_env["EVAL_MODEL_PATH"]), calls, latency=1.0)
    yield calls
    folder = module_services_env["TMPDIR"]
    deadline = time.monotonic() + 30
    while sandbox_processes(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not sandbox_processes(folder), "sandbox processes still running 30 s after the test"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("executor", "policy"),
    [("multiprocess", "SAFE_TERMINATE"), ("in_process", "MARK_AS_CANCELED_IMMEDIATELY")],
)
def test_terminate_from_the_ui_stops_a_daemon_launched_run(
    executor: str, policy: str, shared_ledger: Path, module_services: dict
):
    ledger, services = shared_ledger, module_services
    with DagsterInstance.get() as instance:
        run_id = ui_launch(services, instance, executor)
        wait_until_evaluating(instance, ledger, calls=20, run_id=run_id)
        wait_for(our_sandboxes, 60, "a tool call in a sandbox", interval=0.05)
        answer = graphql(services["port"], TERMINATE, {"runId": run_id, "policy": policy})
        assert answer["data"]["terminateRun"]["__typename"] == "TerminateRunSuccess", answer
        run = wait_for_status(instance, run_id, 60)
        assert run.status == DagsterRunStatus.CANCELED
        assert_quiet_after(ledger, stop_requested_at(instance, run_id))
        assert_nothing_published(instance, run_id)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill_9_of_the_daemon_launched_run_worker(shared_ledger: Path, module_services: dict):
    ledger, services = shared_ledger, module_services
    with DagsterInstance.get() as instance:
        run_id = ui_launch(services, instance, "multiprocess")
        wait_until_evaluating(instance, ledger, calls=20, run_id=run_id)
        worker = ProcessIdentity.from_tag(instance.get_run_by_id(run_id).tags[WORKER_TAG])
        assert worker is not None and worker.alive()
        os.kill(worker.pid, signal.SIGKILL)
        killed_at = time.time()
        assert_quiet_after(ledger, killed_at)
        # Run monitoring (5 s polls) asks the launcher, which sees the worker gone.
        run = wait_for_status(instance, run_id, 60)
        assert run.status == DagsterRunStatus.FAILURE
        assert time.time() - killed_at < 60
        assert_nothing_published(instance, run_id)
