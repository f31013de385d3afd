"""The Kubernetes execution path: dagster-k8s config and the sandbox manifests, as plain dicts.

Nothing here talks to a cluster. Plain dicts can be validated offline (kubernetes-validate,
Dagster's config schemas) and committed as YAML (`python -m eval_pipelines.execution.k8s OUT_DIR`).

Pods of three kinds run on the cluster:
- the run worker (K8sRunLauncher): creates one Kubernetes Job per op, so it keeps its
  service-account token;
- op pods (k8s_job_executor, config from op tags): run Inspect and talk to the model APIs,
  the artifact store and Postgres, nothing else; no service-account token;
- sandbox pods: run the agent's tool calls under gVisor, with no network and no credentials.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

import yaml
from dagster import ExecutorDefinition

from eval_pipelines.catalog.specs import SandboxSpec

NAMESPACE = "evals"
PART_OF = {"app.kubernetes.io/part-of": "eval-pipelines"}
ROLE_LABEL = "eval-pipelines/role"
# Secret whose keys become env vars of op pods only (envFrom); never given to sandbox pods.
MODEL_API_KEYS_SECRET = "eval-model-api-keys"
# The platform image must run as this uid (files world-readable, HOME writable).
PLATFORM_UID = 10001
# The sandbox image's user (sandbox_images/sandbox/Dockerfile).
SANDBOX_UID = 65532
SANDBOX_WORKDIR = "/work"
# Keeps the sandbox container alive for `exec`; exits at once on SIGTERM.
SANDBOX_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]

Stage = Literal["prepare", "run-task", "publish"]

# run-task holds Inspect, the model client and the sample's transcripts in memory.
_STAGE_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "prepare": {
        "requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"},
    },
    "run-task": {
        "requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"},
        "limits": {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "4Gi"},
    },
    "publish": {
        "requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "256Mi"},
        "limits": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "2Gi"},
    },
}


class OpEgress(TypedDict):
    """Where op pods may connect besides DNS: CIDRs of each service."""

    artifact_store_cidrs: list[str]
    model_api_cidrs: list[str]
    postgres_cidrs: list[str]


# Documentation ranges (RFC 5737) for the committed example: unroutable, so they fail closed.
EXAMPLE_EGRESS = OpEgress(
    artifact_store_cidrs=["192.0.2.0/24"],
    model_api_cidrs=["198.51.100.0/24"],
    postgres_cidrs=["203.0.113.10/32"],
)


def _labels(role: str) -> dict[str, str]:
    return {**PART_OF, ROLE_LABEL: role}


def _pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def _op_pod_config() -> dict[str, Any]:
    """dagster-k8s config every op pod gets: role label, no token, non-root, no privileges.

    Root filesystems stay writable: Dagster and Inspect write to HOME and temp dirs.
    """
    return {
        "pod_template_spec_metadata": {"labels": _labels("op")},
        "pod_spec_config": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": _pod_security(PLATFORM_UID),
        },
        "container_config": {"securityContext": _container_security()},
    }


def op_k8s_tags(stage: Stage) -> dict[str, str]:
    """The `dagster-k8s/config` op tag with the stage's resources (job tags never reach step pods)."""
    config = _op_pod_config()
    config["container_config"]["resources"] = _STAGE_RESOURCES[stage]
    return {"dagster-k8s/config": json.dumps(config)}


def k8s_executor_config(namespace: str = NAMESPACE) -> dict[str, Any]:
    """Config of `k8s_job_executor`: one pod per op, cleaned up with the run."""
    return {
        "job_namespace": namespace,
        "image_pull_policy": "IfNotPresent",
        # Not the run worker's account (inherited otherwise): op pods need no RBAC.
        "service_account_name": "default",
        "env_secrets": [MODEL_API_KEYS_SECRET],
        "max_concurrent": 8,
        # Step Jobs are owned by the run pod: terminating a run deletes its step pods.
        "enable_owner_references": True,
        # Ops without `op_k8s_tags` are hardened and labelled all the same.
        "step_k8s_config": _op_pod_config(),
    }


def scale_executor() -> ExecutorDefinition:
    """`k8s_job_executor` with our config; needs the K8sRunLauncher of deploy/scale/dagster.yaml."""
    from dagster_k8s import k8s_job_executor  # ~1 s to import: only where pods run ops

    return k8s_job_executor.configured(k8s_executor_config())


def run_launcher_config(namespace: str = NAMESPACE) -> dict[str, Any]:
    """K8sRunLauncher config (deploy/scale/dagster.yaml); also the base of every op pod."""
    return {
        # Needs RBAC to create Jobs and read Pods in the namespace.
        "service_account_name": "eval-run-worker",
        # ConfigMap holding deploy/scale/dagster.yaml, mounted as the pods' DAGSTER_HOME.
        "instance_config_map": "eval-dagster-instance",
        # Key `postgresql-password`, exposed as DAGSTER_PG_PASSWORD.
        "postgres_password_secret": "eval-postgres",
        "job_namespace": namespace,
        "image_pull_policy": "IfNotPresent",
        "env_config_maps": ["eval-pipelines-env"],
        "env_secrets": ["eval-storage-credentials"],
        "labels": dict(PART_OF),
        "fail_pod_on_run_failure": True,
        "run_k8s_config": {
            "pod_spec_config": {
                "enableServiceLinks": False,
                "securityContext": _pod_security(PLATFORM_UID),
            },
            "container_config": {
                "securityContext": _container_security(),
                "resources": {
                    "requests": {"cpu": "250m", "memory": "512Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
            },
        },
    }


def _sandbox_resources(spec: SandboxSpec) -> dict[str, str]:
    return {
        "cpu": f"{round(spec.cpu * 1000)}m",
        "memory": f"{spec.memory_mb}Mi",
        "ephemeral-storage": f"{spec.disk_mb}Mi",
    }


def sandbox_pod(
    spec: SandboxSpec, name: str, namespace: str = NAMESPACE, lifetime_seconds: int = 3600
) -> dict[str, Any]:
    """A sandbox Pod for one sample: gVisor, no token, no network (see the policy), no root.

    The pod lives for a whole sample and is deleted by the backend; `lifetime_seconds` is a
    backstop deadline (at least one exec's `timeout_seconds`) after which Kubernetes kills it
    even if the backend is gone. Requests equal limits, so the pod gets exactly the spec.
    /work and /tmp share the `disk_mb` ephemeral-storage limit (read-only root filesystem).
    `pids`, `cpu_seconds`, `timeout_seconds` and `output_kb` apply per exec, in the backend.
    """
    disk = {"sizeLimit": f"{spec.disk_mb}Mi"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels("sandbox")},
        "spec": {
            "runtimeClassName": "gvisor",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "hostNetwork": False,
            "hostPID": False,
            "hostIPC": False,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": max(lifetime_seconds, spec.timeout_seconds),
            "terminationGracePeriodSeconds": 5,
            "securityContext": _pod_security(SANDBOX_UID),
            "containers": [
                {
                    "name": "sandbox",
                    "image": spec.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": SANDBOX_COMMAND,
                    "workingDir": SANDBOX_WORKDIR,
                    "securityContext": {**_container_security(), "readOnlyRootFilesystem": True},
                    "resources": {
                        "requests": _sandbox_resources(spec),
                        "limits": _sandbox_resources(spec),
                    },
                    "volumeMounts": [
                        {"name": "work", "mountPath": SANDBOX_WORKDIR},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [
                {"name": "work", "emptyDir": dict(disk)},
                {"name": "tmp", "emptyDir": dict(disk)},
            ],
        },
    }


def _network_policy(
    name: str, namespace: str, role: str, egress: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF)},
        "spec": {
            "podSelector": {"matchLabels": {ROLE_LABEL: role}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    }


def sandbox_network_policy(namespace: str = NAMESPACE) -> dict[str, Any]:
    """Sandbox pods: no traffic in or out (`kubectl exec` goes through the kubelet, not the pod network)."""
    return _network_policy("sandbox-deny-all", namespace, "sandbox", [])


def _cidr_rule(cidrs: Sequence[str], port: int) -> dict[str, Any]:
    for cidr in cidrs:
        ipaddress.ip_network(cidr)  # ValueError on a typo, before it reaches a cluster
    return {
        "to": [{"ipBlock": {"cidr": cidr}} for cidr in cidrs],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def op_network_policy(
    namespace: str,
    artifact_store_cidrs: Sequence[str],
    model_api_cidrs: Sequence[str],
    postgres_cidrs: Sequence[str],
) -> dict[str, Any]:
    """Op pods: no ingress; egress to DNS, HTTPS to the artifact store and model APIs, Postgres.

    Op pods write Dagster events straight to Postgres, so it must be reachable. A rule with no
    destinations would allow every destination, so empty CIDR lists add no rule.
    """
    dns = {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    https = [*artifact_store_cidrs, *model_api_cidrs]
    services = [
        _cidr_rule(cidrs, port) for cidrs, port in ((https, 443), (postgres_cidrs, 5432)) if cidrs
    ]
    return _network_policy("op-egress", namespace, "op", [dns, *services])


def gvisor_runtime_class() -> dict[str, Any]:
    """RuntimeClass `gvisor`: nodes need containerd's `runsc` handler installed."""
    return {
        "apiVersion": "node.k8s.io/v1",
        "kind": "RuntimeClass",
        "metadata": {"name": "gvisor", "labels": dict(PART_OF)},
        "handler": "runsc",
    }


def all_manifests(
    spec: SandboxSpec, namespace: str = NAMESPACE, egress: OpEgress = EXAMPLE_EGRESS
) -> list[dict[str, Any]]:
    """Every manifest the platform generates, with an example sandbox pod for `spec`."""
    return [
        gvisor_runtime_class(),
        sandbox_network_policy(namespace),
        op_network_policy(namespace, **egress),
        sandbox_pod(spec, "sandbox-example", namespace),
    ]


def manifest_filename(manifest: dict[str, Any]) -> str:
    return f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"


class _Dumper(yaml.SafeDumper):
    """No YAML anchors: kubectl reads them, but people reviewing manifests should not have to."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(manifest: dict[str, Any]) -> str:
    header = "# Generated by `python -m eval_pipelines.execution.k8s`; do not edit by hand.\n"
    return header + yaml.dump(manifest, Dumper=_Dumper, sort_keys=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Write all manifests as YAML files into a folder (egress not given: documentation CIDRs)."""
    parser = argparse.ArgumentParser(
        prog="python -m eval_pipelines.execution.k8s",
        description="Write the platform's k8s manifests.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--namespace", default=NAMESPACE)
    parser.add_argument("--artifact-store-cidr", dest="artifact_store_cidrs", action="append")
    parser.add_argument("--model-api-cidr", dest="model_api_cidrs", action="append")
    parser.add_argument("--postgres-cidr", dest="postgres_cidrs", action="append")
    args = parser.parse_args(argv)
    egress = OpEgress(
        artifact_store_cidrs=args.artifact_store_cidrs or EXAMPLE_EGRESS["artifact_store_cidrs"],
        model_api_cidrs=args.model_api_cidrs or EXAMPLE_EGRESS["model_api_cidrs"],
        postgres_cidrs=args.postgres_cidrs or EXAMPLE_EGRESS["postgres_cidrs"],
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for manifest in all_manifests(SandboxSpec(), args.namespace, egress):
        (args.out_dir / manifest_filename(manifest)).write_text(to_yaml(manifest))


if __name__ == "__main__":
    main()
