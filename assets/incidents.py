"""The `incidents` asset: one row per incident of an evaluation partition, as data.

The monitor (and operators, and the capability check) announce incidents as observations
of this asset the moment they happen (`eval_pipelines.safety.incidents`); this asset is the
partition's table of them, materialized by the `record_incidents` job (the safety sensor
requests it per partition for each batch of new incidents: `record_incidents_request`). The observations stay the source
of truth: `partition_incidents` reads them, so the leaderboard never waits for a refresh.
Each incident carries its review state (open or resolved, by whom and why), read from the
`incident_reviews` observations (`eval_pipelines.safety.reviews`); a review does not
rebuild the table, the next `record_incidents` run shows it.
"""

import json
import time
from dataclasses import dataclass, replace

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DagsterInstance,
    DagsterRun,
    MaterializeResult,
    MetadataValue,
    MultiPartitionsDefinition,
    RunRequest,
    asset,
)

from eval_pipelines.core.log_viewer import transcript_url
from eval_pipelines.core.names import (
    INCIDENTS_ASSET,
    PARTITION_TAG,
    RECORD_INCIDENTS_JOB,
    TASK_TAG_PREFIX,
)
from eval_pipelines.core.partitions import partition_key, split_partition_key
from eval_pipelines.core.text import markdown_table
from eval_pipelines.results import resume
from eval_pipelines.results.records import observations
from eval_pipelines.safety.incidents import Incident, load_incident
from eval_pipelines.safety.reviews import OPEN, IncidentReview, latest_reviews
from resources.artifact_store import ArtifactStore, content_key

INCIDENTS_GROUP = "safety"


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
        record_uri = observation.metadata["record"].value
        incident = load_incident(artifacts, record_uri)
        latest[incident.id] = RecordedIncident(
            incident, record_uri, observation.metadata["report"].value, storage_id
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


def _when(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def _log_link(incident: Incident) -> str | None:
    """The incident's sample in Inspect's log viewer, or None without a stored log."""
    if not incident.eval_log_uri:
        return None
    return transcript_url(incident.eval_log_uri, incident.sample_id, incident.epoch or 1)


def incident_row(found: RecordedIncident) -> dict:
    """The asset's row for one incident: the record, its review state (`reviewed_*`: the
    latest review's, who resolved it or reopened it and why; None if never reviewed), plus
    where to read more."""
    incident, review = found.incident, found.review
    return {
        **incident.model_dump(exclude={"partition"}),
        "state": found.state,
        "reviewed_by": review.by if review else None,
        "review_reason": review.reason if review else None,
        "reviewed_at": review.at if review else None,
        "record": found.record_uri,
        "report": found.report_uri,
        "transcript": _log_link(incident),
    }


_COLUMNS = ("detected (UTC)", "rule", "severity", "action", "task", "sample", "killed after",
            "run", "state")  # fmt: skip


def _markdown(rows: list[dict]) -> str:
    if not rows:
        return "No incidents."
    cells = []
    for r in rows:
        state = r["state"]
        if r["reviewed_by"]:
            state += f" ({r['reviewed_by']}: {r['review_reason']})"
        cells.append({
            "detected (UTC)": _when(r["detected_at"]),
            "rule": r["rule_id"],
            "severity": r["severity"],
            "action": r["action"],
            "task": r["task"],
            "sample": None if r["sample_id"] is None else f"{r['sample_id']}#{r['epoch']}",
            "killed after": None if r["killed_at"] is None
            else f"{r['killed_at'] - r['detected_at']:.3f} s",
            "run": r["run_id"][:8],
            "state": state,
        })  # fmt: skip
    return markdown_table(cells, list(_COLUMNS))


def build_incidents_asset(partitions_def: MultiPartitionsDefinition) -> AssetsDefinition:
    """`incidents`, partitioned like the evaluation results it sits beside."""

    @asset(
        name=INCIDENTS_ASSET.path[-1],
        partitions_def=partitions_def,
        group_name=INCIDENTS_GROUP,
    )
    def incidents(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
        """Every incident of this model x suite: rule, severity, action, where, evidence, times,
        the `.eval` log, review state (open or resolved, by whom, why); a markdown report per
        incident. Reviews made since this run show at its next refresh."""
        partition = str(context.partition_key)
        found = partition_incidents(context.instance, artifacts, partition).get(partition, [])
        rows = [incident_row(f) for f in found]
        data = json.dumps(rows, sort_keys=True, indent=2).encode()
        model_id, suite = split_partition_key(partition)
        snapshot = artifacts.put(
            content_key(f"incidents/model={model_id}/suite={suite}/table", data, ".json"), data
        )
        links = {}
        for f, row in zip(found, rows, strict=True):
            links[f"report/{f.incident.id}"] = MetadataValue.md(f.incident.report())
            if row["transcript"]:
                links[f"transcript/{f.incident.id}"] = MetadataValue.url(row["transcript"])
        return MaterializeResult(
            metadata={
                "incidents": len(rows),
                "open": sum(f.is_open for f in found),
                "resolved": sum(not f.is_open for f in found),
                "critical": sum(r["severity"] == "critical" for r in rows),
                "table": MetadataValue.md(_markdown(rows)),
                "snapshot": MetadataValue.url(snapshot),
                **links,
            }
        )

    return incidents


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
