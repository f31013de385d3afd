"""Per-sandbox cgroups: memory (swap included), process count and CPU rate.

cgroup v2 is used where the process's own cgroup can delegate the memory and pids
controllers to a child; otherwise cgroup v1 hierarchies (hybrid hosts such as ours). If
neither can apply the limits, `create_cgroup` raises: the sandbox must not start.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CPU_PERIOD_US = 100_000


class CgroupUnavailableError(RuntimeError):
    """No cgroup hierarchy can enforce the sandbox's limits here."""


@dataclass(frozen=True)
class CgroupLimits:
    memory_bytes: int
    pids: int
    cpu_cores: float


def _cgroup_paths(pid: int | str = "self") -> dict[str, str]:
    """Controller (or '' for v2) -> a process's cgroup path, from /proc/PID/cgroup."""
    paths = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _mounts() -> dict[str, Path]:
    """Controller (or '' for the v2 hierarchy) -> mount point, from /proc/self/mountinfo."""
    mounts: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        fstype, options = fields[separator + 1], fields[separator + 3].split(",")
        mount_point = Path(fields[4])
        if fstype == "cgroup2":
            mounts.setdefault("", mount_point)
        elif fstype == "cgroup":
            for option in options:
                mounts.setdefault(option, mount_point)
    return mounts


def _write(path: Path, value: str) -> None:
    path.write_text(value)


class Cgroup:
    """One sandbox's cgroup directories (one for v2, one per controller for v1)."""

    def __init__(
        self,
        version: int,
        dirs: list[Path],
        memory_dir: Path,
        pids_dir: Path,
        cpu_time_dir: Path | None = None,
    ):
        self.version = version
        self.dirs = dirs
        self._memory_dir = memory_dir
        self._pids_dir = pids_dir
        self._cpu_time_dir = cpu_time_dir

    @property
    def procs_files(self) -> list[Path]:
        """Files a process writes its pid to, to join every controller of this cgroup."""
        return [d / "cgroup.procs" for d in self.dirs]

    def counters(self) -> dict[str, int]:
        """Times the memory limit killed a process and the process limit refused a fork."""
        if self.version == 2:
            memory = _keyed(self._memory_dir / "memory.events")
            return {
                "oom_kill": memory.get("oom_kill", 0),
                "pids_max": _keyed(self._pids_dir / "pids.events").get("max", 0),
            }
        oom = _keyed(self._memory_dir / "memory.oom_control").get("oom_kill", 0)
        return {"oom_kill": oom, "pids_max": _keyed(self._pids_dir / "pids.events").get("max", 0)}

    def usage(self) -> dict[str, float]:
        """What the sandbox uses now: memory with swap (bytes), processes, CPU time (s).

        Cheap enough (a few small reads) to sample at 10 Hz while a call runs.
        """
        if self.version == 2:
            memory = _number(self._memory_dir / "memory.current") + _number(
                self._memory_dir / "memory.swap.current"
            )
            cpu = _keyed(self._memory_dir / "cpu.stat").get("usage_usec", 0) / 1e6
        else:
            memory = _number(self._memory_dir / "memory.memsw.usage_in_bytes") or _number(
                self._memory_dir / "memory.usage_in_bytes"
            )
            cpu = _number(self._cpu_time_dir / "cpuacct.usage") / 1e9 if self._cpu_time_dir else 0.0
        return {
            "memory_bytes": memory,
            "pids": _number(self._pids_dir / "pids.current"),
            "cpu_seconds": round(cpu, 3),
        }

    def pids(self) -> set[int]:
        return cgroup_pids(self.dirs)

    def kill_all(self) -> None:
        kill_cgroup(self.dirs)

    def remove(self) -> None:
        remove_cgroup(self.dirs)


def cgroup_of_process(pid: int) -> Cgroup:
    """The cgroup another manager (a container engine) put `pid` in, to read its counters.

    v1 where the process has a memory cgroup there (hybrid hosts such as ours), else v2.
    Raises CgroupUnavailableError when the process is gone or its cgroup cannot be found.
    """
    try:
        paths, mounts = _cgroup_paths(pid), _mounts()
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise CgroupUnavailableError(f"process {pid} is gone: no cgroup to read") from exc
    if "memory" in paths and "memory" in mounts and "pids" in mounts:
        dirs = {
            controller: mounts[controller] / paths.get(controller, "/").lstrip("/")
            for controller in ("memory", "pids", "cpuacct")
            if controller in mounts
        }
        found: Cgroup = Cgroup(
            1, list(dict.fromkeys(dirs.values())), dirs["memory"], dirs["pids"], dirs.get("cpuacct")
        )
    elif "" in paths and "" in mounts:
        directory = mounts[""] / paths[""].lstrip("/")
        found = Cgroup(2, [directory], directory, directory)
    else:
        raise CgroupUnavailableError(f"no cgroup hierarchy holds the memory of process {pid}")
    missing = [str(d) for d in found.dirs if not d.is_dir()]
    if missing:
        raise CgroupUnavailableError(f"the cgroup of process {pid} is not at {', '.join(missing)}")
    return found


def cgroup_pids(dirs: list[Path]) -> set[int]:
    found: set[int] = set()
    for directory in dirs:
        try:
            found |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
        except FileNotFoundError:
            pass
    return found


def kill_cgroup(dirs: list[Path], attempts: int = 50) -> None:
    """SIGKILL every process in the cgroup until it is empty."""
    for _ in range(attempts):
        pids = cgroup_pids(dirs)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"processes {sorted(cgroup_pids(dirs))} survived SIGKILL in {dirs}")


def remove_cgroup(dirs: list[Path]) -> None:
    """Kill what is left and delete the cgroup's directories."""
    kill_cgroup(dirs)
    for directory in dirs:
        for _ in range(50):
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # EBUSY while the last process is being reaped
                time.sleep(0.02)


def _number(path: Path) -> int:
    """A one-number cgroup file; 0 when the kernel does not offer it."""
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return 0


def _keyed(path: Path) -> dict[str, int]:
    values = {}
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                values[key] = int(value)
    except FileNotFoundError:
        pass
    return values


V2_SANDBOX_ROOT = "eval-sandboxes"
V2_CONTROLLERS = ("cpu", "memory", "pids")


def _v2_parents() -> list[Path]:
    """Where sandbox cgroups may go, in order of preference.

    This process's own cgroup works when it was delegated to us (systemd `Delegate=yes`,
    controllers already enabled). Otherwise a dedicated cgroup at the top of the hierarchy:
    as root on a v2 host the top is exempt from the no-internal-processes rule, so its
    controllers can be handed down to `eval-sandboxes/`, which holds no process itself.
    """
    mount = _mounts().get("")
    if mount is None:
        raise CgroupUnavailableError("no cgroup v2 hierarchy is mounted")
    own = mount / _cgroup_paths().get("", "/").lstrip("/")
    top = mount / V2_SANDBOX_ROOT
    return [top] if own == mount else [own, top]


def _enable_controllers(parent: Path) -> None:
    """Hand memory, pids (and cpu where available) down to `parent`'s children."""
    available = set((parent / "cgroup.controllers").read_text().split())
    missing = {"memory", "pids"} - available
    if missing:
        raise CgroupUnavailableError(
            f"cgroup v2 at {parent} lacks the {', '.join(sorted(missing))} controller(s)"
        )
    enabled = set((parent / "cgroup.subtree_control").read_text().split())
    wanted = set(V2_CONTROLLERS) & available
    if wanted - enabled:
        try:
            _write(
                parent / "cgroup.subtree_control",
                " ".join(f"+{c}" for c in sorted(wanted - enabled)),
            )
        except OSError as exc:
            raise CgroupUnavailableError(
                f"cannot enable {', '.join(sorted(wanted - enabled))} for children of {parent}: "
                f"{exc.strerror}"
            ) from exc


def _ensure_sandbox_root(top: Path) -> None:
    if not top.is_dir():
        _enable_controllers(top.parent)
        try:
            top.mkdir(exist_ok=True)
        except OSError as exc:
            raise CgroupUnavailableError(f"cannot create {top}: {exc.strerror}") from exc


def _create_v2(name: str, limits: CgroupLimits, parent: Path) -> Cgroup:
    _enable_controllers(parent)
    child = parent / name
    try:
        child.mkdir()
    except OSError as exc:
        raise CgroupUnavailableError(
            f"cannot create a cgroup v2 child of {parent}: {exc.strerror}"
        ) from exc
    try:
        _write(child / "memory.max", str(limits.memory_bytes))
        if (child / "memory.swap.max").exists():
            _write(child / "memory.swap.max", "0")
        _write(child / "pids.max", str(limits.pids))
        if (child / "cpu.max").exists():
            _write(child / "cpu.max", f"{int(limits.cpu_cores * CPU_PERIOD_US)} {CPU_PERIOD_US}")
    except OSError as exc:
        child.rmdir()
        raise CgroupUnavailableError(
            f"cannot set cgroup v2 limits in {child}: {exc.strerror}"
        ) from exc
    return Cgroup(2, [child], child, child)


def _create_v1(name: str, limits: CgroupLimits) -> Cgroup:
    mounts, own = _mounts(), _cgroup_paths()
    missing = [c for c in ("memory", "pids") if c not in mounts]
    if missing:
        raise CgroupUnavailableError(f"no cgroup v1 {' or '.join(missing)} hierarchy is mounted")
    dirs: dict[str, Path] = {}
    try:
        for controller in ("memory", "pids", "cpu", "cpuacct"):
            if controller not in mounts:
                continue
            directory = mounts[controller] / own.get(controller, "/").lstrip("/") / name
            if directory not in dirs.values():  # cpu and cpuacct are often co-mounted
                directory.mkdir()
            dirs[controller] = directory
        memory = dirs["memory"]
        _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():
            _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        _write(dirs["pids"] / "pids.max", str(limits.pids))
        if "cpu" in dirs:
            _write(dirs["cpu"] / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(dirs["cpu"] / "cpu.cfs_quota_us", str(int(limits.cpu_cores * CPU_PERIOD_US)))
    except OSError as exc:
        for directory in set(dirs.values()):
            directory.rmdir()
        raise CgroupUnavailableError(
            f"cannot create cgroup v1 limits: {exc.strerror} ({exc.filename})"
        ) from exc
    unique = list(dict.fromkeys(dirs.values()))
    return Cgroup(1, unique, dirs["memory"], dirs["pids"], dirs.get("cpuacct"))


def _create_v2_anywhere(name: str, limits: CgroupLimits) -> Cgroup:
    problems = []
    for parent in _v2_parents():
        try:
            if parent.name == V2_SANDBOX_ROOT:
                _ensure_sandbox_root(parent)
            return _create_v2(name, limits, parent)
        except CgroupUnavailableError as exc:
            problems.append(str(exc))
    raise CgroupUnavailableError("; ".join(problems))


def create_cgroup(name: str, limits: CgroupLimits) -> Cgroup:
    """A cgroup enforcing `limits`: v2 where it can delegate, else v1; raises if neither."""
    problems = []
    for create in (_create_v2_anywhere, _create_v1):
        try:
            return create(name, limits)
        except CgroupUnavailableError as exc:
            problems.append(str(exc))
    raise CgroupUnavailableError("; ".join(problems))
