"""Incidents as recorded: each one's latest announcement, where its record and report are
stored, and its latest review; what the incidents table, the leaderboard, the capability
check and `evalctl incidents` all read, so they agree on what is open.
"""

from dataclasses import dataclass, replace

from dagster import DagsterInstance

from eval_pipelines.core.names import INCIDENTS_ASSET, TASK_TAG_PREFIX
from eval_pipelines.core.observations import observations
from eval_pipelines.results import resume
from eval_pipelines.safety.incidents import Announcement, Incident, load_incident
from eval_pipelines.safety.reviews import OPEN, IncidentReview, latest_reviews
from resources.artifact_store import ArtifactStore


@dataclass(frozen=True)
class RecordedIncident:
    """An incident's latest record, with where its record and report are stored, and its
    latest review (None: never reviewed, so open)."""

    incident: Incident
    record_uri: str
    report_uri: str
    storage_id: int
    review: IncidentReview | None = None

    @property
    def state(self) -> str:
        return self.review.state if self.review else OPEN

    @property
    def is_open(self) -> bool:
        return self.state == OPEN


def partition_incidents(
    instance: DagsterInstance, artifacts: ArtifactStore, partition: str | None = None
) -> dict[str, list[RecordedIncident]]:
    """Every incident announced for `partition` (or all partitions), by partition, oldest first.

    An incident announced more than once (a stop is announced at detection and again with
    its kill time) counts once: its latest announcement wins. A missing `eval_log_uri` is
    filled from the run's task tags (`eval/task/<task>`) once the task has stored its log.
    Each carries its latest review, so every reader agrees on what is open.
    """
    latest: dict[str, RecordedIncident] = {}
    for storage_id, observation in observations(instance, INCIDENTS_ASSET, partition):
        announced = Announcement.from_observation(observation)
        incident = load_incident(artifacts, announced.record_uri)
        latest[incident.id] = RecordedIncident(
            incident, announced.record_uri, announced.report_uri, storage_id
        )
    reviews = latest_reviews(instance, partition)
    by_partition: dict[str, list[RecordedIncident]] = {}
    for found in sorted(latest.values(), key=lambda r: (r.incident.detected_at, r.storage_id)):
        found = _with_log_uri(instance, replace(found, review=reviews.get(found.incident.id)))
        by_partition.setdefault(found.incident.partition, []).append(found)
    return by_partition


def _with_log_uri(instance: DagsterInstance, found: RecordedIncident) -> RecordedIncident:
    incident = found.incident
    if incident.eval_log_uri or not incident.task:
        return found
    run = instance.get_run_by_id(incident.run_id)
    tag = run.tags.get(TASK_TAG_PREFIX + resume.task_key(incident.task)) if run else None
    if not tag:
        return found  # the task is still running, or stored no log
    log_uri = resume.TaskCheckpoint.model_validate_json(tag).log_uri
    return replace(found, incident=incident.model_copy(update={"eval_log_uri": log_uri}))
