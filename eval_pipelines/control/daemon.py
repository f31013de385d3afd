"""A private Dagster daemon for `evalctl run` when no daemon serves the instance.

`evalctl run` submits to the run queue, which only a daemon drains. When none is alive
(no fresh queue heartbeat), evalctl starts `python -m eval_pipelines.control.daemon`: a small
supervisor that runs `dagster-daemon run` over workspace.yaml for as long as some
`evalctl run` is waiting on this instance, then stops it. Two locks in
`$DAGSTER_HOME/.evalctl/` make that safe:

- `daemon.lock`: held by the one supervisor alive, so two evalctl never start two daemons;
- `users.lock`: each waiting `evalctl run` holds it shared; the supervisor stops its
  daemon (and the code server it spawned) once it can take it exclusively, i.e. once the
  last evalctl has ended, however it ended (kill -9 releases its lock), and the runs in
  flight (the refreshes a new result triggers) have ended too, or at most 5 min later.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eval_pipelines.core.home import PROJECT_ROOT
from eval_pipelines.core.processes import group_alive

# The queue daemon heartbeats every 30 s; older than this means nobody drains the queue.
HEARTBEAT_STALE_SECONDS = 90
QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
_POLL_SECONDS = 0.5
_STOP_GRACE_SECONDS = 20
# Once no evalctl waits, how long the daemon may go on to let its runs in flight end.
FINISH_RUNS_SECONDS = 300
_FINISH_POLL_SECONDS = 2.0


def _lock_dir(home: Path) -> Path:
    folder = home / ".evalctl"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _try_lock(path: Path, mode: int) -> int | None:
    """An open descriptor holding `mode` on `path`, or None if someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def open_instance(home: Path):
    """The instance, created under a lock: evalctl runs started together on a fresh home
    would race to create its SQLite schema (alembic_version UNIQUE constraint)."""
    from dagster import DagsterInstance

    fd = os.open(_lock_dir(home) / "instance.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return DagsterInstance.get()
    finally:
        os.close(fd)


def queue_daemon_alive(instance) -> bool:
    """Whether some daemon (ours, `evalctl ui`'s, a deployment's) drains this queue."""
    beat = instance.get_daemon_heartbeats().get(QUEUE_DAEMON)
    return beat is not None and time.time() - beat.timestamp < HEARTBEAT_STALE_SECONDS


class DaemonLease:
    """Held by `evalctl run` while it waits: keeps a daemon draining the queue."""

    def __init__(self, home: Path):
        self._home = home
        self._folder = _lock_dir(home)
        self._users = os.open(self._folder / "users.lock", os.O_RDWR | os.O_CREAT, 0o600)
        # Blocks only while a supervisor is stopping its daemon (it then holds it exclusive).
        fcntl.flock(self._users, fcntl.LOCK_SH)
        self._supervisor: subprocess.Popen | None = None
        self.started = False

    def ensure_daemon(self, instance) -> None:
        """Start a private daemon unless one is alive, starting, or ours already."""
        if self._supervisor is not None and self._supervisor.poll() is None:
            return
        probe = _try_lock(self._folder / "daemon.lock", fcntl.LOCK_EX)
        if probe is None:
            return  # a supervisor holds it: a private daemon runs or is starting
        os.close(probe)
        if queue_daemon_alive(instance):
            return
        self._supervisor = subprocess.Popen(
            [sys.executable, "-m", "eval_pipelines.control.daemon", str(self._home)],
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self._folder / "daemon.log").open("ab"),
            start_new_session=True,
        )
        self.started = True

    def close(self) -> None:
        os.close(self._users)

    def __enter__(self) -> DaemonLease:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _die_with_parent() -> None:
    """In the daemon's child: SIGTERM when the supervisor dies, SIGINT/SIGTERM not ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the daemon's process group (daemon, its code server), SIGKILL what lingers."""
    for sig, wait in ((signal.SIGTERM, _STOP_GRACE_SECONDS), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and (proc.poll() is None or group_alive(proc.pid)):
            time.sleep(0.2)


def supervise(home: Path) -> int:
    """Run `dagster-daemon` while any `evalctl run` holds users.lock; then stop it."""
    folder = _lock_dir(home)
    owner = _try_lock(folder / "daemon.lock", fcntl.LOCK_EX)
    if owner is None:
        return 0  # another supervisor won the race
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # runs the `finally` below
    idle_since: float | None = None
    try:
        while daemon.poll() is None:
            idle = _try_lock(folder / "users.lock", fcntl.LOCK_EX)
            if idle is None:
                idle_since = None
            else:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since < FINISH_RUNS_SECONDS and _runs_in_flight():
                    # Runs this daemon started (the leaderboard and analytics refreshes a
                    # result triggers) die with it and would show as failed: let them end.
                    os.close(idle)
                    time.sleep(_FINISH_POLL_SECONDS)
                    continue
                # No evalctl waits any more; new ones block on users.lock until we are gone.
                _stop_group(daemon)
                _forget_heartbeats()
                os.close(owner)
                os.close(idle)
                return 0
            time.sleep(_POLL_SECONDS)
        return daemon.returncode or 0
    finally:
        _stop_group(daemon)


def _runs_in_flight() -> bool:
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    in_flight = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    with DagsterInstance.get() as instance:
        return instance.get_runs_count(RunsFilter(statuses=in_flight)) > 0


def _forget_heartbeats() -> None:
    """So the next evalctl does not wait 90 s on the heartbeat of a daemon we stopped."""
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        instance.wipe_daemon_heartbeats()


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1])))
