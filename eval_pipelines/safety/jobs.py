"""The `safety_alert` and `quarantine` jobs, launched by the safety sensors.

Both carry `kind: safety` and a high `dagster/priority`: the run queue limits evaluations
by their `kind: evaluation` tag, so these never wait behind them (dagster.yaml).
"""

import time

from dagster import Config, Failure, MetadataValue, OpExecutionContext, job, op
from pydantic import model_validator

from eval_pipelines.core.names import QUARANTINE_JOB, SAFETY_ALERT_JOB
from eval_pipelines.safety.alerts import (
    alert_for_incident,
    delivered_channels,
    delivery_observation,
    run_failure_alert,
)
from eval_pipelines.safety.incidents import load_incident
from eval_pipelines.safety.quarantine import copy_to_quarantine, quarantine_model
from resources.alerting import (
    ALERT_ENV,
    PAGERDUTY_ROUTING_KEY_ENV,
    Alert,
    AlertChannels,
    AlertDeliveryError,
)
from resources.artifact_store import ArtifactStore

SAFETY_RUN_TAGS = {"kind": "safety", "dagster/priority": "100"}


class AlertRequest(Config):
    """What to alert about: an incident's record, or an evaluation run that failed."""

    incident_record: str = ""
    failed_run_id: str = ""
    failure_reason: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> "AlertRequest":
        if bool(self.incident_record) == bool(self.failed_run_id):
            raise ValueError("set exactly one of incident_record and failed_run_id")
        return self


def _alert(context: OpExecutionContext, config: AlertRequest, artifacts: ArtifactStore) -> Alert:
    if config.incident_record:
        incident = load_incident(artifacts, config.incident_record)
        return alert_for_incident(incident, {"record": config.incident_record})
    run = context.instance.get_run_by_id(config.failed_run_id)
    if run is None:
        raise Failure(f"no run {config.failed_run_id} in the instance", allow_retries=False)
    return run_failure_alert(
        run.run_id,
        run.tags.get("dagster/partition"),
        config.failure_reason or "failed",
        time.time(),
    )


@op(tags={"stage": "alert"})
def deliver_alert(
    context: OpExecutionContext, config: AlertRequest, alerting: AlertChannels,
    artifacts: ArtifactStore,
) -> None:  # fmt: skip
    """Send the alert to every configured channel that does not have it yet; record each outcome.

    Fails (and the safety sensor launches it again later) while any channel is undelivered.
    """
    alert = _alert(context, config, artifacts)
    channels = alerting.enabled()
    if not channels:
        raise Failure(
            f"alert {alert.id} not sent: no alert channel is configured (set "
            f"{', '.join(ALERT_ENV.values())} or {PAGERDUTY_ROUTING_KEY_ENV})",
            allow_retries=False,
        )
    done = delivered_channels(context.instance, alert.id)
    failed = []
    for channel in channels:
        if channel.name in done:
            context.log.info(f"alert {alert.id}: {channel.name} already has it")
            continue
        try:
            attempts = channel.send(alert)
        except AlertDeliveryError as exc:
            failed.append(str(exc))
            context.log_event(
                delivery_observation(alert.id, channel.name, False, channel.attempts, str(exc))
            )
            continue
        context.log_event(delivery_observation(alert.id, channel.name, True, attempts))
        context.log.info(f"alert {alert.id}: delivered to {channel.name} ({attempts} attempt(s))")
    if failed:
        raise Failure(
            f"alert {alert.id} undelivered on {len(failed)} channel(s), to be retried by "
            f"safety_incident_sensor: " + "; ".join(failed),
            allow_retries=False,
        )


@job(name=SAFETY_ALERT_JOB, tags=SAFETY_RUN_TAGS,
     description="Deliver one alert (an incident or a failed evaluation) to every channel.")  # fmt: skip
def safety_alert_job():
    deliver_alert()


class QuarantineRequest(Config):
    incident_record: str


@op(tags={"stage": "quarantine"})
def quarantine_run(
    context: OpExecutionContext, config: QuarantineRequest, artifacts: ArtifactStore
) -> None:
    """Refuse the model first (the urgent part), then set the run's artifacts apart."""
    incident = load_incident(artifacts, config.incident_record)
    quarantine_model(context.instance, incident)
    context.log.warning(
        f"model {incident.model_id} quarantined (incident {incident.id}); lift with "
        f"`evalctl quarantine lift {incident.model_id} --reason TEXT`"
    )
    manifest, copies = copy_to_quarantine(context.instance, artifacts, incident)
    context.add_output_metadata(
        {
            "manifest": MetadataValue.url(manifest),
            "artifacts": len(copies),
            "run_id": incident.run_id,
        }
    )


@job(name=QUARANTINE_JOB, tags=SAFETY_RUN_TAGS,
     description="Quarantine a run's artifacts and its model after an incident.")  # fmt: skip
def quarantine_job():
    quarantine_run()
