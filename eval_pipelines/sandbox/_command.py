"""The command line that starts one exec inside a bubblewrap sandbox.

    sh (as root: join the sandbox's cgroups)
      -> nsenter (as root: join the exec's trap network namespace, see _network.py)
      -> prlimit (CPU time, file size, processes, no core dumps)
      -> setpriv (the sandbox's own unprivileged host uid, no capabilities, no_new_privs)
      -> bwrap (new user/pid/ipc/uts/cgroup/mount namespaces in that network namespace,
                minimal read-only root
                and /etc, size-limited tmpfs /tmp, /run and /dev/shm, the sample's work dir,
                cleared environment, seccomp filter, no nested user namespaces)
      -> the command

Every exec gets fresh namespaces: when it ends, its pid namespace dies and takes every
process it started with it, so nothing an agent starts outlives its tool call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from eval_pipelines.watch import enter_command

SANDBOX_UID = 1000
WORK_DIR = "/work"
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"

# Host tools, by absolute path: nothing the sandbox's PATH could shadow runs as root.
SH, PRLIMIT, SETPRIV = "/bin/sh", "/usr/bin/prlimit", "/usr/bin/setpriv"

# Joins each cgroup given before `--`, then execs the rest (exit 125: could not join).
_ENTER = 'for f; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; done; while [ "$1" != -- ]; do shift; done; shift; exec "$@"'

# Top-level system folders a tool may need, bound read-only; nothing else of the host
# (no /home, /root, /var, /opt, /srv, /run, /tmp, and only the /etc below) is visible.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

# What programs read from the host's /etc (the dynamic loader, Debian's alternatives that
# /usr/bin links through, time zone, bash and python start-up, CA certificates, service
# names), mirrored read-only when present. Everything else there (world-readable config
# included) stays invisible; passwd, group, hosts, hostname and nsswitch.conf are generated.
HOST_ETC = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "timezone",
    "mtab", "os-release", "debian_version", "services", "protocols", "bash.bashrc", "profile",
    "inputrc", "ssl/certs", "ssl/openssl.cnf", "python3", *(
        p.name for p in sorted(Path("/etc").glob("python3.*"))
    ),
)  # fmt: skip
ETC_BYTES = 1 << 20
NPROC_SLACK = 4


@dataclass(frozen=True)
class ExecLimits:
    cpu_seconds: int
    file_bytes: int
    processes: int
    tmpfs_bytes: int  # each per-call tmpfs: /tmp, /run, /dev/shm


def memory_file(name: str, data: bytes) -> int:
    """An in-memory file holding `data`, for bwrap's FD arguments (caller closes).

    Nothing on the host's disk, so nothing in the sandbox's mountinfo names a host path.
    """
    fd = os.memfd_create(name)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _mirror(paths: list[Path]) -> list[str]:
    """Bind host paths read-only at the same place (symlinks recreated as symlinks)."""
    args: list[str] = []
    for path in paths:
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), str(path)]
        elif path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _etc(files: dict[str, int]) -> list[str]:
    """A read-only /etc of its own: generated `files` (name -> fd) and the HOST_ETC subset."""
    generated = [
        arg
        for name, fd in files.items()
        for arg in ("--perms", "0644", "--file", str(fd), f"/etc/{name}")
    ]
    # Parents of nested entries (ssl/certs), which bwrap would otherwise create as 0700.
    parents = sorted({str(Path("/etc", name).parent) for name in HOST_ETC if "/" in name})
    return [
        "--size", str(ETC_BYTES), "--tmpfs", "/etc",
        *[arg for parent in parents for arg in ("--perms", "0755", "--dir", parent)],
        *generated,
        *_mirror([Path("/etc", name) for name in HOST_ETC]),
        "--remount-ro", "/etc",
    ]  # fmt: skip


def bwrap_command(
    *,
    bwrap: str,
    host_uid: int | None,
    cgroup_procs: list[Path],
    limits: ExecLimits,
    work_dir: Path,
    etc_files: dict[str, int],
    seccomp_fd: int,
    netns_fd: int,
    command: list[str],
    cwd: str,
    env: dict[str, str],
) -> list[str]:
    """argv for one exec; `host_uid` None means we are already unprivileged.

    `etc_files` maps /etc names to fds of their generated content; like `seccomp_fd` and
    `netns_fd` (the trap network namespace), the caller passes them to the child and closes
    them.
    """
    enter = [SH, "-c", _ENTER, "sandbox-enter", *map(str, cgroup_procs), "--"]
    rlimits = [
        PRLIMIT,
        # SIGXCPU at the soft limit (the shell says "CPU time limit exceeded"), SIGKILL 1 s on.
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
        f"--fsize={limits.file_bytes}",
        # A little above the cgroup's pids.max, so the cgroup refuses first and counts it
        # (pids.events), which is how a process-limit hit is reported; the rlimit stays a
        # backstop should the cgroup fail.
        f"--nproc={limits.processes + NPROC_SLACK}",
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
        "--share-net",  # the trap namespace joined above: loopback and trap0 only
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
        *_mirror([Path(d) for d in SYSTEM_DIRS]),
        *_etc(etc_files),
        "--proc", "/proc",
        # --dev's own tmpfs has no size: read-only, with a sized tmpfs for /dev/shm.
        "--dev", "/dev",
        "--size", str(limits.tmpfs_bytes), "--tmpfs", "/dev/shm",
        "--remount-ro", "/dev",
        "--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp",
        "--size", str(limits.tmpfs_bytes), "--tmpfs", "/run",
        "--bind", str(work_dir), WORK_DIR,
        # bwrap's root tmpfs (mount points, symlinks) has no size: nothing may write there.
        "--remount-ro", "/",
        "--chdir", cwd,
        "--seccomp", str(seccomp_fd),
        "--",
        *command,
    ]  # fmt: skip
    return enter + enter_command(netns_fd) + rlimits + drop + sandbox
