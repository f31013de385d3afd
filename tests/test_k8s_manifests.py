"""The Kubernetes execution path, validated offline (no cluster here).

Manifests and the Job bodies dagster-k8s builds from our config are checked against the
Kubernetes 1.37 schemas (kubernetes-validate, strict: unknown fields fail); executor and
instance config against Dagster's own config schemas.
"""

import importlib
import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import configurable_class_data
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import DagsterRun
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_k8s import K8sRunLauncher, k8s_job_executor
from dagster_k8s.job import construct_dagster_k8s_job
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import pg_url_from_config
from kubernetes.client import ApiClient
from kubernetes.utils import parse_quantity

from eval_pipelines.catalog.specs import SandboxSpec
from eval_pipelines.execution.k8s import (
    EXAMPLE_EGRESS,
    MODEL_API_KEYS_SECRET,
    SANDBOX_UID,
    all_manifests,
    k8s_executor_config,
    main,
    op_k8s_tags,
    op_network_policy,
    run_launcher_config,
    sandbox_network_policy,
    sandbox_pod,
    scale_executor,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.37.0"
SCALE_DIR = PROJECT_ROOT / "deploy" / "scale"
SPECS = {
    "default": SandboxSpec(),
    "small": SandboxSpec(cpu=0.25, memory_mb=128, disk_mb=64, timeout_seconds=10),
    "big": SandboxSpec(
        image="registry.example/eval-sandbox:1.0@sha256:" + "0" * 64,
        cpu=4,
        memory_mb=8192,
        pids=1024,
        disk_mb=8192,
        timeout_seconds=3600,
    ),
}
STAGES = ["prepare", "run-task", "publish"]
PLATFORM_IMAGE = "registry.example/eval-pipelines:1.0"
INSTANCE_ENV = {
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_PG_HOST": "postgres.evals.svc",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_PORT": "5432",
    "EVAL_S3_BUCKET": "evals",
}
FAKE_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "u", "user": {"token": "t"}}],
    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "c",
}


def validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def processed(config_type: Any, config: Any) -> dict[str, Any]:
    result = process_config(config_type, config)
    assert result.success, result.errors
    return result.value


def instance_yaml() -> dict[str, Any]:
    return yaml.safe_load((SCALE_DIR / "dagster.yaml").read_text())


# --- generated manifests -------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_every_manifest_validates_strictly(spec: SandboxSpec):
    manifests = all_manifests(spec)
    assert {m["kind"] for m in manifests} == {"Pod", "NetworkPolicy", "RuntimeClass"}
    for manifest in manifests:
        validate(manifest)


def test_strict_validation_rejects_unknown_fields():
    pod = sandbox_pod(SandboxSpec(), "typo")
    pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(pod)


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_sandbox_pod_is_isolated_and_sized_by_its_spec(spec: SandboxSpec):
    pod = sandbox_pod(spec, "s1", "ns")
    pod_spec = pod["spec"]
    assert pod["metadata"]["labels"]["eval-pipelines/role"] == "sandbox"
    assert pod_spec["runtimeClassName"] == "gvisor"
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["enableServiceLinks"] is False
    assert not any(pod_spec[key] for key in ("hostNetwork", "hostPID", "hostIPC"))
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["activeDeadlineSeconds"] >= spec.timeout_seconds
    assert pod_spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": SANDBOX_UID,
        "runAsGroup": SANDBOX_UID,
        "fsGroup": SANDBOX_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    for container in pod_spec["containers"]:
        assert container["image"] == spec.image
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert "env" not in container and "envFrom" not in container
        resources = container["resources"]
        assert resources["requests"] == resources["limits"]
        assert parse_quantity(resources["limits"]["cpu"]) == Decimal(str(spec.cpu))
        assert parse_quantity(resources["limits"]["memory"]) == spec.memory_mb * 2**20
        assert parse_quantity(resources["limits"]["ephemeral-storage"]) == spec.disk_mb * 2**20
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        assert set(mounts) == {"/work", "/tmp"}
        for volume in mounts.values():
            assert parse_quantity(volume["emptyDir"]["sizeLimit"]) == spec.disk_mb * 2**20


def test_sandbox_pod_outlives_one_exec():
    spec = SandboxSpec(timeout_seconds=600)
    assert sandbox_pod(spec, "s", lifetime_seconds=60)["spec"]["activeDeadlineSeconds"] == 600
    assert sandbox_pod(spec, "s", lifetime_seconds=7200)["spec"]["activeDeadlineSeconds"] == 7200


def test_sandbox_network_policy_denies_everything_to_sandbox_pods():
    policy = sandbox_network_policy("ns")["spec"]
    pod_labels = sandbox_pod(SandboxSpec(), "s", "ns")["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["ingress"] == [] and policy["egress"] == []


def test_op_network_policy_allows_only_dns_and_the_given_services():
    policy = op_network_policy(
        "ns", ["10.1.0.0/16"], ["203.0.113.0/24"], postgres_cidrs=["10.2.0.5/32"]
    )["spec"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["ingress"] == []
    allowed = {
        (peer.get("ipBlock", {}).get("cidr", "kube-dns"), port["protocol"], port["port"])
        for rule in policy["egress"]
        for peer in rule["to"]
        for port in rule["ports"]
    }
    assert allowed == {
        ("kube-dns", "UDP", 53),
        ("kube-dns", "TCP", 53),
        ("10.1.0.0/16", "TCP", 443),
        ("203.0.113.0/24", "TCP", 443),
        ("10.2.0.5/32", "TCP", 5432),
    }


def test_op_network_policy_never_opens_a_port_to_everyone():
    # An egress rule without destinations would allow every destination.
    policy = op_network_policy("ns", [], [], postgres_cidrs=["10.2.0.5/32"])["spec"]
    assert all(rule["to"] for rule in policy["egress"])
    assert {port["port"] for rule in policy["egress"] for port in rule["ports"]} == {53, 5432}
    with pytest.raises(ValueError):
        op_network_policy("ns", ["10.1.0.0/33"], [], postgres_cidrs=[])


def test_committed_manifests_are_what_the_code_generates(tmp_path: Path):
    committed = PROJECT_ROOT / "sandbox_images" / "k8s"
    main([str(tmp_path)])
    generated = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert generated == {p.name: p.read_text() for p in committed.iterdir()}, (
        "regenerate: python -m eval_pipelines.execution.k8s sandbox_images/k8s"
    )


def test_manifest_cli_takes_the_deployments_cidrs(tmp_path: Path):
    main([str(tmp_path), "--namespace", "prod", "--model-api-cidr", "203.0.113.7/32"])
    policy = yaml.safe_load((tmp_path / "networkpolicy-op-egress.yaml").read_text())
    cidrs = {
        peer["ipBlock"]["cidr"] for rule in policy["spec"]["egress"][1:] for peer in rule["to"]
    }
    assert policy["metadata"]["namespace"] == "prod"
    assert "203.0.113.7/32" in cidrs
    assert not set(EXAMPLE_EGRESS["model_api_cidrs"]) & cidrs


def test_sandbox_image_runs_as_the_pods_user():
    dockerfile = (PROJECT_ROOT / "sandbox_images" / "sandbox" / "Dockerfile").read_text()
    user_lines = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user_lines == [f"{SANDBOX_UID}:{SANDBOX_UID}"]
    assert not any(tool in dockerfile for tool in ("curl", "wget"))


# --- pods that dagster-k8s builds ------------------------------------------------------------


@pytest.fixture
def launcher(tmp_path: Path) -> K8sRunLauncher:
    """deploy/scale/dagster.yaml's run launcher, built by dagster-k8s against a fake kubeconfig."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(FAKE_KUBECONFIG))
    config = {
        **instance_yaml()["run_launcher"]["config"],
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
    }
    return K8sRunLauncher.from_config_value(None, processed(K8sRunLauncher.config_type(), config))


def job_body(job: Any) -> dict[str, Any]:
    """A V1Job as the API server would receive it, validated strictly."""
    body = ApiClient().sanitize_for_serialization(job)
    validate(body)
    return body


def step_job(launcher: K8sRunLauncher, op_tags: dict[str, str]) -> dict[str, Any]:
    """The Job the k8s executor creates for an op with `op_tags`, merged by its own code."""
    executor_config = scale_executor().config_schema.resolve_config({}).value["config"]
    instance = SimpleNamespace(run_launcher=launcher)
    executor = k8s_job_executor.executor_creation_fn(
        SimpleNamespace(instance=instance, executor_config=executor_config)
    )
    handler = executor._step_handler  # the K8sStepHandler; its merge code is what we test
    step = SimpleNamespace(
        dagster_run=DagsterRun(job_name="evaluate", run_id="r1"),
        instance=instance,
        step_tags={"run_eval_task": op_tags},
        execute_step_args=SimpleNamespace(step_keys_to_execute=["run_eval_task"]),
        get_step_context=lambda key: SimpleNamespace(step=SimpleNamespace(op_name=key)),
    )
    context = handler._get_container_context(step)
    job_config = context.get_k8s_job_config(None, launcher).with_image(PLATFORM_IMAGE)
    return job_body(
        construct_dagster_k8s_job(
            job_config=job_config,
            args=["dagster", "api", "execute_step"],
            job_name="dagster-step-abc",
            component="step_worker",
            user_defined_k8s_config=context.run_k8s_config,
            labels={"dagster/op": "run_eval_task"},
        )
    )


def assert_hardened(pod_spec: dict[str, Any]) -> None:
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["runAsUser"] != 0
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod_spec["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("stage", [*STAGES, None], ids=[*STAGES, "untagged"])
def test_op_pods_built_by_the_executor_validate_and_are_hardened(
    launcher: K8sRunLauncher, stage: str | None
):
    op_tags = op_k8s_tags(stage) if stage else {}
    pod = step_job(launcher, op_tags)["spec"]["template"]
    pod_spec = pod["spec"]

    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["serviceAccountName"] == "default"  # not the run worker's RBAC
    assert_hardened(pod_spec)
    policy = op_network_policy("evals", [], [], postgres_cidrs=[])
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod_spec["containers"]
    assert {"secretRef": {"name": MODEL_API_KEYS_SECRET}} in container["envFrom"]
    if stage:
        tagged = json.loads(op_tags["dagster-k8s/config"])["container_config"]["resources"]
        assert container["resources"] == tagged


def test_run_worker_pod_validates_and_is_hardened(launcher: K8sRunLauncher):
    run = DagsterRun(job_name="evaluate", run_id="r1")
    context = launcher.get_container_context_for_run(run)
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(PLATFORM_IMAGE, launcher),
        args=["dagster", "api", "execute_run"],
        job_name="dagster-run-r1",
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
    )
    pod_spec = job_body(job)["spec"]["template"]["spec"]
    assert_hardened(pod_spec)
    assert pod_spec["serviceAccountName"] == run_launcher_config()["service_account_name"]
    assert not any(
        source.get("secretRef", {}).get("name") == MODEL_API_KEYS_SECRET
        for source in pod_spec["containers"][0]["envFrom"]
    )


# --- Dagster config --------------------------------------------------------------------------


def test_executor_config_validates_and_owns_its_step_pods():
    config = processed(k8s_job_executor.config_schema.config_type, k8s_executor_config())
    assert config["enable_owner_references"] is True
    assert config["job_namespace"] == run_launcher_config()["job_namespace"]
    resolved = scale_executor().config_schema.resolve_config({})
    assert resolved.success and resolved.value["config"]["enable_owner_references"] is True


def test_scale_instance_yaml_validates(monkeypatch: pytest.MonkeyPatch):
    for name, value in INSTANCE_ENV.items():
        monkeypatch.setenv(name, value)
    config, _ = dagster_instance_config(str(SCALE_DIR))

    def section(name: str, expected: type) -> dict[str, Any]:
        """A pluggable class's config, processed by that class's own schema."""
        data = configurable_class_data(config[name])
        klass = getattr(importlib.import_module(data.module_name), data.class_name)
        assert klass is expected
        return processed(klass.config_type(), data.config_dict)

    section("run_launcher", K8sRunLauncher)
    assert config["run_launcher"]["config"] == run_launcher_config()
    assert section("compute_logs", S3ComputeLogManager)["bucket"] == INSTANCE_ENV["EVAL_S3_BUCKET"]
    section("run_coordinator", QueuedRunCoordinator)

    postgres = processed(DagsterPostgresStorage.config_type(), config["storage"]["postgres"])
    url = pg_url_from_config(postgres)
    assert url == "postgresql+psycopg2://dagster:secret@postgres.evals.svc:5432/dagster"


def test_k8s_executor_is_chosen_by_config(monkeypatch: pytest.MonkeyPatch, dagster_home):
    from eval_pipelines.definitions import build_definitions

    monkeypatch.setenv("EVAL_EXECUTOR", "k8s")
    job = build_definitions().resolve_job_def("evaluate")
    assert job.executor_def.name == "k8s"
    run_task = job.graph.node_named("evaluation").definition.node_named("run_eval_task")
    assert "dagster-k8s/config" in run_task.definition.tags
    monkeypatch.setenv("EVAL_EXECUTOR", "kubernetes-please")
    with pytest.raises(ValueError, match="EVAL_EXECUTOR='kubernetes-please' is not an executor"):
        build_definitions()
