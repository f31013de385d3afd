"""Alerts: what the channels receive, and a durable record of what each channel got.

An alert comes from an incident (the `incidents` observations) or from an evaluation run
that failed. Each delivery attempt on each channel is recorded as an observation of the
`alert_deliveries` asset, partitioned by alert id, so any process can tell whether a
channel already has an alert (it is then never sent again) and the safety sensor can find
the ones still undelivered and launch them again later.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from dagster import AssetKey, AssetObservation, AssetRecordsFilter, DagsterInstance
from pydantic import BaseModel, ConfigDict, Field

from eval_pipelines.safety.incidents import Incident

ALERT_DELIVERIES = AssetKey("alert_deliveries")
ALERT_TAG = "eval/alert"
AlertKind = Literal["policy", "operator_stop", "capability_threshold", "run_failure"]


class Alert(BaseModel):
    """The message every channel renders in its own format."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable: incident id, or run-failure-<run id>; the dedup key.")
    kind: AlertKind
    severity: Literal["info", "warning", "error", "critical"]
    title: str
    summary: str
    run_id: str
    partition: str | None = None
    rule_id: str | None = None
    action: str | None = None
    quarantine: bool = False
    timestamp: str = Field(description="ISO 8601 time of detection.")
    source: str = "eval-platform"
    links: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)

    def fields(self) -> dict[str, str]:
        """The short facts a person scans first."""
        facts = {"alert": self.id, "run": self.run_id, "partition": self.partition, "rule": self.rule_id,
                 "action": self.action, "quarantine": "yes" if self.quarantine else None}  # fmt: skip
        return {k: str(v) for k, v in facts.items() if v is not None}

    @classmethod
    def from_incident(cls, incident: Incident, links: dict[str, str]) -> Alert:
        title = {
            "operator_stop": "Evaluation stopped by an operator",
            "capability_threshold": "Capability threshold crossed",
        }.get(incident.kind, f"Safety incident: {incident.rule_id}")
        return cls(
            id=incident.id,
            kind=incident.kind,
            severity=incident.severity,
            title=title,
            summary=incident.summary,
            run_id=incident.run_id,
            partition=incident.partition,
            rule_id=incident.rule_id,
            action=incident.action,
            quarantine=incident.quarantine,
            timestamp=_iso(incident.detected_at),
            links=links,
            details=incident.model_dump(mode="json"),
        )

    @classmethod
    def run_failure(cls, run_id: str, partition: str | None, reason: str, at: float) -> Alert:
        return cls(
            id=f"run-failure-{run_id}",
            kind="run_failure",
            severity="error",
            title="Evaluation run failed",
            summary=reason,
            run_id=run_id,
            partition=partition,
            timestamp=_iso(at),
        )


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def delivery_observation(alert_id: str, channel: str, delivered: bool, attempts: int,
                         error: str = "") -> AssetObservation:  # fmt: skip
    return AssetObservation(
        asset_key=ALERT_DELIVERIES,
        partition=alert_id,
        metadata={
            "alert_id": alert_id,
            "channel": channel,
            "delivered": delivered,
            "attempts": attempts,
            "error": error,
        },  # fmt: skip
    )


def delivered_channels(instance: DagsterInstance, alert_id: str) -> set[str]:
    """Channels that already acknowledged this alert (never sent to again)."""
    records = instance.fetch_observations(
        AssetRecordsFilter(asset_key=ALERT_DELIVERIES, asset_partitions=[alert_id]), limit=1000
    ).records
    return {
        str(obs.metadata["channel"].value)
        for obs in (r.asset_observation for r in records)
        if obs is not None and obs.metadata["delivered"].value
    }
