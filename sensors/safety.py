"""Safety sensors: incidents become alerts, quarantines and stopped runs; failures and
operator stops alert too.

`safety_incident_sensor` reads `incidents` observations after its cursor (the last storage
id it handled). For each it requests a `safety_alert` run and, where the incident says so, a
`quarantine` run; their run keys (`<incident id>:<job>`) make each happen once, whatever the
tick timing: a tick repeated after a daemon restart asks for the same keys and the daemon
skips those that exist. It also ends an evaluation that should have stopped and has not.
It then reads `alert_deliveries` observations: an alert a channel did not take is launched
again, with backoff, until every channel has it (each channel gets it once). An alert run
that ended without ever starting (never dequeued) counts as undelivered; an incidents
table refresh that never started is requested again.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dagster import (
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from eval_pipelines.core.names import (
    ALERT_DELIVERIES,
    ALERT_TAG,
    INCIDENT_TAG,
    INCIDENTS_ASSET,
    PARTITION_TAG,
    QUARANTINE_JOB,
    RECORD_INCIDENTS_JOB,
    SAFETY_ALERT_JOB,
    SAFETY_STOPPED_TAG,
    STOP_REASON_TAG,
)
from eval_pipelines.core.partitions import partition_key, split_partition_key
from eval_pipelines.execution.stopping import stop_run
from eval_pipelines.jobs import record_incidents_job
from eval_pipelines.safety.incidents import Announcement, Incident, record_incident
from eval_pipelines.safety.jobs import quarantine_job, safety_alert_job
from resources.artifact_store import ArtifactStore

RETRY_ENV = "EVAL_ALERT_RETRY_SECONDS"
MAX_RETRY_SECONDS = 900
_UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
               DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]  # fmt: skip


@dataclass
class Pending:
    """An alert some channel has not taken: the run to repeat, and when."""

    run_id: str
    retries: int
    due: float


@dataclass
class SafetyCursor:
    incidents: int = 0
    deliveries: int = 0
    pending: dict[str, Pending] = field(default_factory=dict)
    failed_runs: float = 0.0  # update time of the last ended alert/refresh run looked at

    @classmethod
    def parse(cls, text: str | None) -> SafetyCursor:
        if not text:
            return cls()
        data = json.loads(text)
        pending = {k: Pending(**v) for k, v in data.pop("pending").items()}
        return cls(**data, pending=pending)

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def retry_delay(retries: int) -> float:
    """Backoff between launches of an undelivered alert: base (env, 30 s) doubling, capped."""
    return min(float(os.environ.get(RETRY_ENV, "30")) * 2**retries, MAX_RETRY_SECONDS)


def alert_run_config(incident_record: str) -> dict:
    return {"ops": {"deliver_alert": {"config": {"incident_record": incident_record}}}}


def _incident_requests(context: SensorEvaluationContext, cursor: SafetyCursor) -> list[RunRequest]:
    records = context.instance.fetch_observations(
        AssetRecordsFilter(asset_key=INCIDENTS_ASSET, after_storage_id=cursor.incidents or None),
        limit=100,
        ascending=True,
    ).records
    requests = []
    latest_announcement: dict[str, int] = {}  # partition -> its last announcement here
    for record in records:
        cursor.incidents = record.storage_id
        if record.partition_key is not None:
            latest_announcement[record.partition_key] = record.storage_id
        observation = record.asset_observation
        if observation is None:
            continue
        announced = Announcement.from_observation(observation)
        incident_id, record_uri = announced.incident_id, announced.record_uri
        tags = {INCIDENT_TAG: incident_id}
        requests.append(RunRequest(
            run_key=f"{incident_id}:{SAFETY_ALERT_JOB}", job_name=SAFETY_ALERT_JOB,
            run_config=alert_run_config(record_uri), tags={**tags, ALERT_TAG: incident_id},
        ))  # fmt: skip
        if announced.quarantine:
            requests.append(RunRequest(
                run_key=f"{incident_id}:{QUARANTINE_JOB}", job_name=QUARANTINE_JOB,
                run_config={"ops": {"quarantine_run": {"config": {"incident_record": record_uri}}}},
                tags=tags,
            ))  # fmt: skip
        if announced.action == "stop_evaluation":
            reason = f"safety: {announced.rule_id}: {announced.summary}"
            if stop_run(context.instance, announced.run_id, reason, safety=True):
                context.log.warning(f"incident {incident_id}: stopping run {announced.run_id}")
    return requests + [
        record_incidents_request(partition, announcement)
        for partition, announcement in latest_announcement.items()
    ]


def _alert_in_progress(instance: DagsterInstance, alert_id: str) -> bool:
    return bool(
        instance.get_run_ids(RunsFilter(tags={ALERT_TAG: alert_id}, statuses=_UNFINISHED), limit=1)
    )


def _never_started(
    instance: DagsterInstance, cursor: SafetyCursor, job_names: tuple[str, ...]
) -> list[DagsterRun]:
    """Runs of `job_names` that ended without ever starting, since the cursor's last look.

    E.g. the daemon could not dequeue the run (its code server timed out on a loaded host)
    and marked it failed before its op ran: the run did nothing, and nothing else says so.
    A run that started and failed on its own (no channel configured) has said why.
    """
    since = datetime.fromtimestamp(cursor.failed_runs, UTC)
    found = []
    for job_name in job_names:
        records = instance.get_run_records(
            RunsFilter(
                job_name=job_name,
                statuses=[DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED],
                updated_after=since,
            ),
            ascending=True,
        )
        for record in records:
            cursor.failed_runs = max(cursor.failed_runs, record.update_timestamp.timestamp())
            run = record.dagster_run
            started = instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.RUN_START, limit=1
            ).records
            if not started:
                found.append(run)
    return found


def _retry_requests(context: SensorEvaluationContext, cursor: SafetyCursor) -> list[RunRequest]:
    """Alerts some channel did not take, when due; incidents tables whose refresh never ran."""
    instance, now = context.instance, time.time()
    records = instance.fetch_observations(
        AssetRecordsFilter(asset_key=ALERT_DELIVERIES, after_storage_id=cursor.deliveries or None),
        limit=500,
        ascending=True,
    ).records
    outcome: dict[tuple[str, str], bool] = {}  # (alert, run) -> every channel delivered
    for record in records:
        cursor.deliveries = record.storage_id
        if record.asset_observation is None:
            continue
        meta = record.asset_observation.metadata
        key = (str(meta["alert_id"].value), record.run_id)
        outcome[key] = outcome.get(key, True) and bool(meta["delivered"].value)
    requests = []
    for run in _never_started(instance, cursor, (SAFETY_ALERT_JOB, RECORD_INCIDENTS_JOB)):
        if run.job_name == RECORD_INCIDENTS_JOB and PARTITION_TAG in run.tags:
            requests.append(record_incidents_retry(run))
        elif ALERT_TAG in run.tags:  # an alert no channel got: undelivered
            outcome.setdefault((run.tags[ALERT_TAG], run.run_id), False)
    for (alert_id, run_id), delivered in outcome.items():
        if delivered:
            cursor.pending.pop(alert_id, None)
        else:
            retries = cursor.pending[alert_id].retries if alert_id in cursor.pending else 0
            cursor.pending[alert_id] = Pending(run_id, retries, now + retry_delay(retries))
    for alert_id, pending in cursor.pending.items():
        if now < pending.due or _alert_in_progress(instance, alert_id):
            continue
        previous = instance.get_run_by_id(pending.run_id)
        if previous is None:
            continue
        pending.retries += 1
        pending.due = now + retry_delay(pending.retries)
        requests.append(RunRequest(
            run_key=f"{alert_id}:{SAFETY_ALERT_JOB}:retry-{pending.retries}",
            job_name=SAFETY_ALERT_JOB, run_config=previous.run_config,
            tags={k: v for k, v in previous.tags.items() if k in (ALERT_TAG, INCIDENT_TAG)},
        ))  # fmt: skip
    return requests


@sensor(
    name="safety_incident_sensor",
    minimum_interval_seconds=5,
    default_status=DefaultSensorStatus.RUNNING,
    jobs=[safety_alert_job, quarantine_job, record_incidents_job],
)
def safety_incident_sensor(context: SensorEvaluationContext):
    """Alert, quarantine and refresh the incidents table per new incident, stop what should
    have stopped, retry alerts and table refreshes that never ran."""
    cursor = SafetyCursor.parse(context.cursor)
    requests = _incident_requests(context, cursor) + _retry_requests(context, cursor)
    # One request per key: an incident recorded twice (a repeated operator-stop tick) is one.
    requests = list({r.run_key: r for r in requests}.values())
    if not requests:
        return SensorResult(
            skip_reason=SkipReason("no new incidents or alerts due"), cursor=cursor.dump()
        )
    return SensorResult(run_requests=requests, cursor=cursor.dump())


def build_evaluation_sensors(evaluation_job) -> list:
    """Sensors on the evaluate job's runs: failures alert, operator stops become incidents."""

    @run_failure_sensor(
        name="evaluation_failure_sensor",
        monitored_jobs=[evaluation_job],
        request_job=safety_alert_job,
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=5,
    )
    def evaluation_failure_sensor(context: RunFailureSensorContext):
        """A failed evaluation alerts the same channels (a safety stop alerts as its incident)."""
        run = context.dagster_run
        if run.tags.get(SAFETY_STOPPED_TAG):
            return SkipReason(f"run {run.run_id} was safety-stopped: its incident alerts")
        alert_id = f"run-failure-{run.run_id}"
        reason = context.failure_event.message or "the run failed"
        return RunRequest(
            run_key=f"{alert_id}:{SAFETY_ALERT_JOB}",
            run_config={"ops": {"deliver_alert": {"config": {
                "failed_run_id": run.run_id, "failure_reason": reason}}}},
            tags={ALERT_TAG: alert_id},
        )  # fmt: skip

    @run_status_sensor(
        name="operator_stop_sensor",
        run_status=DagsterRunStatus.CANCELED,
        monitored_jobs=[evaluation_job],
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=5,
    )
    def operator_stop_sensor(context: RunStatusSensorContext, artifacts: ArtifactStore):
        """Every operator stop (evalctl stop, the UI's Terminate) is an `operator_stop` incident."""
        run = context.dagster_run
        if run.tags.get(SAFETY_STOPPED_TAG):
            return SkipReason(f"run {run.run_id} was safety-stopped: not an operator stop")
        record_incident(context.instance, artifacts, operator_stop_incident(run))
        return None

    return [evaluation_failure_sensor, operator_stop_sensor]


def operator_stop_incident(run) -> Incident:
    """The incident for a canceled run: who/why from `eval/stop-reason`, else the UI."""
    why = run.tags.get(STOP_REASON_TAG) or "terminated from the Dagster UI"
    partition = run.tags[PARTITION_TAG]
    model_id, suite = split_partition_key(partition)
    return Incident(
        # Stable: a tick repeated after a restart records the same incident, alerted once.
        id=f"operator-stop-{run.run_id}",
        kind="operator_stop",
        rule_id="operator_stop",
        severity="warning",
        action="stop_evaluation",
        run_id=run.run_id,
        partition=partition,
        model_id=model_id,
        suite=suite,
        summary=f"run {run.run_id} of {partition} stopped by an operator: {why}",
        evidence={"stop_reason": why},
    )


def record_incidents_request(partition: str, announcement: int) -> RunRequest:
    """The `record_incidents` run that brings `partition`'s table up to `announcement`.

    Keyed by the announcement (the observation's storage id; the latest of the partition's
    in one sensor tick), so the table is refreshed once per batch of announcements however
    the ticks fall: an agent raising dozens of incidents makes a run per tick, not dozens.
    A stop's second announcement (its kill time) comes in a later batch or the same one.
    """
    return _record_incidents(partition, f"{partition}:{RECORD_INCIDENTS_JOB}:{announcement}")


def record_incidents_retry(never_started: DagsterRun) -> RunRequest:
    """Again the refresh of a `record_incidents` run that ended without starting (never
    dequeued): its announcements would otherwise wait for the partition's next incident.
    Keyed by that run, so each such run is retried once; a retry that fails so is too."""
    partition = never_started.tags[PARTITION_TAG]
    return _record_incidents(
        partition, f"{partition}:{RECORD_INCIDENTS_JOB}:retry-of-{never_started.run_id}"
    )


def _record_incidents(partition: str, run_key: str) -> RunRequest:
    model_id, suite = split_partition_key(partition)
    return RunRequest(
        run_key=run_key,
        job_name=RECORD_INCIDENTS_JOB,
        partition_key=partition_key(model_id, suite),
    )
