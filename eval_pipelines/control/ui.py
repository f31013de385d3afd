"""`evalctl ui`: the Dagster UI and daemon (`dagster dev`) and Inspect's log viewer, as one.

Started with `&` from a script, a process inherits SIGINT ignored, and `dagster dev` copies
SIGINT's disposition onto SIGTERM: exec'd directly, it could be stopped by neither. So
evalctl stays as their supervisor. Its own handlers (which exec resets to the default in
each child) catch SIGINT, SIGTERM and SIGHUP; it forwards the signal to each child's
process group, and after a grace period SIGKILLs every descendant still alive. As a child
subreaper it adopts processes whose parent died first, so none escapes that sweep.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

from eval_pipelines.core.home import PROJECT_ROOT, ensure_local_home
from eval_pipelines.core.log_viewer import EVAL_LOGS, LOG_VIEWER_URL_ENV

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 30
_PR_SET_CHILD_SUBREAPER = 36


def port_problems(host: str, ports: dict[str, int]) -> list[str]:
    """Why the servers could not listen on `host` at `ports` (keyed by the flag that sets
    each): a port in use, a host this machine does not have.

    Checked before starting anything: a server that cannot bind dies with a traceback, and
    the other one is then stopped for it.
    """
    problems = []
    for flag, port in ports.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
            try:
                probe.bind((host, port))
            except OSError as exc:
                problems.append(
                    f"port {port} on {host} is in use (pass {flag} to choose another)"
                    if exc.errno == errno.EADDRINUSE
                    else f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                )
    return problems


def serve_ui(host: str, port: int, log_viewer_port: int) -> int:
    """Serve the Dagster UI and the log viewer on this project's local deployment."""
    from resources.deployments import resources_for  # Dagster's import cost, only for this command

    problems = port_problems(host, {"--port": port, "--log-viewer-port": log_viewer_port})
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2

    home = ensure_local_home()
    log_dir = Path(resources_for("local")["artifacts"].root) / EVAL_LOGS
    log_dir.mkdir(parents=True, exist_ok=True)
    # Run workers inherit this: their log links point at the viewer started here.
    env = {**os.environ}
    env.setdefault(LOG_VIEWER_URL_ENV, f"http://{host}:{log_viewer_port}")
    bin_dir = Path(sys.executable).parent  # works without activating the virtualenv
    commands = {
        "dagster dev": [
            str(bin_dir / "dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
            "-h", host, "-p", str(port),
        ],
        "inspect view": [
            str(bin_dir / "inspect"), "view", "start", "--log-dir", str(log_dir),
            "--host", host, "--port", str(log_viewer_port),
        ],
    }  # fmt: skip
    print(
        f"Dagster UI: http://{host}:{port}  Inspect log viewer: http://{host}:{log_viewer_port}"
        f" (logs in {log_dir}); SIGINT or SIGTERM stops both",
        file=sys.stderr,
        flush=True,
    )
    # In the instance folder: `dagster dev` warns that a dagster.yaml in its working
    # directory "will not be used" unless that directory is DAGSTER_HOME.
    return supervise(commands, cwd=home, env=env)


def supervise(commands: dict[str, list[str]], cwd: Path, env: dict[str, str]) -> int:
    """Run the commands until one exits or a stop signal arrives, then stop them all.

    Returns 128 + the signal's number after a requested stop, 1 if a command exited first.
    """
    _become_subreaper()
    received: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
        for sig in STOP_SIGNALS
    }
    children: dict[str, subprocess.Popen] = {}
    exited: str | None = None
    try:
        for name, command in commands.items():
            children[name] = subprocess.Popen(
                command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, process_group=0
            )
        while not received and exited is None:
            time.sleep(0.5)
            exited = next((n for n, c in children.items() if c.poll() is not None), None)
            _reap_adopted({c.pid for c in children.values()})
    finally:
        forward = received[0] if received and received[0] != signal.SIGHUP else signal.SIGTERM
        _stop(list(children.values()), forward)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if exited is not None and not received:
        code = children[exited].returncode
        print(f"evalctl ui: {exited} exited with code {code}; stopped the rest", file=sys.stderr)
        return 1
    return 128 + received[0]


def _stop(children: list[subprocess.Popen], signum: int) -> None:
    """Signal each child's group; SIGKILL every descendant left after the grace period."""
    for child in children:
        if child.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signum)
    _wait_for_descendants(children, GRACE_SECONDS)
    for pid in descendants(os.getpid()):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait_for_descendants(children, 10)
    for child in children:
        child.wait()


def _wait_for_descendants(children: list[subprocess.Popen], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while descendants(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.2)
        for child in children:
            child.poll()  # reaps it once it has exited
        _reap_adopted({c.pid for c in children})


def _become_subreaper() -> None:
    """Orphaned descendants are re-parented to us, not to init, so _stop still sees them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def descendants(root: int) -> set[int]:
    """Live (not zombie) processes below `root`."""
    table = _processes()
    tree: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - tree
        tree |= frontier
    return {pid for pid in tree if table[pid][1] != "Z"}


def _reap_adopted(own: set[int]) -> None:
    """Collect exited orphans we adopted (the Popen children are reaped by Popen)."""
    for pid, (ppid, state) in _processes().items():
        if ppid == os.getpid() and state == "Z" and pid not in own:
            with suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
