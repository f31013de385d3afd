"""The `incidents` asset: one row per incident of an evaluation partition, as data.

The monitor (and operators, and the capability check) announce incidents as observations
of this asset the moment they happen (`eval_pipelines.safety.incidents`); this asset is the
partition's table of them, materialized by the `record_incidents` job (the safety sensor
requests it per partition for each batch of new incidents). The observations stay the source
of truth: `partition_incidents` (`eval_pipelines.safety.incident_records`) reads them, so the
leaderboard never waits for a refresh.
Each incident carries its review state (open or resolved, by whom and why), read from the
`incident_reviews` observations (`eval_pipelines.safety.reviews`); a review does not
rebuild the table, the next `record_incidents` run shows it.
"""

import json
import time

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    MultiPartitionsDefinition,
    asset,
)

from eval_pipelines.core.log_viewer import transcript_url
from eval_pipelines.core.names import (
    INCIDENT_REVIEWS,
    INCIDENTS_ASSET,
    MODEL_QUARANTINE,
)
from eval_pipelines.core.partitions import model_partitions, split_partition_key
from eval_pipelines.core.text import markdown_table
from eval_pipelines.safety.incident_records import RecordedIncident, partition_incidents
from eval_pipelines.safety.incidents import Incident
from resources.artifact_store import ArtifactStore

INCIDENTS_GROUP = "safety"


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
        snapshot = artifacts.store(f"incidents/model={model_id}/suite={suite}/table", data, ".json")
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


def build_safety_state_assets(partitions_def: MultiPartitionsDefinition) -> list[AssetSpec]:
    """Assets that are only observed, shown in the UI beside `incidents`: each model's
    quarantine state (the quarantine job, `evalctl quarantine lift`) and each model|suite's
    incident reviews (`evalctl incidents resolve/reopen`)."""
    return [
        AssetSpec(
            MODEL_QUARANTINE, group_name=INCIDENTS_GROUP, partitions_def=model_partitions,
            description="Whether each model is quarantined; history of who quarantined and lifted.",
        ),
        AssetSpec(
            INCIDENT_REVIEWS, group_name=INCIDENTS_GROUP, partitions_def=partitions_def,
            description="Reviews of each model|suite's incidents: who resolved or reopened which "
            "incident, why and when; an incident's latest review is its state.",
        ),
    ]  # fmt: skip
