"""At scale, compose tasks run through inspect-k8s-sandbox with the platform's promises:
gVisor, no egress, no service-account token, the suite's limits. No cluster exists here: the
values are checked offline against the package's own chart schema, and the decision (which
sandbox, or why none) is checked as `evalctl suites --check` and a run make it."""

import shutil
from pathlib import Path

import pytest
import yaml

from eval_pipelines.catalog.spec_files import SpecError
from eval_pipelines.catalog.specs import SandboxSpec, SuiteSpec, TaskSpec
from eval_pipelines.containers import ComposeError, kubernetes_values
from eval_pipelines.engine.bridge import SandboxUnavailableError, check_isolation, load_task
from eval_pipelines.engine.isolation import run_sandbox
from resources.deployments import resources_for

TASKS = Path(__file__).parent / "data" / "tasks"
CLUSTER_TASK = TASKS / "cluster_task"
LIMITS = SandboxSpec(memory_mb=512, cpu=2, disk_mb=1024)


def compose(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    return path


def test_every_pod_gets_gvisor_no_egress_no_token_and_the_suite_s_limits():
    values = kubernetes_values(CLUSTER_TASK / "compose.yaml", LIMITS)
    assert set(values["services"]) == {"default", "victim"}
    for service in values["services"].values():
        assert service["runtimeClassName"] == "gvisor"
        assert service["resources"]["limits"]["ephemeral-storage"] == "1024Mi"
    # The lower of the compose file's and the suite's: 256m and 512 MB; 2 cores and 4.
    assert values["services"]["default"]["resources"]["limits"]["memory"] == "256Mi"
    assert values["services"]["victim"]["resources"]["limits"]["cpu"] == "2"
    assert values["services"]["victim"]["image"] == "nginx:1.27"
    assert values["automountServiceAccountToken"] is False
    assert all(values[key] == [] for key in ("allowDomains", "allowEntities", "allowCIDR"))


@pytest.mark.parametrize(
    "text, refused",
    [
        # A task that asks the cluster to let it out.
        (
            "services:\n  default:\n    image: python:3.12\n"
            "x-inspect_k8s_sandbox:\n  allow_domains: [pypi.org]\n",
            "asks for egress ({'allowDomains': ['pypi.org']})",
        ),
        # A cluster pulls images: it cannot build the task's Dockerfile.
        ("services:\n  default:\n    build: .\n", "is built from a Dockerfile"),
        # What Kubernetes itself would reject at install, caught by the chart's schema.
        (
            "services:\n  default:\n    image: python:3.12\n  web_browser:\n    image: x:1\n",
            "break the agent-env chart's schema at services",
        ),
        # The platform's own refusals come first.
        (
            "services:\n  default:\n    image: x:1\n    privileged: true\n",
            "`privileged` is refused",
        ),
    ],
)
def test_what_the_platform_will_not_run_on_a_cluster_is_refused_naming_it(
    tmp_path: Path, text: str, refused: str
):
    path = compose(tmp_path, text)
    with pytest.raises(ComposeError) as error:
        kubernetes_values(path, LIMITS)
    assert str(error.value).startswith(f"{path}: ")
    assert refused in str(error.value)


def _cluster_task():
    spec = TaskSpec(name="t", task="cluster_task/task.py@cluster_task", sandbox=LIMITS)
    suite = SuiteSpec(name="s", version="1", tasks=[spec], source_dir=TASKS)
    return suite, spec, load_task(suite, spec)


def test_the_scale_deployment_runs_compose_tasks_on_the_cluster_or_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    backend = resources_for("scale")["sandbox"]
    assert backend.containers == "k8s"
    suite, spec, task = _cluster_task()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SandboxUnavailableError) as refused:
        check_isolation(suite, spec, task, backend)
    message = str(refused.value)
    assert "no cluster to run on" in message
    if shutil.which("helm") is None:
        assert "helm is not on PATH" in message
    # A compose file the cluster would refuse is named before any cluster is asked for.
    bad = compose(tmp_path, "services:\n  default:\n    build: .\n")
    bad_spec = TaskSpec(name="bad", task="bad.py@bad", sandbox=LIMITS)
    with pytest.raises(SpecError, match="is built from a Dockerfile"):
        check_isolation(suite, bad_spec, _bad_task(bad), backend)


def _bad_task(compose_file: Path):
    from inspect_ai import Task
    from inspect_ai.dataset import Sample

    return Task(dataset=[Sample(input="x")], sandbox=("docker", str(compose_file)))


def test_a_run_hands_inspect_k8s_sandbox_the_validated_values():
    suite, spec, task = _cluster_task()
    backend = resources_for("scale")["sandbox"]
    assert run_sandbox(task, spec, backend) is None  # per sample, not one for the whole eval
    declared = {task.sandbox, *(sample.sandbox for sample in task.dataset)} - {None}
    assert len(declared) == 1
    (sandbox,) = declared
    assert sandbox.type == "k8s"
    written = yaml.safe_load(Path(sandbox.config.values).read_text())
    assert written == kubernetes_values(CLUSTER_TASK / "compose.yaml", LIMITS)
