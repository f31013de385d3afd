"""Local sandboxes for agents' tool calls: bubblewrap, cgroups, rlimits and seccomp.

`bwrap` is registered with Inspect as a sandbox environment. It fails closed: when the
host cannot isolate (no bubblewrap, no cgroups, no user namespaces, not root), sandboxed
samples error with `SandboxSetupError`, which lists what is missing and how to fix it.

Layer 3. May import: `core`, `catalog`; not `scripted` or `execution`, its siblings.
"""

from eval_pipelines.sandbox._environment import BwrapSandboxEnvironment
from eval_pipelines.sandbox._host import SandboxSetupError, host_problems, require_host

__all__ = ["BwrapSandboxEnvironment", "SandboxSetupError", "host_problems", "require_host"]
