"""`container`: an Inspect sandbox environment that runs a task's compose project or Dockerfile.

What Inspect's docker sandbox would run (every service a container, `default` the agent's,
the others reachable by name on the sample's network), on the Docker Engine API, with the
platform's promises: the sample's network is internal (no egress, no route to the host), no
host path or engine socket is mounted, no host environment variable reaches a container, and
memory, CPU and process limits come from the suite's `sandbox:` spec within the platform's
maxima. Inside, a container has what Docker gives by default (plus the compose file's
`cap_add`): privilege escalation inside it is what many evals measure. The boundary is
outside: Docker's default seccomp profile, and gVisor (`runsc`) as the runtime where chosen.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import signal
import socket
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, Literal, overload

import docker
from docker.errors import APIError, NotFound
from docker.types import LogConfig, Ulimit
from docker.utils.socket import frames_iter
from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxConnection,
    SandboxEnvironment,
    SandboxEnvironmentLimits,
    sandboxenv,
)
from pydantic import BaseModel

from eval_pipelines.catalog.specs import SandboxSpec
from eval_pipelines.containers._compose import Project, Service, load_project
from eval_pipelines.containers._engine import (
    LABEL,
    OWNER_LABEL,
    EngineError,
    ServiceImage,
    client,
    disk_quota_problem,
    host_guard_problem,
    owner,
    reap,
    service_image,
)
from eval_pipelines.core.processes import session_members
from eval_pipelines.core.threads import made_in_thread
from eval_pipelines.watch import (
    Attempt,
    CallWatch,
    Cgroup,
    CgroupUnavailableError,
    NetworkTrap,
    NetworkTrapError,
    cgroup_of_process,
)

Runtime = Literal["runc", "runsc"]
_READ = '[ -e "$1" ] || exit 3; [ -d "$1" ] && exit 4; exec cat -- "$1"'
_WRITE = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'
_STARTED = {"service_started", "service_completed_successfully"}
# What a write past the container's disk quota prints (EDQUOT; ENOSPC once the engine's own
# file system is full).
_DISK_FULL = (b"Disk quota exceeded", b"No space left on device")
# The longest a service may take to become healthy, whatever its healthcheck allows.
MAX_HEALTHY_WAIT_S = 300.0


class ContainerConfig(BaseModel, frozen=True):
    """What a sample's container sandbox runs: the task's compose file or Dockerfile, with the
    suite's limits and the runtime the deployment chose."""

    file: str
    limits: SandboxSpec = SandboxSpec()
    runtime: Runtime = "runc"


class _Sample:
    """One sample's containers, network and volumes, made on construction (blocking: on a
    worker thread); `destroy` removes them all.

    Each running service is watched as a bwrap sandbox is: its cgroup gives the monitor
    counters and limit hits, and a trap route in its network namespace catches what it sends
    beyond the sample's network (see `eval_pipelines.watch`)."""

    def __init__(self, config: ContainerConfig, project: Project, images: dict[str, ServiceImage]):
        self.config, self.project, self.images = config, project, images
        self.token = secrets.token_hex(6)
        self.labels = {LABEL: self.token, OWNER_LABEL: owner()}
        self.engine = client()
        self.containers: dict[str, Any] = {}
        self.cgroups: dict[str, Cgroup] = {}
        self.traps: dict[str, NetworkTrap] = {}
        self.network: Any = None
        self.volumes: list[Any] = []
        try:
            self._create()
        except BaseException:
            self.destroy()
            raise

    def _create(self) -> None:
        self.network = self.engine.networks.create(
            f"eval-{self.token}", driver="bridge", internal=True, labels=self.labels
        )
        subnet = self.network.attrs["IPAM"]["Config"][0]["Subnet"]
        problem = host_guard_problem(subnet)
        if problem:
            raise EngineError(f"refusing to start the sample: {problem}")
        for volume in self.project.volumes:
            self.volumes.append(
                self.engine.volumes.create(f"eval-{self.token}-{volume}", labels=self.labels)
            )
        for service in _start_order(self.project):
            self._wait_for_dependencies(service)
            self.containers[service.name] = self._start(service)
            self._watch(service.name)

    def _watch(self, name: str) -> None:
        """A started service's cgroup and network trap; fails closed while it runs."""
        container = self.containers[name]
        container.reload()
        pid = container.attrs["State"].get("Pid") or 0
        try:
            if not pid:
                raise CgroupUnavailableError("it has no process")
            self.traps[name] = NetworkTrap.join(pid, source=name)
            self.cgroups[name] = cgroup_of_process(pid)
        except (NetworkTrapError, CgroupUnavailableError) as exc:
            container.reload()
            if container.attrs["State"].get("Running"):
                raise EngineError(
                    f"refusing to start the sample: cannot watch service {name!r} ({exc}); "
                    "the container sandbox needs root on the engine's host"
                ) from exc
            # It already exited (a setup service): nothing runs there to watch.

    def attempts(self) -> list[Attempt]:
        """Drain every service's trap: what the sample sent beyond its own network."""
        return [attempt for trap in self.traps.values() for attempt in trap.read()]

    def _start(self, service: Service):
        limits = self.config.limits
        memory = service.memory_within(limits)
        cpus = service.cpus_within(limits)
        api = self.engine.api
        host_config = api.create_host_config(
            network_mode=self.network.name if service.network else "none",
            init=service.init,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(cpus * 1e9),
            pids_limit=limits.pids,
            # What the container may write: the engine's btrfs simple quotas charge it for
            # its own writes only, never for the image it shares (docker_engine.sh).
            storage_opt={"size": f"{limits.disk_mb}M"},
            shm_size=service.shm_bytes,
            extra_hosts=service.extra_hosts or None,
            cap_add=list(service.cap_add) or None,
            cap_drop=list(service.cap_drop) or None,
            ulimits=[Ulimit(name=n, soft=s, hard=h) for n, (s, h) in service.ulimits.items()]
            or None,
            binds={
                f"eval-{self.token}-{volume}": {"bind": target, "mode": "rw"}
                for volume, target in service.volumes.items()
            }
            or None,
            runtime=self.config.runtime,
            log_config=LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
        )
        networking = (
            api.create_networking_config(
                {self.network.name: api.create_endpoint_config(aliases=[service.name])}
            )
            if service.network
            else None
        )
        created = self._create_container(
            self.images[service.name].digest,
            command=service.command,
            entrypoint=service.entrypoint,
            user=service.user or "",
            working_dir=service.working_dir,
            # Only what the compose file sets: never the host's environment or API keys.
            environment=service.environment,
            hostname=service.hostname or service.name,
            labels={**self.labels, "org.eval-pipelines.service": service.name},
            host_config=host_config,
            networking_config=networking,
            name=f"eval-{self.token}-{service.name}",
        )
        container = self.engine.containers.get(created["Id"])
        for source, target in service.copies:
            container.put_archive(str(Path(target).parent), _tar(source, Path(target).name))
        container.start()
        return container

    def _create_container(self, image: str, **options: Any) -> dict:
        try:
            return self.engine.api.create_container(image, **options)
        except APIError as exc:
            if "storage-opt" in str(exc) or "qgroup" in str(exc):
                raise EngineError(
                    disk_quota_problem(self.engine.info())
                    or f"the engine cannot cap the container's disk: {exc.explanation}"
                ) from exc
            raise

    def _wait_for_dependencies(self, service: Service) -> None:
        for name, condition in service.depends_on.items():
            if condition in _STARTED:
                continue
            self._wait_healthy(name)

    def _wait_healthy(self, name: str) -> None:
        service = self.project.service(name)
        check = service.healthcheck
        limit = MAX_HEALTHY_WAIT_S
        if check is not None:
            limit = min(
                limit, check.start_period + (check.retries + 1) * (check.interval + check.timeout)
            )
        deadline = time.monotonic() + limit
        container = self.containers[name]
        while time.monotonic() < deadline:
            container.reload()
            state = container.attrs["State"]
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy" or (health is None and state.get("Running")):
                return
            if not state.get("Running"):
                raise EngineError(
                    f"service {name!r} exited ({state.get('ExitCode')}) before it was healthy"
                )
            time.sleep(0.2)
        raise EngineError(f"service {name!r} was not healthy within {limit:.0f} s")

    def destroy(self) -> None:
        for container in self.containers.values():
            _quietly(lambda c=container: c.remove(force=True, v=True))
        if self.network is not None:
            _quietly(self.network.remove)
        for volume in self.volumes:
            _quietly(lambda v=volume: v.remove(force=True))
        for trap in self.traps.values():
            trap.close()
        self.traps.clear()
        self.engine.close()


def _quietly(action) -> None:
    try:
        action()
    except (NotFound, APIError):
        pass


def _start_order(project: Project) -> list[Service]:
    """Services after the ones they depend on (the file's order otherwise)."""
    by_name = {s.name: s for s in project.services}
    ordered: list[Service] = []

    def visit(service: Service, path: tuple[str, ...]) -> None:
        if service in ordered:
            return
        if service.name in path:
            raise EngineError(
                f"{project.source}: services depend on each other in a cycle: {' -> '.join(path)}"
            )
        for dependency in service.depends_on:
            visit(by_name[dependency], (*path, service.name))
        ordered.append(service)

    for service in project.services:
        visit(service, ())
    return ordered


def _tar(source: Path, name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(source, arcname=name)
    return buffer.getvalue()


def _config(config: Any) -> ContainerConfig:
    if isinstance(config, ContainerConfig):
        return config
    if isinstance(config, dict):
        return ContainerConfig(**config)
    raise EngineError(f"the container sandbox takes a ContainerConfig, not {type(config).__name__}")


_projects: dict[str, tuple[Project, dict[str, ServiceImage]]] = {}
_projects_lock = threading.Lock()


def project_images(config: ContainerConfig) -> tuple[Project, dict[str, ServiceImage]]:
    """The config's project and the image of each service, built once per process."""
    key = config.model_dump_json()
    with _projects_lock:
        if key not in _projects:
            project = load_project(Path(config.file))
            engine = client()
            try:
                reap(engine)
                images = {s.name: service_image(engine, s) for s in project.services}
            finally:
                engine.close()
            _projects[key] = (project, images)
        return _projects[key]


@sandboxenv(name="container")
class ContainerSandboxEnvironment(SandboxEnvironment):
    """One service's container of a sample's compose project."""

    def __init__(self, sample: _Sample, service: str):
        super().__init__()
        self._sample = sample
        self._service = service

    @classmethod
    def config_deserialize(cls, config: dict[str, Any]) -> ContainerConfig:
        return ContainerConfig(**config)

    @classmethod
    def default_concurrency(cls) -> int | None:
        return 4 * (os.cpu_count() or 1)

    @classmethod
    async def task_init(cls, task_name: str, config: Any) -> None:
        await asyncio.to_thread(project_images, _config(config))

    @classmethod
    async def sample_init(
        cls, task_name: str, config: Any, metadata: dict[str, str]
    ) -> dict[str, SandboxEnvironment]:
        spec = _config(config)
        project, images = await asyncio.to_thread(project_images, spec)
        sample = await made_in_thread(lambda: _Sample(spec, project, images), _Sample.destroy)
        return {s.name: cls(sample, s.name) for s in project.services}

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: Any,
        environments: dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        samples = {
            id(e.as_type(cls)._sample): e.as_type(cls)._sample for e in environments.values()
        }
        for sample in samples.values():
            await asyncio.to_thread(sample.destroy)

    @property
    def container(self):
        return self._sample.containers[self._service]

    def images(self) -> dict[str, ServiceImage]:
        return self._sample.images

    async def exec(
        self,
        cmd: list[str],
        input: str | bytes | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        timeout: int | None = None,
        timeout_retry: bool = True,
        concurrency: bool = True,
    ) -> ExecResult[str]:
        limits = self._sample.config.limits
        data = input.encode() if isinstance(input, str) else input
        run = _Exec(
            self._sample.engine.api,
            self.container.id,
            cmd,
            data,
            workdir=self._workdir(cwd),
            env=env or {},
            user=user,
            output_limit=min(
                limits.output_kb * 1024, SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE
            ),
        )
        wall = min(timeout or limits.timeout_seconds, limits.timeout_seconds)
        returncode, notes = await self._watched(run, wall)
        if run.truncated:
            raise OutputLimitExceededError(
                limit_str=f"{run.output_limit // 1024} KiB", truncated_output=run.text(run.stdout)
            )
        stderr = run.text(run.stderr)
        if notes:
            stderr = "\n".join([stderr.rstrip("\n"), *notes]).lstrip("\n")
        return ExecResult(
            success=returncode == 0,
            returncode=returncode,
            stdout=run.text(run.stdout),
            stderr=stderr,
        )

    async def _watched(self, run: _Exec, wall: int) -> tuple[int, list[str]]:
        """Run `run` watched as bwrap calls are: counters, limit hits and network attempts
        published from this coroutine (so the monitor knows the sample), the whole command
        killed on timeout, cancel or a monitor's stop. Returns (exit code, notes)."""
        sample, limits = self._sample, self._sample.config.limits
        cgroup = sample.cgroups.get(self._service)
        if cgroup is None:
            raise EngineError(f"service {self._service!r} is not running: nothing to exec in")
        memory = sample.project.service(self._service).memory_within(limits)
        watch = CallWatch(
            self.container.name, cgroup, sample.attempts, memory, limits.pids, kill=run.kill
        )
        # A task of this coroutine: same context, so the monitor sees the calling sample.
        observer = asyncio.create_task(watch.observe())
        thread = asyncio.to_thread(run.run)
        timed_out = False
        returncode = 137
        try:
            returncode = await asyncio.wait_for(asyncio.shield(thread), wall)
        except TimeoutError:
            timed_out = True
            run.kill()
        except asyncio.CancelledError:
            run.kill()
            raise
        finally:
            watch.stop()
            with contextlib.suppress(BaseException):  # re-raised below, unless cancelled
                await asyncio.shield(observer)
        await observer  # what a subscriber raised (the monitor's stop) ends the call here
        watch.finish()
        if timed_out:
            watch.hit("wall_time", limit_seconds=wall)
            raise TimeoutError(f"Command timed out after {wall} s")
        if run.truncated:
            watch.hit("output", limit_bytes=run.output_limit)
        notes = watch.notes(memory >> 20, limits.pids)
        if "pids" in watch.limits_hit:
            # What filled the process table (a fork bomb's remnants) would keep every later
            # call of the sample from forking: the call's session ends with it.
            await asyncio.to_thread(run.kill)
            notes.append("[sandbox] the call's processes were killed at its end")
        if any(marker in run.stderr for marker in _DISK_FULL):
            watch.hit("disk", limit_bytes=limits.disk_mb << 20)
            notes.append(f"[sandbox] disk limit ({limits.disk_mb} MB) reached: write refused")
        return returncode, notes

    def _workdir(self, cwd: str | None) -> str | None:
        if cwd is None or cwd.startswith("/"):
            return cwd
        base = self.container.attrs["Config"].get("WorkingDir") or "/"
        return f"{base.rstrip('/')}/{cwd}"

    async def write_file(self, file: str, contents: str | bytes) -> None:
        result = await self.exec(["/bin/sh", "-c", _WRITE, "write", file], input=contents)
        if not result.success:
            if "Is a directory" in result.stderr:
                raise IsADirectoryError(result.stderr.strip())
            raise PermissionError(f"cannot write {file} in the container: {result.stderr.strip()}")

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> str | bytes:
        limits = self._sample.config.limits
        run = _Exec(
            self._sample.engine.api, self.container.id, ["/bin/sh", "-c", _READ, "read", file],
            None, workdir=None, env={}, user=None,
            output_limit=SandboxEnvironmentLimits.MAX_READ_FILE_SIZE,
        )  # fmt: skip
        returncode = await asyncio.wait_for(asyncio.to_thread(run.run), limits.timeout_seconds)
        if returncode == 3:
            raise FileNotFoundError(file)
        if returncode == 4:
            raise IsADirectoryError(file)
        if run.truncated:
            raise OutputLimitExceededError(
                limit_str=f"{run.output_limit // (1 << 20)} MiB", truncated_output=None
            )
        if returncode != 0:
            raise PermissionError(
                f"cannot read {file} in the container: {run.text(run.stderr).strip()}"
            )
        return run.text(run.stdout) if text else bytes(run.stdout)

    async def connection(self, *, user: str | None = None) -> SandboxConnection:
        name = self.container.name
        return SandboxConnection(
            type="docker",
            command=f"docker exec -it {'--user ' + user + ' ' if user else ''}{name} bash -l",
            container=name,
        )


class _Exec:
    """One command in a container: input in, output out up to a limit, killable."""

    def __init__(
        self,
        api: docker.APIClient,
        container: str,
        cmd: list[str],
        data: bytes | None,
        *,
        workdir: str | None,
        env: dict[str, str],
        user: str | None,
        output_limit: int,
    ):
        self.api, self.data, self.output_limit = api, data, output_limit
        self.request = dict(
            container=container, cmd=cmd, stdin=data is not None, user=user or "",
            workdir=workdir, environment=env or None,
        )  # fmt: skip
        self.exec_id: str | None = None
        self.session = 0  # the command's host pid, leader of its session
        self.stdout, self.stderr = bytearray(), bytearray()
        self.truncated = False

    def run(self) -> int:
        """Blocking: call on a worker thread."""
        self.exec_id = self.api.exec_create(**self.request)["Id"]
        sock = self.api.exec_start(self.exec_id, socket=True)
        self.session = self._pid()
        raw = getattr(sock, "_sock", sock)
        try:
            if self.data is not None:
                raw.sendall(self.data)
            raw.shutdown(socket.SHUT_WR)
            for stream, chunk in frames_iter(sock, tty=False):
                target = self.stdout if stream == 1 else self.stderr
                room = self.output_limit - len(target)
                target.extend(chunk[: max(room, 0)])
                if len(chunk) > room:
                    self.truncated = True
                    self.kill()
                    break
        finally:
            # The response first (it flushes through the socket), then the socket itself:
            # docker's SDK leaves both to the garbage collector, which warns.
            response = getattr(sock, "_response", None)
            if response is not None:
                response.close()
            sock.close()
            raw.close()
        return self._exit_code()

    def _pid(self) -> int:
        """The command's host pid, once the engine has started it (0 if it is already gone:
        the engine gives it only while the command runs)."""
        for _ in range(500):
            state = self.api.exec_inspect(self.exec_id)
            if state["Pid"] or (not state["Running"] and state["ExitCode"] is not None):
                return state["Pid"] or 0
            time.sleep(0.002)
        return 0

    def _exit_code(self) -> int:
        for _ in range(50):
            state = self.api.exec_inspect(self.exec_id)
            if not state["Running"]:
                return state["ExitCode"] if state["ExitCode"] is not None else 137
            time.sleep(0.02)
        return 137

    def kill(self) -> None:
        """Kill the command's session: the command and every process it started, those
        orphaned to the container's init included (host pids: the engine starts each exec as
        a session leader). A process that left the session itself (setsid) lives on until the
        sample's containers are removed."""
        if self.exec_id is None:
            return
        # A stop may come before run() has read the pid (a monitor's, in the call's first ms).
        sid = self.session or self._pid()
        if not sid:
            return
        # Stop the session until it stops growing, then kill it: no fork outruns the kill.
        stopped: set[int] = set()
        for _ in range(20):
            grown = session_members(sid) - stopped
            if not grown:
                break
            for process in grown:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(process, signal.SIGSTOP)
            stopped |= grown
        for process in stopped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process, signal.SIGKILL)

    @staticmethod
    def text(data: bytes | bytearray) -> str:
        return bytes(data).decode(errors="replace")
