"""The command line that starts one exec inside a bubblewrap sandbox.

    sh (as root: join the sandbox's cgroups)
      -> prlimit (CPU time, file size, processes, no core dumps)
      -> setpriv (the sandbox's own unprivileged host uid, no capabilities, no_new_privs)
      -> bwrap (new user/pid/net/ipc/uts/cgroup/mount namespaces, minimal read-only root,
                size-limited tmpfs /tmp, the sample's work dir, cleared environment,
                seccomp filter, no nested user namespaces)
      -> the command

Every exec gets fresh namespaces: when it ends, its pid namespace dies and takes every
process it started with it, so nothing an agent starts outlives its tool call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 1000
WORK_DIR = "/work"
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"

# Host tools, by absolute path: nothing the sandbox's PATH could shadow runs as root.
SH, PRLIMIT, SETPRIV = "/bin/sh", "/usr/bin/prlimit", "/usr/bin/setpriv"

# Joins each cgroup given before `--`, then execs the rest (exit 125: could not join).
_ENTER = 'for f; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done; while [ "$1" != -- ]; do shift; done; shift; exec "$@"'

# Top-level system folders a tool may need, bound read-only; nothing else of the host
# (no /home, /root, /var, /opt, /srv, /run, /tmp) is visible.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


@dataclass(frozen=True)
class ExecLimits:
    cpu_seconds: int
    file_bytes: int
    processes: int
    tmp_bytes: int


def _system_binds() -> list[str]:
    args: list[str] = []
    for path in map(Path, SYSTEM_DIRS):
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def bwrap_command(
    *,
    bwrap: str,
    host_uid: int | None,
    cgroup_procs: list[Path],
    limits: ExecLimits,
    work_dir: Path,
    etc_overrides: dict[str, Path],
    seccomp_fd: int,
    command: list[str],
    cwd: str,
    env: dict[str, str],
) -> list[str]:
    """argv for one exec; `host_uid` None means we are already unprivileged."""
    enter = [SH, "-c", _ENTER, "sandbox-enter", *map(str, cgroup_procs), "--"]
    rlimits = [
        PRLIMIT,
        # SIGXCPU at the soft limit (the shell says "CPU time limit exceeded"), SIGKILL 1 s on.
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
        f"--fsize={limits.file_bytes}",
        f"--nproc={limits.processes}",
        "--core=0",
        "--nofile=1024",
        "--",
    ]
    drop = (
        [
            SETPRIV,
            f"--reuid={host_uid}",
            f"--regid={host_uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
        if host_uid is not None
        else []
    )
    environment = {"PATH": SAFE_PATH, "HOME": WORK_DIR, "LANG": "C.UTF-8", "USER": "sandbox", **env}
    sandbox = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--as-pid-1",  # no bwrap init inside: the sandbox cannot read bwrap's host paths
        "--new-session",
        "--cap-drop", "ALL",
        "--uid", str(SANDBOX_UID),
        "--gid", str(SANDBOX_UID),
        "--hostname", "sandbox",
        "--clearenv",
        *[arg for key, value in environment.items() for arg in ("--setenv", key, value)],
        *_system_binds(),
        *[arg for target, source in etc_overrides.items() for arg in ("--ro-bind", str(source), target)],
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
        "--tmpfs", "/run",
        "--bind", str(work_dir), WORK_DIR,
        "--chdir", cwd,
        "--seccomp", str(seccomp_fd),
        "--",
        *command,
    ]  # fmt: skip
    return enter + rlimits + drop + sandbox
