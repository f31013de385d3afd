"""What the host needs for bubblewrap sandboxes, checked once, reported as fixes."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache

from eval_pipelines.sandbox._command import PRLIMIT, SETPRIV
from eval_pipelines.sandbox._seccomp import SeccompUnavailableError, filter_bpf
from eval_pipelines.watch import (
    IP,
    NSENTER,
    TUN_DEVICE,
    CgroupLimits,
    CgroupUnavailableError,
    create_cgroup,
)

PROBE_UID = 65533


class SandboxSetupError(RuntimeError):
    """The host cannot isolate a sandbox; the message says what is missing and how to fix it."""


def bwrap_path() -> str | None:
    return shutil.which("bwrap", path="/usr/bin:/usr/local/bin:/bin")


@cache
def host_problems() -> tuple[str, ...]:
    """Everything that stops this host from running an isolated sandbox (empty: ready)."""
    problems: list[str] = []
    bwrap = bwrap_path()
    if bwrap is None:
        problems.append(
            "bubblewrap is not installed: apt-get install bubblewrap (or run `make setup` as root)"
        )
    if os.geteuid() != 0:
        problems.append(
            "the local sandbox needs root: it starts each sandbox as its own unprivileged host "
            "uid, mounts its size-limited work dir and creates its cgroups (run the op as root, "
            "e.g. in the platform's container, or use the Kubernetes sandbox backend)"
        )
    for tool, package in (
        (PRLIMIT, "util-linux"),
        (SETPRIV, "util-linux"),
        (NSENTER, "util-linux"),
        (IP, "iproute2"),
        ("/usr/bin/mount", "mount"),
    ):
        if not os.access(tool, os.X_OK):
            problems.append(f"{tool} is missing: apt-get install {package}")
    if not os.path.exists(TUN_DEVICE):
        problems.append(
            f"{TUN_DEVICE} is missing: network attempts cannot be trapped (modprobe tun; in a "
            "container, pass the device through)"
        )
    try:
        filter_bpf()
    except SeccompUnavailableError as exc:
        problems.append(str(exc))
    if not problems:
        try:
            create_cgroup(
                f"eval-sandbox-probe-{os.getpid()}", CgroupLimits(64 << 20, 16, 1.0)
            ).remove()
        except CgroupUnavailableError as exc:
            problems.append(f"cannot limit memory and processes with cgroups: {exc}")
    if not problems:
        probe = subprocess.run(
            [SETPRIV, f"--reuid={PROBE_UID}", f"--regid={PROBE_UID}", "--clear-groups", "--",
             bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--ro-bind", "/", "/", "--", "/bin/true"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if probe.returncode != 0:
            problems.append(
                "bubblewrap cannot create namespaces as an unprivileged user "
                f"({probe.stderr.strip()}); enable unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu 24.04+ "
                "kernel.apparmor_restrict_unprivileged_userns=0)"
            )
    return tuple(problems)


def require_host() -> None:
    problems = host_problems()
    if problems:
        raise SandboxSetupError(
            "the bubblewrap sandbox cannot isolate tool calls on this host, so sandboxed tasks "
            "will not run:\n" + "\n".join(f"  - {p}" for p in problems)
        )
