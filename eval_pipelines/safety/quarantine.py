"""Quarantine: a run's artifacts set apart, its model refused until someone lifts it.

State lives in the Dagster instance, as observations of the `model_quarantine` asset (one
partition per model): every process that opens the instance (op processes, the daemon,
`evalctl`) sees the same state, the UI shows its history, and each change records who, why
and when. The latest observation of a model's partition is its state. (The instance's
key-value store would hold the state too, but keeps no history and is not public API.)

Artifacts are immutable, so "moving" a run's logs means copying them, write-once, under
`quarantine/` and tagging the run `eval/quarantined`: readers of published results skip
runs with that tag (`eval_pipelines.results.records`), so the leaderboard no longer shows them.
"""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import dataclass

from dagster import (
    AssetObservation,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    UrlMetadataValue,
)

from eval_pipelines.core.names import MODEL_QUARANTINE, QUARANTINED_TAG, TASK_TAG_PREFIX
from eval_pipelines.core.observations import observations
from eval_pipelines.core.run_tags import add_run_tags_durably
from eval_pipelines.results.resume import TaskCheckpoint
from eval_pipelines.safety.incidents import Incident
from resources.artifact_store import ArtifactStore

# Top-level folders of the artifacts a run writes (see eval_pipelines.evaluation.publish).
RUN_ARTIFACT_ROOTS = ("eval-logs/", "partial/", "results/")


class ModelQuarantined(Exception):
    """The model is under quarantine: new evaluations of it are refused."""


@dataclass(frozen=True)
class QuarantineState:
    model_id: str
    quarantined: bool
    incident_id: str
    run_id: str
    reason: str
    by: str
    at: float


def _observation(state: QuarantineState) -> AssetObservation:
    return AssetObservation(
        asset_key=MODEL_QUARANTINE,
        partition=state.model_id,
        metadata={
            "state": "quarantined" if state.quarantined else "lifted",
            "incident_id": state.incident_id,
            "run_id": state.run_id,
            "reason": state.reason,
            "by": state.by,
            "at": state.at,
        },
    )


def _state(observation: AssetObservation) -> QuarantineState:
    meta = {k: v.value for k, v in observation.metadata.items()}
    return QuarantineState(
        model_id=str(observation.partition),
        quarantined=meta["state"] == "quarantined",
        incident_id=str(meta["incident_id"]),
        run_id=str(meta["run_id"]),
        reason=str(meta["reason"]),
        by=str(meta["by"]),
        at=float(meta["at"]),
    )


def model_state(instance: DagsterInstance, model_id: str) -> QuarantineState | None:
    """The model's latest quarantine state, None if it was never quarantined."""
    records = instance.fetch_observations(
        AssetRecordsFilter(asset_key=MODEL_QUARANTINE, asset_partitions=[model_id]), limit=1
    ).records
    observation = records[0].asset_observation if records else None
    return _state(observation) if observation else None


def all_states(instance: DagsterInstance) -> list[QuarantineState]:
    """Every model ever quarantined, with its latest state."""
    states = (_state(o) for _, o in observations(instance, MODEL_QUARANTINE))
    latest = {state.model_id: state for state in states}  # later states win
    return sorted(latest.values(), key=lambda s: s.model_id)


def check_not_quarantined(instance: DagsterInstance, model_id: str) -> None:
    """Raise `ModelQuarantined`, naming the incident and the way out, if the model is held."""
    state = model_state(instance, model_id)
    if state is not None and state.quarantined:
        raise ModelQuarantined(
            f"model {model_id!r} is quarantined after incident {state.incident_id} "
            f"(run {state.run_id}: {state.reason}); new evaluations are refused until it is "
            f"lifted: evalctl quarantine lift {model_id} --reason TEXT"
        )


def quarantine_model(instance: DagsterInstance, incident: Incident) -> None:
    """Refuse new evaluations of the incident's model from now on."""
    state = QuarantineState(incident.model_id, True, incident.id, incident.run_id,
                            incident.summary, "quarantine job", time.time())  # fmt: skip
    instance.report_runless_asset_event(_observation(state))


def lift(
    instance: DagsterInstance, model_id: str, reason: str, by: str | None = None
) -> QuarantineState:
    """Lift a model's quarantine, recording who and why; raises `ValueError` if it is not held."""
    if not reason.strip():
        raise ValueError("a reason is required to lift a quarantine")
    current = model_state(instance, model_id)
    if current is None or not current.quarantined:
        raise ValueError(f"model {model_id!r} is not quarantined")
    state = QuarantineState(model_id, False, current.incident_id, current.run_id, reason,
                            by or getpass.getuser(), time.time())  # fmt: skip
    instance.report_runless_asset_event(_observation(state))
    return state


def run_artifacts(instance: DagsterInstance, run_id: str) -> list[str]:
    """URIs of what the run stored: finished and partial `.eval` logs, their audit trails,
    result snapshots."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"no run {run_id} in the instance")
    checkpoints = [
        TaskCheckpoint.model_validate_json(value)
        for key, value in run.tags.items()
        if key.startswith(TASK_TAG_PREFIX)
    ]
    uris = {uri for c in checkpoints for uri in (c.log_uri, c.audit_uri) if uri}
    for record in instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records:
        materialization = record.asset_materialization
        for value in materialization.metadata.values() if materialization else ():
            if isinstance(value, UrlMetadataValue):
                uris.add(value.value)
    return sorted(u for u in uris if _relative_key(u) is not None)


def _relative_key(uri: str) -> str | None:
    """The store key below its root (`eval-logs/...`), for both local and S3 URIs."""
    starts = [uri.find(f"/{root}") for root in RUN_ARTIFACT_ROOTS if f"/{root}" in uri]
    return uri[min(starts) + 1 :] if starts else None


def copy_to_quarantine(
    instance: DagsterInstance, artifacts: ArtifactStore, incident: Incident
) -> tuple[str, dict[str, str]]:
    """Copy the run's artifacts under `quarantine/` (write-once); returns the manifest's URI
    and the copies by original URI. Tags the run `eval/quarantined`."""
    prefix = f"quarantine/model={incident.model_id}/suite={incident.suite}/{incident.run_id}"
    copies = {}
    for uri in run_artifacts(instance, incident.run_id):
        data = artifacts.get(uri)  # checked against its digest: no damaged copy
        copies[uri] = artifacts.put(f"{prefix}/{_relative_key(uri)}", data)
    manifest = json.dumps(
        {"incident_id": incident.id, "run_id": incident.run_id, "copies": copies},
        indent=2, sort_keys=True,
    ).encode()  # fmt: skip
    manifest_uri = artifacts.store(f"{prefix}/manifest", manifest, ".json")
    add_run_tags_durably(instance, incident.run_id, {QUARANTINED_TAG: incident.id})
    return manifest_uri, copies
