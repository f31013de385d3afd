"""Real services started for tests: an S3 API (moto_server), Dagster webserver/daemon."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from eval_pipelines.core.processes import group_alive

BIN = Path(sys.executable).parent
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"<{path.name}: missing>"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- {path.name} (last {len(text)} lines) ---\n" + "\n".join(text)


class Service:
    """A subprocess in its own session, so its whole process group can be stopped."""

    def __init__(
        self, name: str, command: list[str], log_dir: Path, env: dict[str, str] | None = None
    ):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}\n{tail(self.log)}")

    def wait_for_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"{self.name}: {url} did not answer within {timeout}s\n{tail(self.log)}")

    def terminate(self) -> None:
        """SIGTERM the whole group without waiting (`stop(signaled=True)` then waits)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, grace_seconds: float = 20, signaled: bool = False) -> None:
        """SIGTERM the whole group (code servers, run workers), SIGKILL what lingers.

        `signaled`: `terminate()` already sent the SIGTERM (stop_services does, to stop
        several services side by side); a second one could cut a graceful shutdown short.
        """
        for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10)):
            if not (signaled and sig == signal.SIGTERM):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and group_alive(self.proc.pid):
                try:
                    self.proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
            if not group_alive(self.proc.pid):
                break
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        self._out.close()


def stop_services(services: list[Service], grace_seconds: float = 20) -> None:
    """Stop them side by side: each its SIGTERM at once, then wait for all (one after the
    other, each service's wait added to the last's)."""
    for service in services:
        service.terminate()
    for service in services:
        service.stop(grace_seconds, signaled=True)


def wait_for_code_server(service: Service, port: int, timeout: float) -> None:
    """Until the code server on 127.0.0.1:`port` answers (it loads the code first)."""
    from dagster._core.errors import DagsterUserCodeUnreachableError
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.check_alive()
        try:
            client.ping("ready?")
            return
        except DagsterUserCodeUnreachableError:
            time.sleep(0.3)
    raise TimeoutError(f"{service.name}: not answering within {timeout}s\n{tail(service.log)}")


def code_server(log_dir: Path, env: dict[str, str]) -> tuple[Service, Path]:
    """One running code server for workspace.yaml's code location, and a workspace file in
    `log_dir` that points at it (a `grpc_server` entry), as `dagster dev` gives its
    webserver and daemon: they then load the location from it instead of each starting a
    code server of its own (one Python process that imports the code location, not two).
    Runs that the daemon launches are run workers of this code server."""
    import yaml

    [entry] = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    location = entry["python_module"]
    port = free_port()
    command = [
        str(BIN / "dagster"), "api", "grpc", "-m", location["module_name"],
        "--location-name", location["location_name"], "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    service = Service("code-server", command, log_dir, env)
    try:
        wait_for_code_server(service, port, timeout=180)
    except BaseException:
        service.stop()
        raise
    workspace = log_dir / "workspace.yaml"
    grpc_server = {"host": "127.0.0.1", "port": port, "location_name": location["location_name"]}
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": grpc_server}]}))
    return service, workspace


def dagster_services(log_dir: Path, port: int, env: dict[str, str]) -> list[Service]:
    """A webserver on 127.0.0.1:`port` and a daemon, both served the code location by one
    code server (`code_server`): [webserver, daemon, code server]; stop all after
    (`stop_services`)."""
    server, workspace = code_server(log_dir, env)
    started = [server]
    try:
        webserver = [
            str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1",
            "-p", str(port),
        ]  # fmt: skip
        started.insert(0, Service("webserver", webserver, log_dir, env))
        daemon = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
        started.insert(1, Service("daemon", daemon, log_dir, env))
    except BaseException:
        stop_services(started)
        raise
    return started


def private_daemons(under: Path) -> list[int]:
    """Supervisors of `evalctl run`'s private daemons (`eval_pipelines.control.daemon HOME`) still
    alive for a DAGSTER_HOME at or under `under`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"eval_pipelines.control.daemon" in command and any(
            part.startswith(str(under).encode()) for part in command
        ):
            found.append(int(proc.name))
    return found


def stop_private_daemons(under: Path, grace_seconds: float = 40) -> None:
    """SIGTERM each (it stops its daemon, code server and runs), SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10)):
        pids = private_daemons(under)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and private_daemons(under) and time.monotonic() < deadline:
            time.sleep(0.2)


@contextmanager
def moto_s3(log_dir: Path):
    """A real S3 HTTP API on loopback; yields its endpoint URL."""
    port = free_port()
    service = Service(
        "moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], log_dir
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        service.wait_for_http(f"{endpoint}/moto-api/", timeout=30)
        yield endpoint
    finally:
        service.stop()


def _postgres_bin(tool: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"))
    if not found:
        raise FileNotFoundError(
            f"PostgreSQL's {tool} is not installed (apt-get install postgresql)"
        )
    return str(found[-1])


class PostgresServer:
    """A private PostgreSQL cluster on loopback, trust auth, database `dagster`.

    Runs as the `postgres` user when we are root (PostgreSQL refuses to run as root).
    `stop()` and `start()` take it down and back up on the same data, for outage tests.
    """

    def __init__(self, folder: Path):
        import pwd

        self.folder, self.data = folder, folder / "data"
        self.host, self.port, self.user = "127.0.0.1", free_port(), "postgres"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(folder, account.pw_uid, account.pw_gid)
            self._as_postgres = [
                "setpriv",
                f"--reuid={account.pw_uid}",
                f"--regid={account.pw_gid}",
                "--init-groups",
            ]

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_postgres, *args], check=True, capture_output=True, cwd=self.folder
        )

    def init(self) -> None:
        self._run(_postgres_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user)
        self.start()
        self._run(
            _postgres_bin("createdb"), "-h", self.host, "-p", str(self.port), "-U", self.user,
            "dagster",
        )  # fmt: skip

    def start(self) -> None:
        self._run(
            _postgres_bin("pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.folder / "server.log"),
            "-o", f"-p {self.port} -k {self.folder} -c listen_addresses={self.host}", "start",
        )  # fmt: skip

    def stop(self) -> None:
        subprocess.run([*self._as_postgres, _postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=self.folder)  # fmt: skip

    def env(self) -> dict[str, str]:
        """The variables deploy/scale/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user, "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
            "DAGSTER_PG_DB": "dagster",
        }  # fmt: skip


@contextmanager
def postgres_server():
    """A running `PostgresServer`, removed afterwards."""
    import shutil
    import tempfile

    server = PostgresServer(Path(tempfile.mkdtemp(prefix="eval-pg-")))
    try:
        server.init()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


@contextmanager
def small_tmpfs(mount_point: Path, size: str = "64k"):
    """A tiny tmpfs at `mount_point`: a disk that fills up. Skips the test unless mount works."""
    import pytest

    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill_disk(folder: Path, leave_bytes: int) -> None:
    """Fill the filesystem holding `folder` until only `leave_bytes` remain free.

    Others may be writing to it at the same time: running out of space first is the point.
    """
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    try:
        (folder / ".filler").write_bytes(b"\0" * max(free - leave_bytes, 0))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
