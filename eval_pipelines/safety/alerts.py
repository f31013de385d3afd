"""Alerts: what an incident or a failed run tells the channels, and a durable record of what
each channel got.

An alert comes from an incident (the `incidents` observations) or from an evaluation run
that failed. Each delivery attempt on each channel is recorded as an observation of the
`alert_deliveries` asset, partitioned by alert id, so any process can tell whether a
channel already has an alert (it is then never sent again) and the safety sensor can find
the ones still undelivered and launch them again later.
"""

from __future__ import annotations

import time

from dagster import AssetObservation, AssetRecordsFilter, DagsterInstance

from eval_pipelines.core.names import ALERT_DELIVERIES
from eval_pipelines.safety.incidents import Incident
from resources.alerting import Alert


def alert_for_incident(incident: Incident, links: dict[str, str]) -> Alert:
    title = {
        "operator_stop": "Evaluation stopped by an operator",
        "capability_threshold": "Capability threshold crossed",
    }.get(incident.kind, f"Safety incident: {incident.rule_id}")
    return Alert(
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


def run_failure_alert(run_id: str, partition: str | None, reason: str, at: float) -> Alert:
    return Alert(
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
