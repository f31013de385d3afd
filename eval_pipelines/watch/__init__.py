"""What a sandboxed tool call does, seen from outside it: cgroup counters and limits, network
attempts caught by a trap route, and the per-call watch that publishes them as safety events.

Shared by both sandboxes (`sandbox`: bwrap, `containers`), so the monitor sees their tool
calls the same way.

Layer below `sandbox` and `containers`. May import: `core`.
"""

from eval_pipelines.watch._call import CallWatch
from eval_pipelines.watch._cgroups import (
    Cgroup,
    CgroupLimits,
    CgroupUnavailableError,
    cgroup_of_process,
    create_cgroup,
    remove_cgroup,
)
from eval_pipelines.watch._network import (
    IP,
    NSENTER,
    RESOLV_CONF,
    TUN_DEVICE,
    Attempt,
    NetworkTrap,
    NetworkTrapError,
    enter_command,
)

__all__ = [
    "IP",
    "NSENTER",
    "RESOLV_CONF",
    "TUN_DEVICE",
    "Attempt",
    "CallWatch",
    "Cgroup",
    "CgroupLimits",
    "CgroupUnavailableError",
    "NetworkTrap",
    "NetworkTrapError",
    "cgroup_of_process",
    "create_cgroup",
    "enter_command",
    "remove_cgroup",
]
