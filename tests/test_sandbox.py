"""The bwrap sandbox called directly, for what needs host-side setup to check."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from inspect_ai.util import OutputLimitExceededError

from eval_pipelines.catalog.specs import SandboxSpec
from eval_pipelines.core import events
from eval_pipelines.sandbox import BwrapSandboxEnvironment, host_problems
from tests.sandbox_support import (
    require_sandbox_host,
    run_without_bubblewrap,
    sandbox_processes,
)

TIGHT = SandboxSpec(
    memory_mb=512, pids=48, disk_mb=8, timeout_seconds=6, cpu_seconds=2, output_kb=64
)


class Sandbox:
    """A sample's sandbox driven synchronously from a test."""

    def __init__(self, spec: SandboxSpec):
        self.loop = asyncio.new_event_loop()
        self.environments = self.loop.run_until_complete(
            BwrapSandboxEnvironment.sample_init("test", spec, {})
        )
        self.env = self.environments["default"]

    def sh(self, script: str, timeout: int = 30):
        return self.loop.run_until_complete(self.env.exec(["bash", "-c", script], timeout=timeout))

    def call(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.loop.run_until_complete(
            BwrapSandboxEnvironment.sample_cleanup("test", None, self.environments, False)
        )
        self.loop.close()


@pytest.fixture
def sandbox():
    require_sandbox_host()
    box = Sandbox(TIGHT)
    yield box
    box.close()


class Listener:
    """A host TCP or UDP server that records whether anything reached it."""

    def __init__(self, kind: int, host: str):
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.reached = threading.Event()
        if kind == socket.SOCK_STREAM:
            self.sock.listen()
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                if self.sock.type == socket.SOCK_STREAM:
                    self.sock.accept()[0].close()
                else:
                    self.sock.recvfrom(64)
                self.reached.set()
            except OSError:
                continue

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


def host_ip() -> str:
    """An address of this machine other than loopback (the sandbox's 'outside')."""
    for address in subprocess.run(
        ["hostname", "-I"], capture_output=True, text=True
    ).stdout.split():
        if ":" not in address:
            return address
    pytest.skip("this machine has no non-loopback IPv4 address")


@pytest.fixture
def sandbox_events():
    """Every sandbox event published while the test runs."""
    seen: list[events.SandboxEvent] = []
    unsubscribe = events.subscribe(seen.append)
    yield seen
    unsubscribe()


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM], ids=["tcp", "udp"])
@pytest.mark.parametrize("where", ["loopback", "host-ip"])
def test_host_services_are_unreachable(sandbox, sandbox_events, kind, where):
    address = "127.0.0.1" if where == "loopback" else host_ip()
    listener = Listener(kind, address)
    try:
        verb = (
            "create_connection((a, p), timeout=2)"
            if kind == socket.SOCK_STREAM
            else ("socket(AF_INET, SOCK_DGRAM).sendto(b'x', (a, p))")
        )
        result = sandbox.sh(
            f"python3 -c \"from socket import *; a, p = '{address}', {listener.port}; {verb}\""
        )
        if kind == socket.SOCK_STREAM:
            assert result.returncode != 0
            # Loopback is the sandbox's own; anything else is trapped and refused at once.
            expected = "Connection refused" if where == "loopback" else "No route to host"
            assert expected in result.stderr, result.stderr
        assert not listener.reached.wait(1.0), "a packet from the sandbox reached the host"
        attempts = [e.details for e in sandbox_events if e.kind == "network_attempt"]
        if where == "host-ip":  # seen at the kernel boundary, with where it was going
            protocol = "tcp" if kind == socket.SOCK_STREAM else "udp"
            assert attempts == [
                {"destination": address, "port": listener.port, "protocol": protocol}
            ]
        else:
            assert attempts == []
    finally:
        listener.close()


def test_host_unix_sockets_are_unreachable(sandbox, tmp_path: Path):
    path = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(b"\0eval-sandbox-test")
    try:
        server.listen()
        abstract.listen()
        result = sandbox.sh(
            f"python3 -c \"import socket\nfor a in ['{path}', '\\0eval-sandbox-test']:\n"
            "    try: socket.socket(socket.AF_UNIX).connect(a); print('CONNECTED', repr(a))\n"
            "    except OSError as e: print('refused', e)\""
        )
        assert "CONNECTED" not in result.stdout
        assert [line.split()[0] for line in result.stdout.splitlines()] == ["refused", "refused"]
    finally:
        server.close()
        abstract.close()


def test_planted_secrets_and_host_environment_are_invisible(sandbox, monkeypatch, tmp_path: Path):
    secret = tmp_path / "planted-secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    secret.chmod(0o644)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-host-only")
    result = sandbox.sh(
        f"cat {secret}; ls /root /home /var; env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'"
    )
    everything = result.stdout + result.stderr
    assert "TOP-SECRET-VALUE" not in everything and "No such file" in everything
    assert "sk-ant-host-only" not in everything and "ANTHROPIC_API_KEY" not in everything


def test_writes_stay_in_the_sandbox(sandbox, tmp_path: Path):
    marker = f"/tmp/eval-sandbox-escape-{os.getpid()}"
    result = sandbox.sh(
        f"echo x > {marker} && echo wrote-tmp; echo x > /etc/evil; echo x > /usr/evil"
    )
    assert "wrote-tmp" in result.stdout  # the sandbox has its own /tmp ...
    assert not Path(marker).exists()  # ... which is not the host's
    assert result.stderr.count("Read-only file system") == 2


def test_file_io_follows_no_planted_symlink_onto_the_host(sandbox, tmp_path: Path):
    victim = tmp_path / "victim.txt"
    victim.write_text("host content")
    victim.chmod(0o666)
    sandbox.sh(f"ln -s {victim} link.txt")
    with pytest.raises(PermissionError):  # the link's target does not exist in the sandbox
        sandbox.call(sandbox.env.write_file("link.txt", "overwritten by the agent"))
    assert victim.read_text() == "host content"
    sandbox.sh("rm -f link.txt; ln -s /etc/shadow shadow.txt")
    with pytest.raises(FileNotFoundError):  # the sandbox's /etc has no shadow file at all
        sandbox.call(sandbox.env.read_file("shadow.txt"))


def test_files_round_trip_and_missing_files_raise(sandbox):
    sandbox.call(sandbox.env.write_file("a/b/data.bin", b"\x00\x01binary\r\n"))
    assert sandbox.call(sandbox.env.read_file("a/b/data.bin", text=False)) == b"\x00\x01binary\r\n"
    with pytest.raises(FileNotFoundError):
        sandbox.call(sandbox.env.read_file("nope.txt"))
    with pytest.raises(IsADirectoryError):
        sandbox.call(sandbox.env.read_file("a"))


def test_limits_hold_and_say_so(sandbox):
    disk = sandbox.sh("head -c 64M /dev/zero > fill; echo exit=$?")
    assert "No space left on device" in disk.stderr or "File size limit exceeded" in disk.stderr
    forks = sandbox.sh("for i in $(seq 200); do sleep 5 & done; wait")
    assert "Resource temporarily unavailable" in forks.stderr
    with pytest.raises(OutputLimitExceededError):
        sandbox.sh("yes")
    with pytest.raises(TimeoutError, match="wall-time limit of 6s"):
        sandbox.sh("sleep 60")
    assert sandbox.sh("echo still-usable").stdout == "still-usable\n"


def test_cpu_limit_holds_and_says_so():
    """The CPU-time limit, not the wall-time one, ends a spin: the wall-time limit is set far
    beyond what one CPU second takes on a machine loaded many times over."""
    require_sandbox_host()
    box = Sandbox(SandboxSpec(cpu_seconds=1, timeout_seconds=300))
    try:
        spin = box.sh("python3 -c 'while True: pass'", timeout=300)
    finally:
        box.close()
    assert "CPU time limit exceeded" in spin.stderr or spin.returncode in (152, 137)


# Writes 1 MiB files into a folder until the filesystem refuses; prints the errno's name.
_FILL = """
import errno, os, sys
folder = sys.argv[1]
for i in range(64):
    try:
        with open(os.path.join(folder, f"fill-{i}"), "wb") as f:
            f.write(b"x" * (1 << 20))
    except OSError as exc:
        print(errno.errorcode[exc.errno], i)
        break
else:
    print("wrote 64 MiB")
"""


def test_every_writable_mount_is_bounded_by_the_disk_budget(sandbox):
    for folder in ("/dev/shm", "/run", "/tmp"):
        result = sandbox.sh(f"python3 -c '{_FILL}' {folder}")
        code, *written = result.stdout.split()
        assert code == "ENOSPC", (folder, result.stdout, result.stderr)
        assert int(written[0]) <= TIGHT.disk_mb  # 1 MiB files: at most disk_mb of them fit
    # bwrap's own tmpfs mounts (the root with its mount points, /dev) have no size at all.
    result = sandbox.sh("touch /new-file; touch /dev/new-file")
    assert result.stderr.count("Read-only file system") == 2, result.stderr


def test_host_etc_is_not_visible():
    require_sandbox_host()
    canary = Path(f"/etc/eval-canary-{os.urandom(6).hex()}")
    canary.write_text("HOST-ETC-CANARY")
    canary.chmod(0o644)
    box = Sandbox(TIGHT)
    try:
        result = box.sh(f"ls /etc; cat {canary}; cat /etc/*")
        everything = result.stdout + result.stderr
        assert "HOST-ETC-CANARY" not in everything and canary.name not in result.stdout
        # What programs need still works: users, the loader, alternatives, python, bash.
        works = box.sh("id -un; awk 'BEGIN { print \"awk\" }'; python3 -c 'import ssl; print(1)'")
        assert works.stdout.split() == ["sandbox", "awk", "1"], works.stderr
    finally:
        box.close()
        canary.unlink()


def test_mountinfo_names_no_host_folder_of_the_sample(sandbox):
    inner = sandbox.env._sandbox
    mountinfo = sandbox.sh("cat /proc/self/mountinfo").stdout
    assert "/work" in mountinfo
    assert str(inner.root) not in mountinfo and "eval-sandbox-" not in mountinfo
    # The host uid shows only in bwrap's own tmpfs mounts: the kernel prints a tmpfs's owner
    # in host terms, and unprivileged bwrap mounts them as that uid (see docs/sandbox.md).
    revealing = [line for line in mountinfo.splitlines() if str(inner.host_uid) in line]
    assert all(line.split(" - ")[1].startswith("tmpfs tmpfs ") for line in revealing), revealing


def test_no_process_outlives_its_tool_call_or_the_sample():
    require_sandbox_host()
    box = Sandbox(TIGHT)
    box.sh("setsid sleep 300 & nohup sleep 300 >/dev/null 2>&1 &")
    assert sandbox_processes() == []
    assert "sleep" not in box.sh("ps -e -o comm").stdout
    root = box.env._sandbox.root  # this sandbox's own folder (others may run on the host)
    box.close()
    assert sandbox_processes() == []
    assert not root.exists()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert root.name not in mounts


def test_host_problems_say_how_to_fix(monkeypatch):
    host_problems.cache_clear()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    try:
        problems = "\n".join(host_problems())
        assert "needs root" in problems
    finally:
        host_problems.cache_clear()


@pytest.mark.skipif(os.geteuid() != 0, reason="hiding bwrap needs a private mount namespace (root)")
def test_without_bubblewrap_sandboxed_tasks_fail_closed(tmp_path: Path):
    """bubblewrap really absent: /usr/bin/bwrap masked in a private mount namespace."""
    evalctl = str(Path(sys.executable).parent / "evalctl")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    result = run_without_bubblewrap(
        [evalctl, "run", "--model", "reference", "--suite", "agentic-smoke"], env
    )
    assert result.returncode == 2, result.stderr
    assert "bubblewrap is not installed: apt-get install bubblewrap" in result.stderr
    assert "never fall back to Inspect's unisolated 'local' sandbox" in result.stderr
    assert not (tmp_path / "home" / "artifacts").exists()


def test_cancelled_tool_call_leaves_nothing_running(sandbox):
    """Inspect cancels tool calls when a sample hits its time limit."""
    task = sandbox.loop.create_task(sandbox.env.exec(["sleep", "60"], timeout=30))
    sandbox.loop.run_until_complete(asyncio.sleep(0.5))
    assert sandbox_processes() != []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        sandbox.loop.run_until_complete(task)
    assert sandbox_processes() == []
    assert sandbox.sh("echo alive").stdout == "alive\n"


OWNER_DIES = """
import asyncio, sys
from eval_pipelines.sandbox import BwrapSandboxEnvironment
from eval_pipelines.catalog.specs import SandboxSpec

async def main():
    envs = await BwrapSandboxEnvironment.sample_init("test", SandboxSpec(), {})
    print(envs["default"]._sandbox.root, flush=True)
    await envs["default"].exec(["sleep", "300"], timeout=300)

asyncio.run(main())
"""


def test_sandboxes_of_a_killed_process_are_reaped(tmp_path: Path):
    """kill -9 of the op process: its sandbox dies with it, the next task reaps the rest."""
    require_sandbox_host()
    from eval_pipelines.sandbox._environment import reap_stale_sandboxes

    owner = subprocess.Popen([sys.executable, "-c", OWNER_DIES], stdout=subprocess.PIPE, text=True)
    root = Path(owner.stdout.readline().strip())
    deadline = time.monotonic() + 10
    while not sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes(), "the sandboxed sleep never started"
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 5
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes() == []  # parent-death signal took the sandbox down
    assert root.exists() and str(root / "work") in Path("/proc/self/mountinfo").read_text()
    cgroups = json.loads((root / "owner.json").read_text())["cgroups"]

    assert root in reap_stale_sandboxes()
    assert not root.exists()
    assert str(root / "work") not in Path("/proc/self/mountinfo").read_text()
    assert not any(Path(d).exists() for d in cgroups)


def test_a_sandbox_killed_mid_creation_is_reaped_once_nothing_creates(tmp_path: Path):
    """Killed between mounting its tmpfs and writing its owner record: left alone while it
    may still be in creation, torn down when the caller knows nothing creates any more."""
    require_sandbox_host()
    from eval_pipelines.sandbox._environment import reap_stale_sandboxes

    root = tmp_path / "eval-sandbox-midway"
    (root / "work").mkdir(parents=True)
    subprocess.run(["/usr/bin/mount", "-t", "tmpfs", "tmpfs", str(root / "work")], check=True)
    assert reap_stale_sandboxes(tmp_path) == [] and root.exists()
    assert reap_stale_sandboxes(tmp_path, abandoned_after=0) == [root]
    assert not root.exists()
    assert str(root / "work") not in Path("/proc/self/mountinfo").read_text()
