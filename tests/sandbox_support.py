"""Helpers for tests that need a host able to run bubblewrap sandboxes."""

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval_pipelines.sandbox import host_problems
from eval_pipelines.sandbox._environment import HOST_UID_RANGE, reap_stale_sandboxes


def require_sandbox_host() -> None:
    """Skip on a workstation that cannot isolate; in CI (root, bubblewrap installed) fail.

    Also reaps what dead processes left behind (as the platform does at task start), so the
    leftover checks below see only what the test itself left.
    """
    problems = host_problems()
    if problems:
        message = "host cannot run bwrap sandboxes:\n" + "\n".join(problems)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    reap_stale_sandboxes()


@contextlib.contextmanager
def private_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """TMPDIR set to a folder of this test's own under /tmp (mode 0711: each sandbox's own
    uid must reach its folder, which pytest's 0700 tmp_path forbids), so only its sandboxes
    are watched; afterwards, waits for them to end and reaps what killed runs left."""
    folder = Path(tempfile.mkdtemp(prefix="test-sandboxes-", dir="/tmp"))
    folder.chmod(0o711)
    monkeypatch.setenv("TMPDIR", str(folder))
    try:
        yield folder
    finally:
        deadline = time.monotonic() + 30
        while sandbox_processes(str(folder)) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = sandbox_processes(str(folder))
        reap_stale_sandboxes(folder, abandoned_after=0)  # the test's runs are over
        shutil.rmtree(folder, ignore_errors=True)
        assert not left, f"sandbox processes still running 30 s after the test: {left}"


def sandbox_processes(under: str | None = None) -> list[str]:
    """Processes of the sandboxes made in `under` (default: this process's TMPDIR, which
    tests/conftest.py makes private to each test process), plus any that outlived their
    sandbox (its folder gone, yet still there a second later), whoever made it.

    Other test processes' live sandboxes on a shared machine are not this test's business;
    neither is a wrapper that has not joined its sandbox's cgroup yet.
    """
    folder = Path(under or tempfile.gettempdir())
    owned = _sandbox_owners()
    found = [line for line, home in owned.items() if home == folder]
    orphans = {line for line, home in owned.items() if home is _GONE}
    if orphans:
        time.sleep(1.0)  # a sandbox being torn down right now: its processes are dying
        found += sorted(orphans & set(_sandbox_owners()))
    return found


_GONE = Path("/nonexistent-sandbox-folder")


def _sandbox_owners() -> dict[str, Path]:
    """`ps` line of each process in a sandbox cgroup -> that sandbox's folder, or _GONE."""
    lines = subprocess.run(
        ["ps", "-eo", "uid=,pid=,comm="], capture_output=True, text=True, check=True
    ).stdout
    owners = {}
    for line in lines.splitlines():
        uid, pid = (int(field) for field in line.split()[:2])
        if not HOST_UID_RANGE[0] <= uid < HOST_UID_RANGE[1]:
            continue
        try:
            groups = Path(f"/proc/{pid}/cgroup").read_text().split()
        except OSError:
            continue  # gone meanwhile
        leaves = {g.rsplit("/", 1)[-1] for g in groups if "/eval-sandbox-" in g}
        if not leaves:
            continue  # not in its sandbox's cgroup yet
        homes = [
            found.parent
            for leaf in leaves
            for found in (Path("/tmp") / leaf, *Path("/tmp").glob(f"*/{leaf}"))
            if found.exists()
        ]
        owners[line] = homes[0] if homes else _GONE
    return owners


def leftover_sandbox_dirs(under: str | None = None) -> list[str]:
    """Sandbox folders left in `under` (default: this process's TMPDIR)."""
    import tempfile
    from pathlib import Path

    folder = Path(under or tempfile.gettempdir())
    return [str(p) for p in folder.glob("eval-sandbox-*") if p.is_dir()]


def run_without_bubblewrap(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """Run argv with bubblewrap really absent: its binary masked in a private mount namespace.

    Needs root (callers skip otherwise) and bubblewrap installed to mask.
    """
    from eval_pipelines.sandbox._host import bwrap_path

    path = bwrap_path()
    if path is None:
        pytest.skip("bubblewrap is not installed here at all")
    script = f'mount --bind /dev/null {path} && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", *argv],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
