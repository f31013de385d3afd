"""`bwrap`: an Inspect sandbox environment that isolates tool calls with bubblewrap."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxEnvironment,
    SandboxEnvironmentLimits,
    SandboxUnavailableError,
    SandboxUserUnsupportedError,
    sandboxenv,
)

from eval_pipelines.catalog.specs import SandboxSpec
from eval_pipelines.core.processes import start_time as _start_time
from eval_pipelines.core.threads import made_in_thread
from eval_pipelines.sandbox._command import (
    SAFE_PATH,
    SANDBOX_UID,
    WORK_DIR,
    ExecLimits,
    bwrap_command,
    memory_file,
)
from eval_pipelines.sandbox._host import SandboxSetupError, bwrap_path, require_host
from eval_pipelines.sandbox._seccomp import filter_fd
from eval_pipelines.watch import (
    RESOLV_CONF,
    CallWatch,
    Cgroup,
    CgroupLimits,
    NetworkTrap,
    create_cgroup,
    remove_cgroup,
)

MB = 1 << 20
# The exec wrapper (sh/prlimit/setpriv/bwrap and bwrap's init) counts against pids.max.
WRAPPER_PROCESSES = 4
HOST_UID_RANGE = (200_000, 1_000_000)
ENTER_FAILED = 125

_PASSWD = f"root:x:0:0:root:/:/usr/sbin/nologin\nsandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:{WORK_DIR}:/bin/bash\n"
_GROUP = f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\n"
_HOSTS = "127.0.0.1 localhost sandbox\n::1 localhost\n"
# Generated /etc files, handed to bwrap from memory on each exec (see _command._etc).
ETC_FILES = {
    "passwd": _PASSWD,
    "group": _GROUP,
    "hosts": _HOSTS,
    "hostname": "sandbox\n",
    # dns: a lookup is a datagram into the trap (a network attempt), refused at once.
    "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
    "resolv.conf": RESOLV_CONF,
}
_WRITE = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'
_READ = '[ -e "$1" ] || exit 3; [ -d "$1" ] && exit 4; exec cat -- "$1"'


@dataclass
class _Run:
    returncode: int
    stdout: bytes
    stderr: bytes
    notes: list[str]


class _Sandbox:
    """One sample's sandbox on the host: its uid, work dir (tmpfs) and cgroup."""

    def __init__(self, spec: SandboxSpec):
        self.spec = spec
        self.host_uid = HOST_UID_RANGE[0] + secrets.randbelow(HOST_UID_RANGE[1] - HOST_UID_RANGE[0])
        self.root = Path(tempfile.mkdtemp(prefix="eval-sandbox-"))
        self.work = self.root / "work"
        self.cgroup: Cgroup | None = None
        # Torn down once: by `destroy()`, or when this object is dropped without it (a sample
        # whose cleanup never ran), at the latest when the process exits. Otherwise a
        # long-lived owner (a test session, an in-process run) keeps it from the reaper.
        self._cgroup_dirs: list[Path] = []
        self._release = weakref.finalize(self, _teardown, self.root, self._cgroup_dirs)
        try:
            self._create()
        except Exception as exc:
            self.destroy()
            raise SandboxSetupError(f"cannot create the sandbox: {exc}") from exc

    def _create(self) -> None:
        self.root.chmod(0o711)  # the sandbox uid must reach its work dir
        self.work.mkdir()
        # No uid=/gid= options: the sandbox's mountinfo shows them. Owned by a chown instead.
        subprocess.run(
            ["/usr/bin/mount", "-t", "tmpfs", "-o",
             f"size={self.spec.disk_mb * MB},mode=0700,nosuid,nodev",
             "eval-sandbox", str(self.work)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        os.chown(self.work, self.host_uid, self.host_uid)
        self.cgroup = create_cgroup(
            self.root.name,
            CgroupLimits(
                memory_bytes=self.spec.memory_mb * MB,
                pids=self.spec.pids + WRAPPER_PROCESSES,
                cpu_cores=self.spec.cpu,
            ),
        )
        self._cgroup_dirs.extend(self.cgroup.dirs)
        owner = {
            "pid": os.getpid(),
            "start": _start_time(os.getpid()),
            "cgroups": [str(d) for d in self.cgroup.dirs],
        }
        (self.root / OWNER_FILE).write_text(json.dumps(owner))

    def destroy(self) -> None:
        """Kill whatever is left, release the cgroup, unmount and delete the work dir."""
        self._release()

    def command(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        seccomp_fd: int,
        etc_fds: dict[str, int],
        netns_fd: int,
    ) -> list[str]:
        assert self.cgroup is not None
        return bwrap_command(
            bwrap=bwrap_path() or "bwrap",
            host_uid=self.host_uid,
            cgroup_procs=self.cgroup.procs_files,
            limits=ExecLimits(
                cpu_seconds=self.spec.cpu_seconds,
                file_bytes=self.spec.disk_mb * MB,
                processes=self.spec.pids + WRAPPER_PROCESSES,
                tmpfs_bytes=self.spec.disk_mb * MB,
            ),
            work_dir=self.work,
            etc_files=etc_fds,
            seccomp_fd=seccomp_fd,
            netns_fd=netns_fd,
            command=argv,
            cwd=cwd,
            env=env,
        )

    async def run(
        self,
        argv: list[str],
        *,
        input: bytes | None,
        cwd: str,
        env: dict[str, str],
        timeout: int,
        output_limit: int,
    ) -> _Run:
        """Run argv in the sandbox, watched (see _watch.py); kill everything on timeout,
        output flood or a monitor's stop."""
        assert self.cgroup is not None
        trap = await made_in_thread(NetworkTrap, NetworkTrap.close)
        with contextlib.closing(trap):
            seccomp_fd = filter_fd()
            etc_fds = {
                name: memory_file(f"eval-sandbox-{name}", text.encode())
                for name, text in ETC_FILES.items()
            }
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.command(argv, cwd, env, seccomp_fd, etc_fds, trap.netns_fd),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    pass_fds=(seccomp_fd, trap.netns_fd, *etc_fds.values()),
                    start_new_session=True,
                    cwd="/",
                    env={"PATH": SAFE_PATH},  # the host's environment (API keys) stays out
                )
            finally:
                for fd in (seccomp_fd, *etc_fds.values()):
                    os.close(fd)
            watch = CallWatch(
                self.root.name,
                self.cgroup,
                trap.read,
                self.spec.memory_mb * MB,
                self.spec.pids + WRAPPER_PROCESSES,
                kill=lambda: self._kill_sandboxed(process),
            )
            loop = asyncio.get_running_loop()
            loop.add_reader(trap.tun_fd, watch.on_packets)
            # A task of this coroutine: same context, so the monitor sees the calling sample.
            observer = asyncio.create_task(watch.observe())
            flooded: list[str] = []

            async def feed() -> None:
                assert process.stdin is not None
                try:
                    if input:
                        process.stdin.write(input)
                        await process.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    process.stdin.close()

            async def collect(stream: asyncio.StreamReader | None, name: str) -> bytes:
                assert stream is not None
                data = bytearray()
                while chunk := await stream.read(65536):
                    if len(data) + len(chunk) > output_limit:
                        data += chunk[: output_limit - len(data)]
                        flooded.append(name)
                        self._kill_sandboxed(process)
                        break
                    data += chunk
                return bytes(data)

            timed_out = False
            try:
                # asyncio.timeout, not wait_for: a cancelled tool call (Inspect's time limits)
                # must not leave a gather future behind with an unretrieved CancelledError.
                async with asyncio.timeout(timeout):
                    _, stdout, stderr = await asyncio.gather(
                        feed(), collect(process.stdout, "stdout"), collect(process.stderr, "stderr")
                    )
            except TimeoutError:
                timed_out = True
            finally:
                await self._stop(process)
                loop.remove_reader(trap.tun_fd)
                watch.stop()
                with contextlib.suppress(BaseException):  # re-raised below, unless cancelled
                    await asyncio.shield(observer)
            await observer  # what a subscriber raised (the monitor's stop) ends the call here
            watch.finish(str(self.work))
            if timed_out:
                watch.hit("wall_time", limit_seconds=timeout)
                raise TimeoutError(
                    f"sandbox command ran past its wall-time limit of {timeout}s and was killed with "
                    "all of its processes"
                )
            returncode = process.returncode or 0
            if flooded:
                watch.hit("output", limit_bytes=output_limit, stream=flooded[0])
                raise OutputLimitExceededError(
                    f"{output_limit} bytes",
                    truncated_output=(stdout if "stdout" in flooded else stderr).decode(
                        errors="replace"
                    ),
                )
            self._check_exit(watch, returncode, stderr)
            return _Run(
                returncode, stdout, stderr, watch.notes(self.spec.memory_mb, self.spec.pids)
            )

    def _check_exit(self, watch: CallWatch, returncode: int, stderr: bytes) -> None:
        """Limits only the exit shows: per-process CPU time (SIGXCPU, then SIGKILL at the
        hard limit) and file size or a full tmpfs (SIGXFSZ, ENOSPC)."""
        used = watch.peak["cpu_seconds"] - watch.start_usage["cpu_seconds"]
        if used >= self.spec.cpu_seconds and (
            returncode in (128 + signal.SIGXCPU, 128 + signal.SIGKILL)
            or b"CPU time limit exceeded" in stderr
        ):
            watch.hit("cpu_seconds", limit_seconds=self.spec.cpu_seconds, used_seconds=used)
        if returncode == 128 + signal.SIGXFSZ or any(
            marker in stderr for marker in (b"No space left on device", b"File size limit exceeded")
        ):
            watch.hit("disk", limit_bytes=self.spec.disk_mb * MB)

    def _kill_sandboxed(self, process: asyncio.subprocess.Process) -> None:
        """SIGKILL what runs inside the sandbox, but not bwrap outside it.

        bwrap then reaps its child and exits by itself; killing bwrap first would orphan
        the sandboxed processes to the host's init as zombies.
        """
        assert self.cgroup is not None
        for pid in self.cgroup.pids() - {process.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        """Make sure the exec and everything it started are gone (and reaped)."""
        assert self.cgroup is not None
        if process.returncode is None:
            self._kill_sandboxed(process)
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                # The group may have exited since the wait gave up: nothing left to kill.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        self.cgroup.kill_all()


OWNER_FILE = "owner.json"
# A sandbox folder without an owner record this old was abandoned mid-creation.
ABANDONED_AFTER_SECONDS = 600


def _teardown(root: Path, cgroup_dirs: list[Path]) -> None:
    remove_cgroup(cgroup_dirs)
    work = root / "work"
    if f" {work} " in Path("/proc/self/mountinfo").read_text():
        subprocess.run(["/usr/bin/umount", "--lazy", str(work)], check=False, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def reap_stale_sandboxes(
    folder: Path | None = None, abandoned_after: float = ABANDONED_AFTER_SECONDS
) -> list[Path]:
    """Tear down sandboxes whose owning process died without cleaning up (kill -9, OOM).

    Their processes died with them (bwrap's parent-death signal); their cgroups, tmpfs
    mounts and folders would otherwise stay behind. `folder`: where sandboxes were made
    (default: this process's TMPDIR). A folder with no owner record yet is left alone for
    `abandoned_after` seconds (it may be mid-creation); 0 when nothing creates any more.
    """
    reaped = []
    for root in Path(folder or tempfile.gettempdir()).glob("eval-sandbox-*"):
        if not root.is_dir():
            continue
        try:
            owner = json.loads((root / OWNER_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            if time.time() - root.stat().st_mtime < abandoned_after:
                continue
            owner = {"pid": None, "start": None, "cgroups": []}
        if owner["pid"] is not None and _start_time(owner["pid"]) == owner["start"]:
            continue  # its process is alive: not ours to touch
        _teardown(root, [Path(d) for d in owner["cgroups"]])
        reaped.append(root)
    return reaped


def _spec(config: Any) -> SandboxSpec:
    if isinstance(config, SandboxSpec):
        return config
    if config is None:
        return SandboxSpec()
    raise SandboxSetupError(
        f"the bwrap sandbox takes a SandboxSpec config, not {type(config).__name__}"
    )


@sandboxenv(name="bwrap")
class BwrapSandboxEnvironment(SandboxEnvironment):
    """Each tool call runs in fresh bubblewrap namespaces as the sample's own host uid."""

    def __init__(self, sandbox: _Sandbox):
        super().__init__()
        self._sandbox = sandbox

    @classmethod
    def config_deserialize(cls, config: dict[str, Any]) -> SandboxSpec:
        return SandboxSpec(**config)

    @classmethod
    def default_concurrency(cls) -> int | None:
        return 4 * (os.cpu_count() or 1)

    @classmethod
    async def task_init(cls, task_name: str, config: Any) -> None:
        require_host()
        await asyncio.to_thread(reap_stale_sandboxes)

    @classmethod
    async def sample_init(
        cls, task_name: str, config: Any, metadata: dict[str, str]
    ) -> dict[str, SandboxEnvironment]:
        require_host()
        sandbox = await made_in_thread(lambda: _Sandbox(_spec(config)), _Sandbox.destroy)
        return {"default": cls(sandbox)}

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: Any,
        environments: dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        for environment in environments.values():
            await asyncio.to_thread(environment.as_type(cls)._sandbox.destroy)

    def _cwd(self, cwd: str | None) -> str:
        if cwd is None:
            return WORK_DIR
        return cwd if cwd.startswith("/") else f"{WORK_DIR}/{cwd}"

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
        if user not in (None, "sandbox", str(SANDBOX_UID)):
            raise SandboxUserUnsupportedError(
                f"the bwrap sandbox runs only as its own user, not {user!r}"
            )
        spec = self._sandbox.spec
        run = await self._sandbox.run(
            cmd,
            input=input.encode() if isinstance(input, str) else input,
            cwd=self._cwd(cwd),
            env=env or {},
            timeout=min(timeout or spec.timeout_seconds, spec.timeout_seconds),
            output_limit=min(spec.output_kb * 1024, SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE),
        )
        if run.returncode == ENTER_FAILED and not run.stdout:
            raise SandboxUnavailableError(
                f"the sandbox could not join its cgroup: {run.stderr.decode(errors='replace')}"
            )
        stderr = run.stderr.decode(errors="replace")
        if run.notes:
            stderr = "\n".join([stderr.rstrip("\n"), *run.notes]).lstrip("\n")
        return ExecResult(
            success=run.returncode == 0,
            returncode=run.returncode,
            stdout=run.stdout.decode(errors="replace"),
            stderr=stderr,
        )

    async def write_file(self, file: str, contents: str | bytes) -> None:
        # Through the sandbox, never on the host: the work dir is the agent's, and a
        # symlink it planted must not make a root-owned host process write elsewhere.
        run = await self._sandbox.run(
            ["/bin/sh", "-c", _WRITE, "write", file],
            input=contents.encode() if isinstance(contents, str) else contents,
            cwd=WORK_DIR, env={}, timeout=self._sandbox.spec.timeout_seconds,
            output_limit=64 * 1024,
        )  # fmt: skip
        if run.returncode != 0:
            message = run.stderr.decode(errors="replace").strip()
            if "Is a directory" in message:
                raise IsADirectoryError(message)
            raise PermissionError(f"cannot write {file} in the sandbox: {message}")

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> str | bytes:
        run = await self._sandbox.run(
            ["/bin/sh", "-c", _READ, "read", file],
            input=None, cwd=WORK_DIR, env={}, timeout=self._sandbox.spec.timeout_seconds,
            output_limit=SandboxEnvironmentLimits.MAX_READ_FILE_SIZE,
        )  # fmt: skip
        if run.returncode == 3:
            raise FileNotFoundError(file)
        if run.returncode == 4:
            raise IsADirectoryError(file)
        if run.returncode != 0:
            raise PermissionError(
                f"cannot read {file} in the sandbox: {run.stderr.decode(errors='replace').strip()}"
            )
        return run.stdout.decode() if text else run.stdout
