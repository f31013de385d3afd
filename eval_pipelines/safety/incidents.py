"""Incidents: what the monitor (or an operator, or a capability check) found, as data.

Each incident is recorded the moment it is detected, from whichever process detected it
(an op process, a pod): its JSON record and a markdown report go to the artifact store,
and an `AssetObservation` of the `incidents` asset, for the evaluation's partition, points
at them. Sensors read those observations (`fetch_observations`), so they see incidents
from every process without any shared memory.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from dataclasses import fields as fields_of
from typing import Any

from dagster import AssetObservation, DagsterInstance, MetadataValue
from pydantic import BaseModel, ConfigDict, Field

from eval_pipelines.core.kinds import Action, IncidentKind, Severity
from eval_pipelines.core.names import INCIDENTS_ASSET
from eval_pipelines.core.text import markdown_table
from resources.artifact_store import ArtifactStore

__all__ = ["Action", "Incident", "IncidentKind", "Severity", "record_incident"]


class Incident(BaseModel):
    """One incident; the record the alert, the quarantine and the UI all read."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: IncidentKind = "policy"
    rule_id: str
    severity: Severity
    action: Action
    quarantine: bool = False
    run_id: str
    partition: str = Field(description="The evaluation partition, 'model|suite'.")
    model_id: str
    suite: str
    task: str | None = None
    sample_id: str | None = None
    epoch: int | None = None
    summary: str = Field(description="One line a person reads first.")
    evidence: dict[str, Any] = Field(default_factory=dict)
    detected_at: float = Field(default_factory=time.time)
    killed_at: float | None = None
    eval_log_uri: str | None = None

    def report(self) -> str:
        """A human-readable markdown report."""
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.detected_at))
        fields = [(n, str(getattr(self, n))) for n in
                  ("kind", "action", "run_id", "partition", "task", "sample_id", "epoch")]  # fmt: skip
        fields.append(("detected", when))
        if self.killed_at is not None:
            fields.append(("killed after", f"{self.killed_at - self.detected_at:.3f} s"))
        if self.eval_log_uri:
            fields.append(("eval log", self.eval_log_uri))
        table = markdown_table([{"field": n, "value": v} for n, v in fields], ["field", "value"])
        lines = [f"# Incident {self.id}: {self.rule_id} ({self.severity})", "", self.summary, "",
                 table, "", "## Evidence", ""]  # fmt: skip
        lines += [f"- **{key}**: `{value}`" for key, value in self.evidence.items()]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Announcement:
    """An `incidents` observation: what the sensor acts on at once (alert, quarantine, stop),
    and where the full record and report are. The one writer and reader of its metadata."""

    incident_id: str
    kind: str
    rule_id: str
    severity: str
    action: str
    quarantine: bool
    run_id: str
    summary: str
    record_uri: str
    report_uri: str

    def observation(self, partition: str) -> AssetObservation:
        fields = {f.name: getattr(self, f.name) for f in fields_of(self)}
        return AssetObservation(
            asset_key=INCIDENTS_ASSET,
            partition=partition,
            metadata={
                **{k: v for k, v in fields.items() if not k.endswith("_uri")},
                "record": MetadataValue.url(self.record_uri),
                "report": MetadataValue.url(self.report_uri),
            },
        )

    @classmethod
    def from_observation(cls, observation: AssetObservation) -> Announcement:
        meta = {k: v.value for k, v in observation.metadata.items()}
        return cls(
            **{f.name: meta[f.name] for f in fields_of(cls) if not f.name.endswith("_uri")},
            record_uri=str(meta["record"]),
            report_uri=str(meta["report"]),
        )


def record_incident(instance: DagsterInstance, artifacts: ArtifactStore, incident: Incident) -> str:
    """Store the incident and announce it as an observation; returns its record's URI."""
    prefix = f"incidents/model={incident.model_id}/suite={incident.suite}/{incident.run_id}"
    data = incident.model_dump_json(indent=2).encode()
    record_uri = artifacts.store(f"{prefix}/{incident.id}", data, ".json")
    report = incident.report().encode()
    report_uri = artifacts.store(f"{prefix}/{incident.id}", report, ".md")
    announced = Announcement(
        incident_id=incident.id, kind=incident.kind, rule_id=incident.rule_id,
        severity=incident.severity, action=incident.action, quarantine=incident.quarantine,
        run_id=incident.run_id, summary=incident.summary, record_uri=record_uri,
        report_uri=report_uri,
    )  # fmt: skip
    instance.report_runless_asset_event(announced.observation(incident.partition))
    return record_uri


def load_incident(artifacts: ArtifactStore, record_uri: str) -> Incident:
    return Incident.model_validate_json(artifacts.get(record_uri))
