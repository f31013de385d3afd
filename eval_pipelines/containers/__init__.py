"""Container sandboxes for tasks that bring their own images: compose projects and Dockerfiles.

`container` is registered with Inspect as a sandbox environment; at scale the same compose
projects run through `inspect-k8s-sandbox` (`kubernetes_values`). It fails closed: without a
container engine, or an image it cannot find or build offline, a sample errors with
`EngineError`, which says how to provide it; a compose key it does not carry out is refused
(`ComposeError`) before anything starts.

Layer 3, beside `sandbox` (bwrap). May import: `core`, `catalog`.
"""

from eval_pipelines.containers._compose import (
    COMPOSE_FILES,
    DOCKERFILE,
    ComposeError,
    Project,
    load_project,
)
from eval_pipelines.containers._engine import (
    BASE_IMAGE,
    EngineError,
    engine_problems,
    missing_images,
)
from eval_pipelines.containers._environment import (
    ContainerConfig,
    ContainerSandboxEnvironment,
    project_images,
)
from eval_pipelines.containers._kubernetes import (
    RUNTIME_CLASS,
    kubernetes_problems,
    kubernetes_values,
    kubernetes_values_file,
)

__all__ = [
    "BASE_IMAGE",
    "RUNTIME_CLASS",
    "COMPOSE_FILES",
    "DOCKERFILE",
    "ComposeError",
    "ContainerConfig",
    "ContainerSandboxEnvironment",
    "EngineError",
    "Project",
    "engine_problems",
    "kubernetes_problems",
    "kubernetes_values",
    "kubernetes_values_file",
    "load_project",
    "missing_images",
    "project_images",
]
