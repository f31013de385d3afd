"""Which sandbox backend runs agents' tool calls; chosen per deployment.

Each backend maps to an Inspect sandbox environment type. `none` means no isolating backend
is available: sandboxed tasks then fail closed (Inspect's `local` is never used).
"""

from typing import Literal

from dagster import ConfigurableResource

# backend name -> Inspect sandboxenv type (None: nothing isolating).
SANDBOX_BACKENDS: dict[str, str | None] = {"none": None}


class SandboxBackend(ConfigurableResource):
    backend: Literal["none"] = "none"

    @property
    def inspect_sandbox(self) -> str | None:
        return SANDBOX_BACKENDS[self.backend]
