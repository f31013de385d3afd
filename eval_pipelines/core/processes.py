"""Which process does a run's work, and is it still alive: identities that survive pid reuse."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group `pgid` is still running (a member we may
    not signal counts as running)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal: still running
        pass
    return True


def start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat): tells a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return None


def session_members(sid: int) -> set[int]:
    """The processes of session `sid` (pids and sid as this pid namespace sees them)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name is in parentheses and may itself hold spaces or parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if int(fields[3]) == sid:
            members.add(int(stat.parent.name))
    return members


@cache
def boot_id() -> str:
    """This kernel's boot id: a pid recorded before a reboot names no process after it."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class ProcessIdentity:
    """A process named by host, boot, pid and start time, storable as a Dagster run tag."""

    host: str
    boot: str
    pid: int
    start: str | None

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        return cls(host=socket.gethostname(), boot=boot_id(), pid=pid, start=start_time(pid))

    @classmethod
    def current(cls) -> ProcessIdentity:
        return cls.of(os.getpid())

    @classmethod
    def from_tag(cls, value: str | None) -> ProcessIdentity | None:
        if not value:
            return None
        try:
            return cls(**json.loads(value))
        except (TypeError, ValueError):
            return None

    def to_tag(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def is_local(self) -> bool:
        """On this host since its last boot, so /proc can say whether it lives."""
        return self.host == socket.gethostname() and self.boot == boot_id()

    def alive(self) -> bool:
        """Only meaningful when `is_local`; a zombie counts as dead."""
        if start_time(self.pid) != self.start or self.start is None:
            return False
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"
