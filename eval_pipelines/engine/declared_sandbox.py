"""What sandbox an Inspect task declares for itself, and what of it `bwrap` could not give.

A third-party task says where its tools run (`sandbox="docker"` with a Dockerfile or a compose
file naming images, builds, services and users). The platform never swaps that for another
sandbox without a word: a task run without its images can score anything (a scorer that checks
for files only the image has may read their absence as success). This module reads the
declaration the way Inspect's docker sandbox resolves it, so a refusal can say exactly what
the task needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inspect_ai import Task
from inspect_ai.util import (
    ComposeConfig,
    SandboxEnvironmentSpec,
    is_compose_yaml,
    is_dockerfile,
    parse_compose_yaml,
)

from eval_pipelines.containers import COMPOSE_FILES, DOCKERFILE
from eval_pipelines.engine._private import task_run_dir

# What Inspect's docker sandbox runs when a task gives no compose file or Dockerfile.
INSPECT_DEFAULT_IMAGE = "aisiuk/inspect-tool-support"
# Stock images a task uses only for a shell and Python, which bwrap's host tools give too;
# anything else (or anything built) may carry files the task and its scorer depend on.
_GENERIC_IMAGES = ("aisiuk/inspect-tool-support", "python", "debian", "ubuntu")
# Sandboxes whose tools run on the host's own files: bwrap gives them at least as much.
_HOST_TYPES = frozenset({"local"})


@dataclass(frozen=True)
class DeclaredSandbox:
    """One sandbox a task (or one of its samples) declares."""

    type: str
    source: str
    """Where its definition comes from: a compose file, a Dockerfile, Inspect's default."""
    needs: tuple[str, ...] = ()
    """What it needs that a bwrap sandbox on the host cannot give (images, services, users)."""
    file: Path | None = None
    """The compose file or Dockerfile, where there is one."""

    @property
    def on_host(self) -> bool:
        return self.type in _HOST_TYPES

    def describe(self) -> str:
        return f"Inspect's {self.type!r} sandbox ({self.source})"


def declared_sandboxes(task: Task) -> list[DeclaredSandbox]:
    """Every distinct sandbox the task and its samples declare, in the order first seen."""
    # Each distinct declaration once: thousands of samples may share one compose file.
    specs = [task.sandbox, *(sample.sandbox for sample in task.dataset)]
    distinct = {spec_key(s): s for s in specs if s is not None}
    run_dir = Path(task_run_dir(task))
    return list(dict.fromkeys(declared_sandbox(s, run_dir) for s in distinct.values()))


def spec_key(spec: SandboxEnvironmentSpec) -> tuple[str, str]:
    """A sandbox declaration as a dict key (its config may be an unhashable model)."""
    return spec.type, repr(spec.config)


def declared_sandbox(spec: SandboxEnvironmentSpec, run_dir: Path) -> DeclaredSandbox:
    if spec.type in _HOST_TYPES:
        return DeclaredSandbox(spec.type, "the host's own files")
    config = spec.config
    if isinstance(config, ComposeConfig):
        return DeclaredSandbox(spec.type, "a compose config object", _compose_needs(config))
    if isinstance(config, str):
        path = Path(config) if Path(config).is_absolute() else run_dir / config
        return _from_file(spec.type, path.resolve())
    if config is not None:
        return DeclaredSandbox(spec.type, f"a {type(config).__name__} config", ("its config",))
    # No config: Inspect looks in the task's folder for a compose file, then a Dockerfile.
    for name in (*COMPOSE_FILES, DOCKERFILE):
        if (run_dir / name).is_file():
            return _from_file(spec.type, (run_dir / name).resolve())
    return DeclaredSandbox(spec.type, f"Inspect's default image {INSPECT_DEFAULT_IMAGE}")


def _from_file(sandbox_type: str, path: Path) -> DeclaredSandbox:
    if is_dockerfile(path.name):
        needs = (f"the image built from {path}",)
        return DeclaredSandbox(sandbox_type, f"Dockerfile {path}", needs, path)
    if is_compose_yaml(path.name):
        try:
            needs = _compose_needs(parse_compose_yaml(str(path)))
        except (OSError, ValueError) as exc:
            needs = (f"a readable compose file ({exc})",)
        return DeclaredSandbox(sandbox_type, f"compose file {path}", needs, path)
    return DeclaredSandbox(sandbox_type, f"config file {path}", (f"its config file {path}",))


def _compose_needs(config: ComposeConfig) -> tuple[str, ...]:
    needs: list[str] = []
    for name, service in config.services.items():
        if len(config.services) > 1:
            needs.append(f"service {name!r}")
        if service.build is not None:
            needs.append(f"the image built for service {name!r}")
        elif service.image is not None and not _generic(service.image):
            needs.append(f"image {service.image} (service {name!r})")
        if service.user is not None:
            needs.append(f"user {service.user!r} (service {name!r})")
    return tuple(needs)


def _generic(image: str) -> bool:
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name.removeprefix("docker.io/").removeprefix("library/") in _GENERIC_IMAGES
