"""`evalctl ui` started in the background stops, with all its children, on SIGTERM or SIGINT."""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from eval_pipelines.control.ui import descendants
from tests.services import BIN, free_port, tail

STOP_BOUND_SECONDS = 60  # the supervisor's 30 s grace + 10 s SIGKILL sweep, with slack


def start_in_background(
    home: Path, tmp_path: Path, port: int, viewer_port: int
) -> tuple[int, Path]:
    """`evalctl ui &` from a script: bash runs it with SIGINT ignored, which exec keeps."""
    log = tmp_path / "ui.log"
    script = (
        f"{BIN / 'evalctl'} ui --port {port} --log-viewer-port {viewer_port} >{log} 2>&1 & echo $!"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(home)}
    started = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    return int(started.stdout), log


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for whatever adopted it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_background_ui_stops_with_every_child_and_no_misleading_warning(
    dagster_home: Path, tmp_path: Path, stop: signal.Signals
):
    port, viewer_port = free_port(), free_port()
    pid, log = start_in_background(dagster_home, tmp_path, port, viewer_port)
    try:
        deadline = time.monotonic() + 120
        while not (
            answers(f"http://127.0.0.1:{port}/server_info")
            and answers(f"http://127.0.0.1:{viewer_port}/")
        ):
            assert alive(pid), f"evalctl ui exited early\n{tail(log)}"
            assert time.monotonic() < deadline, f"the UI did not answer\n{tail(log)}"
            time.sleep(0.5)
        tree = descendants(pid)
        # dagster dev, webserver, daemon, code server, the log viewer (and their helpers)
        assert len(tree) >= 5, tree

        os.kill(pid, stop)
        deadline = time.monotonic() + STOP_BOUND_SECONDS
        while any(map(alive, {pid, *tree})) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [p for p in {pid, *tree} if alive(p)], f"left running\n{tail(log)}"
        assert port_free(port) and port_free(viewer_port)
        assert "will not be used" not in log.read_text(), tail(log)
    finally:
        for leftover in {pid, *descendants(pid)}:
            if alive(leftover):
                os.kill(leftover, signal.SIGKILL)


def test_stopping_sweeps_orphans_in_other_sessions_that_ignore_the_signal(tmp_path: Path):
    """What run workers' sandboxes do (own session, parent gone) cannot outlive evalctl ui."""
    pid_file = tmp_path / "escaper.pid"
    escaper = (
        f"setsid bash -c 'trap \"\" TERM INT; echo $$ > {pid_file}; exec sleep 1000' & sleep 1000"
    )
    supervisor = subprocess.Popen(
        [
            str(BIN / "python"),
            "-c",
            "import sys; from pathlib import Path; from eval_pipelines.control import ui; "
            "ui.GRACE_SECONDS = 2; "
            f"sys.exit(ui.supervise({{'escaper': ['bash', '-c', {escaper!r}]}}, Path('/'), {{}}))",
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < deadline and supervisor.poll() is None
            time.sleep(0.2)
        escaped = int(pid_file.read_text())
        assert os.getsid(escaped) != os.getsid(supervisor.pid)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=STOP_BOUND_SECONDS) == 128 + signal.SIGTERM
        assert not alive(escaped)
    finally:
        supervisor.kill()
        supervisor.wait()


@pytest.mark.parametrize("taken_flag", ["--port", "--log-viewer-port"])
def test_a_port_in_use_is_refused_before_anything_starts(taken_flag: str, tmp_path: Path):
    """Another `evalctl ui` (or anything) on a port: exit 2 naming the port and the flag to
    change, instead of one server dying with a traceback and taking the other down."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        ports = {"--port": free_port(), "--log-viewer-port": free_port()}
        ports[taken_flag] = holder.getsockname()[1]
        flags = [str(x) for item in ports.items() for x in item]
        env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
        result = subprocess.run(
            [str(BIN / "evalctl"), "ui", *flags],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    port = ports[taken_flag]
    assert f"port {port} on 127.0.0.1 is in use (pass {taken_flag} to choose another)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and "Dagster UI:" not in result.stderr
    assert not (tmp_path / "home").exists(), "nothing is set up for a UI that cannot start"
