"""Which sandbox a task's tools run in, decided before anything runs, and never silently.

A task without a sandbox of its own runs in the deployment's backend (`bwrap` locally). A
task that declares one (Inspect's docker: a compose file or Dockerfile, images, services,
users) runs in the container sandbox, from its own files; in `bwrap` only by the suite's
explicit `replace_declared`, and only when it needs nothing `bwrap` cannot give.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from inspect_ai import Task
from inspect_ai.util import SandboxEnvironmentSpec

from eval_pipelines.catalog.spec_files import SpecError
from eval_pipelines.catalog.specs import SandboxSpec, SuiteSpec, TaskSpec
from eval_pipelines.engine._private import task_run_dir
from eval_pipelines.engine.declared_sandbox import (
    DeclaredSandbox,
    declared_sandbox,
    declared_sandboxes,
    spec_key,
)
from resources.sandbox import SandboxBackend


class SandboxUnavailableError(RuntimeError):
    """A task needs an isolated sandbox and none is available: it must not run."""


def check_isolation(
    suite: SuiteSpec, spec: TaskSpec, task: Task | None, backend: SandboxBackend
) -> str | None:
    """Fail closed: a task that needs a sandbox runs only in an isolating backend, and never
    silently in another sandbox than the one it declares. Returns the sandbox its tools will
    run in, as its results state it (None: the task has no tools to isolate).

    Inspect's built-in `local` sandbox runs tool calls on the host, so a missing or broken
    backend is an error, never a fallback.
    """
    where = f"suite {suite.name!r}, task {spec.name!r}"
    declared = [] if task is None else _containerized(task)
    if spec.sandbox is None:
        if task is not None and task_declares_sandbox(task):
            named = f" ({_listed(d.describe() for d in declared)})" if declared else ""
            raise SandboxUnavailableError(
                f"{where}: the Inspect task declares a sandbox{named} but the suite does not "
                "give it one (`sandbox:`); refusing to run its tool calls outside an isolated "
                "sandbox. Add `sandbox: true` (or sandbox limits) to the task in the suite file."
            )
        return None
    violations = backend.ceilings.violations(spec.sandbox)
    if violations:
        raise SpecError(f"{where}: sandbox {'; '.join(violations)}")
    if declared and not spec.sandbox.replace_declared:
        return _check_containers(where, declared, backend, spec.sandbox)
    needs = [need for d in declared for need in d.needs]
    if needs:
        raise SandboxUnavailableError(
            f"{where}: `replace_declared` cannot run it in '{backend.backend}': "
            f"{_listed(d.describe() for d in declared)} needs {_listed(needs, 8)}, which a "
            f"'{backend.backend}' sandbox on this host cannot give"
        )
    problems = backend.problems()
    if problems:
        raise SandboxUnavailableError(
            f"{where}: needs an isolated sandbox for its tool calls, but the "
            f"'{backend.backend}' sandbox backend cannot provide one here, so the task will "
            "not run (tool calls never fall back to Inspect's unisolated 'local' sandbox):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    if declared:
        return f"{backend.backend} in place of {_listed(d.describe() for d in declared)}"
    return backend.backend


def _check_containers(
    where: str, declared: list[DeclaredSandbox], backend: SandboxBackend, limits: SandboxSpec
) -> str:
    """The container sandbox can run every declared project here: its compose keys, the
    engine and runtime, and the images it names (builds happen when the task starts)."""
    from eval_pipelines.containers import (
        RUNTIME_CLASS,
        ComposeError,
        kubernetes_values,
        load_project,
        missing_images,
    )

    on_cluster = backend.containers == "k8s"
    if on_cluster:  # what the cluster would run, validated before asking for a cluster
        for sandbox in declared:
            try:
                if sandbox.file is not None:
                    kubernetes_values(sandbox.file, limits)
            except ComposeError as exc:
                raise SpecError(f"{where}: {exc}") from exc
    problems = backend.container_problems()
    if problems:
        runs_in = (
            "on the cluster (inspect-k8s-sandbox)" if on_cluster else "in the container sandbox"
        )
        instead = (
            "\nIf the task needs nothing from its image, `sandbox: {replace_declared: true}` "
            f"runs it in '{backend.backend}' instead, by the suite's choice (its results say so)."
            if not backend.problems()
            else ""
        )
        raise SandboxUnavailableError(
            f"{where}: the task declares {_listed(d.describe() for d in declared)}, which runs "
            f"{runs_in}, and that cannot run here, so the task will not run (it never runs in "
            "another sandbox without a word: its images, services and users would be dropped, "
            "and its scorer may then score anything):\n"
            + "\n".join(f"  - {p}" for p in problems)
            + instead
        )
    projects = []
    for sandbox in declared:
        if sandbox.file is None:
            raise SandboxUnavailableError(
                f"{where}: {sandbox.describe()} names no compose file or Dockerfile; the "
                "container sandbox runs a task's own files only"
            )
        if on_cluster:
            continue  # its project was read with the cluster's values, above
        try:
            projects.append(load_project(sandbox.file))
        except ComposeError as exc:
            raise SpecError(f"{where}: {exc}") from exc
    if on_cluster:
        return f"kubernetes ({RUNTIME_CLASS}): {_listed(d.source for d in declared)}"
    missing = missing_images(projects)
    if missing:
        raise SandboxUnavailableError(
            f"{where}: images not in the engine's store, and no registry is reachable: "
            f"{_listed(missing, 8)}; load each (`docker load -i FILE`) or build it from the "
            "offline base (`evalctl images build`)"
        )
    return f"container ({backend.containers}): {_listed(d.source for d in declared)}"


def run_sandbox(
    task: Task, spec: TaskSpec, backend: SandboxBackend
) -> SandboxEnvironmentSpec | None:
    """The sandbox to hand Inspect's `eval()` for a task `check_isolation` accepted.

    A task run in containers keeps its per-sample declarations, each rewritten to the
    container sandbox with its own compose file and the suite's limits (so `eval()` gets
    none: one eval-level sandbox would replace the samples' own files).
    """
    if spec.sandbox is None:
        return None
    if _containerized(task) and not spec.sandbox.replace_declared:
        _to_containers(task, spec.sandbox, backend.containers)
        return None
    return backend.environment(spec.sandbox)


def _to_containers(task: Task, limits: SandboxSpec, runtime: str) -> None:
    from eval_pipelines.containers import ContainerConfig

    run_dir = Path(task_run_dir(task))
    # Samples mostly share a few declarations (one per challenge): resolve each once.
    rewrites: dict[tuple[str, str], SandboxEnvironmentSpec] = {}

    def rewritten(spec: SandboxEnvironmentSpec | None) -> SandboxEnvironmentSpec | None:
        if spec is None:
            return None
        key = spec_key(spec)
        if key not in rewrites:
            declared = declared_sandbox(spec, run_dir)
            if declared.on_host:
                rewrites[key] = spec
            elif runtime == "k8s":
                rewrites[key] = SandboxEnvironmentSpec("k8s", _cluster_config(declared, limits))
            else:
                config = ContainerConfig(file=str(declared.file), limits=limits, runtime=runtime)
                rewrites[key] = SandboxEnvironmentSpec("container", config)
        return rewrites[key]

    task.sandbox = rewritten(task.sandbox)
    for sample in task.dataset:
        sample.sandbox = rewritten(sample.sandbox)


def _cluster_config(declared: DeclaredSandbox, limits: SandboxSpec):
    from k8s_sandbox import K8sSandboxEnvironmentConfig

    from eval_pipelines.containers import kubernetes_values_file

    assert declared.file is not None  # check_isolation refused a declaration without one
    return K8sSandboxEnvironmentConfig(values=kubernetes_values_file(declared.file, limits))


def _containerized(task: Task) -> list[DeclaredSandbox]:
    return [d for d in declared_sandboxes(task) if not d.on_host]


def task_declares_sandbox(task: Task) -> bool:
    return task.sandbox is not None or any(sample.sandbox is not None for sample in task.dataset)


def _listed(items: Iterable[str], shown: int = 3) -> str:
    """`items`, once each, the first few of a long list (a task's samples may declare many)."""
    unique = list(dict.fromkeys(items))
    more = f"; and {len(unique) - shown} more" if len(unique) > shown else ""
    return "; ".join(unique[:shown]) + more


def container_images(task: Task) -> dict[str, str]:
    """The image id of every service the task's container samples ran, keyed by project
    folder and service: with the results, a number says exactly what ran."""
    from eval_pipelines.containers import ContainerConfig, project_images

    specs = [task.sandbox, *(sample.sandbox for sample in task.dataset)]
    configs = {s.config.model_dump_json(): s.config for s in specs if s is not None}
    images = {}
    for config in configs.values():
        if isinstance(config, ContainerConfig):
            folder = Path(config.file).parent.name
            for image in project_images(config)[1].values():
                images[f"{folder}/{image.service}"] = f"{image.reference} {image.digest}"
    return dict(sorted(images.items()))
