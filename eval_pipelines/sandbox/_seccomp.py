"""The sandbox's seccomp filter: deny the syscalls an escape or a host attack needs.

An allow-by-default filter with a deny list (EPERM), in the spirit of Docker's default
profile: namespaces and mounts (no nested sandboxes to escape through), tracing and
cross-process memory access, kernel modules and keys, BPF and perf, io_uring, clock and
reboot. Compiled once per process with libseccomp and handed to bubblewrap as BPF.
"""

from __future__ import annotations

import errno
import os
from functools import cache

from eval_pipelines.sandbox._command import memory_file

DENIED_SYSCALLS: tuple[str, ...] = (
    # namespaces, mounts, root changes
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # tracing and other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # kernel attack surface
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "init_module",
    "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "fanotify_init",
    # host state
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "iopl", "ioperm", "vhangup", "personality",
)  # fmt: skip

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NAMESPACE_FLAGS = (
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
)


class SeccompUnavailableError(RuntimeError):
    """libseccomp is missing or cannot build a filter for this architecture."""


@cache
def filter_bpf() -> bytes:
    """The compiled BPF program (built once per process)."""
    try:
        import pyseccomp as seccomp

        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        for name in DENIED_SYSCALLS:
            try:
                rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
            except (RuntimeError, ValueError, OSError):
                continue  # not a syscall on this architecture
        # clone() creating namespaces; clone3 hides its flags in memory, so refuse it and
        # let libc fall back to clone(), which these rules can inspect.
        for flag in CLONE_NAMESPACE_FLAGS:
            rules.add_rule(
                seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag)
            )
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        fd = os.memfd_create("seccomp-export")
        with os.fdopen(fd, "w+b") as exported:
            rules.export_bpf(exported)
            exported.seek(0)
            return exported.read()
    except (ImportError, OSError, RuntimeError) as exc:
        raise SeccompUnavailableError(
            f"cannot build the seccomp filter ({exc}); install libseccomp2 (Debian: "
            "apt-get install libseccomp2)"
        ) from exc


def filter_fd() -> int:
    """A fresh in-memory file holding the filter, for bwrap's `--seccomp FD` (caller closes)."""
    return memory_file("eval-sandbox-seccomp", filter_bpf())
