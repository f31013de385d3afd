"""Which sandbox backend runs agents' tool calls; chosen per deployment.

- `bwrap` (local default): bubblewrap namespaces, cgroups, rlimits and seccomp on this host.
- `none`: no isolating backend; sandboxed tasks fail closed.

Tasks that declare their own sandbox (Inspect's docker: compose files, Dockerfiles) run in
the container sandbox instead, on the `containers` runtime (runc, or gVisor's runsc), or on
a cluster through inspect-k8s-sandbox (`k8s`).

Inspect's own `local` sandbox is never offered: it runs tool calls on the host.

Every process that loads the code location builds this resource, most never run an
evaluation: Inspect is imported only when a task's sandbox is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from dagster import ConfigurableResource
from pydantic import Field

from eval_pipelines.catalog.specs import SandboxMaxima, SandboxSpec

if TYPE_CHECKING:
    from inspect_ai.util import SandboxEnvironmentSpec

_SETUP_HINTS = {
    "none": "this deployment has no isolating sandbox backend (sandbox backend 'none'); "
    "use the 'bwrap' backend (the local default) or run a suite without sandboxed tasks",
}


class SandboxBackend(ConfigurableResource):
    backend: Literal["bwrap", "none"] = "bwrap"
    containers: Literal["runc", "runsc", "k8s", "off"] = Field(
        default="runc",
        description="Where tasks that declare their own sandbox (Inspect's docker: compose "
        "files, Dockerfiles) run: the local container sandbox on `runc` or `runsc` (gVisor), "
        "`k8s` (a cluster, through inspect-k8s-sandbox, pods under gVisor), or `off` (refused).",
    )
    maxima: dict[str, float] = Field(
        default_factory=dict,
        description="Overrides of the platform's sandbox ceilings (SandboxMaxima fields).",
    )

    @property
    def ceilings(self) -> SandboxMaxima:
        return SandboxMaxima(**self.maxima)

    def problems(self) -> list[str]:
        """Why this backend cannot isolate a sandbox here (empty: it can)."""
        if self.backend == "none":
            return [_SETUP_HINTS["none"]]
        from eval_pipelines.sandbox import host_problems

        return list(host_problems())

    def container_problems(self) -> list[str]:
        """Why the container sandbox cannot run tasks here (empty: it can)."""
        if self.containers == "off":
            return ["this deployment's container sandbox is off (SandboxBackend containers='off')"]
        from eval_pipelines.containers import engine_problems, kubernetes_problems

        if self.containers == "k8s":
            return kubernetes_problems()
        return engine_problems(self.containers)

    def environment(self, spec: SandboxSpec) -> SandboxEnvironmentSpec:
        """The Inspect sandbox for a task; call only when `problems()` is empty."""
        from inspect_ai.util import SandboxEnvironmentSpec

        return SandboxEnvironmentSpec(self.backend, spec)
