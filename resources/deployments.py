"""Resource sets per deployment, picked by name from config rather than by `if` chains.

- `local` (embedded default): artifacts and IO in folders under the project's
  `.dagster_home`; tool calls sandboxed with bubblewrap on this host.
- `scale`: artifacts and intermediate outputs in S3 (any S3 API: set
  `EVAL_S3_ENDPOINT_URL` for MinIO or moto), as needed when every op runs in its own pod.

Both send alerts to the channels named by `EVAL_ALERT_*` variables (resources/alerting.py).
"""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar, FilesystemIOManager

from eval_pipelines.core.home import local_home
from resources.alerting import alert_channels_from_env
from resources.artifact_store import LocalArtifactStore
from resources.sandbox import SandboxBackend

DEPLOYMENT_ENV = "EVAL_DEPLOYMENT"


def _local() -> dict[str, Any]:
    home = local_home()
    return {
        "io_manager": FilesystemIOManager(base_dir=str(home / "storage")),
        "artifacts": LocalArtifactStore(root=str(home / "artifacts")),
        # Container tasks: runc by default, gVisor with EVAL_CONTAINER_RUNTIME=runsc.
        "sandbox": SandboxBackend(
            backend="bwrap", containers=os.environ.get("EVAL_CONTAINER_RUNTIME", "runc")
        ),
        "alerting": alert_channels_from_env(),
    }


def _scale() -> dict[str, Any]:
    # Imported here: the AWS stack costs about a second of start-up in every op process.
    from dagster_aws.s3 import S3PickleIOManager, S3Resource

    from resources.s3_artifact_store import S3ArtifactStore

    s3 = S3Resource(endpoint_url=os.environ.get("EVAL_S3_ENDPOINT_URL"))
    return {
        "io_manager": S3PickleIOManager(
            s3_resource=s3, s3_bucket=EnvVar("EVAL_S3_BUCKET"), s3_prefix="dagster-io"
        ),
        "artifacts": S3ArtifactStore(s3=s3, bucket=EnvVar("EVAL_S3_BUCKET"), prefix="evals"),
        # No sandbox pods are wired to tool calls yet: sandboxed tasks fail closed.
        "sandbox": SandboxBackend(backend="none", containers="k8s"),
        "alerting": alert_channels_from_env(),
    }


_DEPLOYMENTS = {"local": _local, "scale": _scale}


def deployment_name() -> str:
    name = os.environ.get(DEPLOYMENT_ENV, "local")
    if name not in _DEPLOYMENTS:
        raise ValueError(
            f"{DEPLOYMENT_ENV}={name!r} is not a deployment; known: {', '.join(_DEPLOYMENTS)}"
        )
    return name


def resources_for(name: str | None = None) -> dict[str, Any]:
    return _DEPLOYMENTS[name or deployment_name()]()
