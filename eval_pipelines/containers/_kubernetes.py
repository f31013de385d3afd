"""At scale: a compose task runs through `inspect-k8s-sandbox` (the field's Kubernetes
sandbox), its services as pods of the package's own `agent-env` Helm chart.

The chart's values come from the package's own compose converter, with the platform's
promises laid over them: every pod under the `gvisor` RuntimeClass, no egress at all (the
chart's network policy with no allowed domain, entity or CIDR), no service-account token,
and the suite's memory, CPU and disk limits (each the lower of the compose file's and the
suite's). The values are validated offline against the chart's own JSON schema before the
task runs: a task that asks for more (egress, a build the cluster cannot pull) is refused
naming what it asked for. Rendering the chart into pods needs `helm`, which the package
calls at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from eval_pipelines.catalog.specs import SandboxSpec
from eval_pipelines.containers._compose import ComposeError, load_project

RUNTIME_CLASS = "gvisor"
_EGRESS_KEYS = ("allowDomains", "allowDomainsPorts", "allowEntities", "allowCIDR")


def _chart() -> Path:
    import k8s_sandbox

    return Path(k8s_sandbox.__file__).parent / "resources" / "helm" / "agent-env"


@cache
def _schema() -> dict[str, Any]:
    return json.loads((_chart() / "values.schema.json").read_text())


@cache
def _chart_defaults() -> dict[str, Any]:
    return yaml.safe_load((_chart() / "values.yaml").read_text())


def _with_defaults(defaults: Any, values: Any) -> Any:
    """What helm validates: the chart's defaults with the values over them (maps merge,
    everything else is replaced)."""
    if isinstance(defaults, dict) and isinstance(values, dict):
        merged = dict(defaults)
        for key, value in values.items():
            merged[key] = _with_defaults(defaults.get(key), value)
        return merged
    return values


def kubernetes_values(file: Path, limits: SandboxSpec) -> dict[str, Any]:
    """The `agent-env` values a compose file runs with at scale; `ComposeError` if the
    platform will not run it so, or if the values break the chart's schema."""
    from k8s_sandbox.compose._converter import (
        ComposeConverterError,
        convert_compose_to_helm_values,
    )

    project = load_project(file)  # the platform's own refusals first (privileged, host paths)
    for service in project.services:
        if service.image is None:
            raise ComposeError(
                f"{file}: service {service.name!r} is built from a Dockerfile; a cluster pulls "
                "every image from its registry: build it, push it there and name it in `image:`"
            )
    try:
        values = convert_compose_to_helm_values(file)
    except ComposeConverterError as exc:
        raise ComposeError(f"{file}: inspect-k8s-sandbox cannot convert it: {exc}") from exc
    asked = {key: values[key] for key in _EGRESS_KEYS if values.get(key)}
    if asked:
        raise ComposeError(
            f"{file}: asks for egress ({asked}); the platform's sandboxes reach nothing beyond "
            "the sample's own services"
        )
    values.update({key: [] for key in _EGRESS_KEYS})
    values["automountServiceAccountToken"] = False
    for declared in project.services:
        # The converter names the agent's service `default`, as Inspect addresses it.
        name = declared.name if declared.name in values["services"] else "default"
        service = values["services"][name]
        quantities = {
            "memory": f"{declared.memory_within(limits) >> 20}Mi",
            "cpu": f"{declared.cpus_within(limits):g}",
            "ephemeral-storage": f"{limits.disk_mb}Mi",
        }
        service["resources"] = {"limits": quantities, "requests": dict(quantities)}
        service["runtimeClassName"] = RUNTIME_CLASS
    try:
        jsonschema.validate(_with_defaults(_chart_defaults(), values), _schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the values"
        raise ComposeError(
            f"{file}: its values break the agent-env chart's schema at {where}: {exc.message}"
        ) from exc
    return values


def kubernetes_values_file(file: Path, limits: SandboxSpec) -> Path:
    """`kubernetes_values` written where the sandbox reads them, named by their content."""
    text = yaml.safe_dump(kubernetes_values(file, limits), sort_keys=True)
    directory = Path(tempfile.gettempdir()) / "eval-k8s-values"
    directory.mkdir(exist_ok=True)
    path = directory / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.yaml"
    if not path.exists():
        path.write_text(text)
    return path


def kubernetes_problems() -> list[str]:
    """Why compose tasks cannot run on a cluster from here (empty: they can)."""
    problems = []
    if shutil.which("helm") is None:
        problems.append(
            "helm is not on PATH: inspect-k8s-sandbox installs each sample's pods with it"
        )
    config = Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config"))
    if "KUBERNETES_SERVICE_HOST" not in os.environ and not config.is_file():
        problems.append(
            f"no cluster to run on: neither in a pod (KUBERNETES_SERVICE_HOST) nor a kubeconfig "
            f"at {config}"
        )
    return problems
