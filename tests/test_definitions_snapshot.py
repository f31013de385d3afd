"""What an existing instance and its users see of the code location, held against a snapshot.

Asset keys, groups, partitions and lineage; checks; jobs with their ops and Launchpad config
paths; sensors and schedules; resource keys and the executor, for each deployment. Moving
code must change none of them: runs, materializations, schedules' states and the UI's saved
config all name these. After an intended change, rewrite the snapshot with
`EVAL_UPDATE_SNAPSHOT=1 pytest tests/test_definitions_snapshot.py` and review its diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from dagster import Definitions
from dagster._config import ConfigTypeKind

from eval_pipelines.definitions import build_definitions

SNAPSHOT = Path(__file__).parent / "data" / "definitions_snapshot.json"

DEPLOYMENTS = {
    "local": {},
    "scale": {
        "EVAL_DEPLOYMENT": "scale",
        "EVAL_EXECUTOR": "k8s",
        "EVAL_S3_BUCKET": "evals",
    },
}


def _config_shape(config_type) -> Any:
    """A config type as the Launchpad shows it: field paths, kinds and defaults."""
    kind = config_type.kind
    if kind in (
        ConfigTypeKind.STRICT_SHAPE,
        ConfigTypeKind.PERMISSIVE_SHAPE,
        ConfigTypeKind.SELECTOR,
    ):
        fields = {}
        for name, field in sorted(config_type.fields.items()):
            entry = {"required": field.is_required, "type": _config_shape(field.config_type)}
            if field.default_provided:
                entry["default"] = field.default_value
            fields[name] = entry
        return {"kind": kind.value, "fields": fields}
    if kind in (ConfigTypeKind.ARRAY, ConfigTypeKind.NONEABLE):
        return {"kind": kind.value, "of": _config_shape(config_type.inner_type)}
    if kind == ConfigTypeKind.MAP:
        return {"kind": kind.value, "of": _config_shape(config_type.inner_type)}
    if kind == ConfigTypeKind.ENUM:
        return {"kind": kind.value, "values": sorted(config_type.config_values)}
    return config_type.given_name or kind.value


def _partitions(partitions_def) -> Any:
    if partitions_def is None:
        return None
    dimensions = getattr(partitions_def, "partitions_defs", None)
    if dimensions:
        return {d.name: _partitions(d.partitions_def) for d in dimensions}
    name = getattr(partitions_def, "name", None)
    return f"{type(partitions_def).__name__}({name or ''})"


def describe(defs: Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": _partitions(node.partitions_def),
            "materializable": node.is_materializable,
            "observable": node.is_observable,
            "kinds": sorted(node.kinds),
            "tags": dict(sorted(node.tags.items())),
            "automation": None
            if node.automation_condition is None
            else node.automation_condition.get_label()
            or type(node.automation_condition).__name__,  # fmt: skip
            "description": node.description,
        }
    checks = sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys)
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__ASSET_JOB"):
            continue
        jobs[job.name] = {
            "nodes": {
                handle.to_string(): node.definition.name
                for handle, node in sorted(
                    job.graph.iterate_node_handles_and_nodes(), key=lambda p: p[0].to_string()
                )
            }
            if hasattr(job.graph, "iterate_node_handles_and_nodes")
            else sorted(n.name for n in job.nodes),
            "tags": dict(sorted(job.tags.items())),
            "partitioned": job.partitions_def is not None,
            "config": _config_shape(job.run_config_schema.config_type),
        }
    sensors = {
        sensor.name: {
            "type": sensor.sensor_type.value,
            "jobs": sorted(j.name for j in sensor.jobs) if sensor.has_jobs else [],
            "interval": sensor.minimum_interval_seconds,
            "default_status": sensor.default_status.value,
        }
        for sensor in sorted(defs.sensors or [], key=lambda s: s.name)
    }
    schedules = {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "job": schedule.job_name,
            "timezone": schedule.execution_timezone,
            "default_status": schedule.default_status.value,
        }
        for schedule in sorted(defs.schedules or [], key=lambda s: s.name)
    }
    return {
        "assets": assets,
        "checks": checks,
        "jobs": jobs,
        "sensors": sensors,
        "schedules": schedules,
        "resources": {k: type(v).__name__ for k, v in sorted((defs.resources or {}).items())},
        "executor": defs.executor.name if defs.executor else None,
    }


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_the_code_location_matches_its_snapshot(
    deployment: str, dagster_home: Path, monkeypatch: pytest.MonkeyPatch
):
    for name in ("EVAL_EXECUTOR", "EVAL_S3_BUCKET", "EVAL_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in DEPLOYMENTS[deployment].items():
        monkeypatch.setenv(name, value)
    # Resources' defaults name the instance's folders: the same wherever the home is.
    described = json.dumps(describe(build_definitions()), default=str)
    seen = json.loads(described.replace(str(dagster_home), "$DAGSTER_HOME"))

    snapshots = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}
    if os.environ.get("EVAL_UPDATE_SNAPSHOT"):
        snapshots[deployment] = seen
        SNAPSHOT.write_text(json.dumps(snapshots, indent=1, sort_keys=True) + "\n")
    assert deployment in snapshots, f"no snapshot for {deployment}: see this module's docstring"
    assert seen == snapshots[deployment]
