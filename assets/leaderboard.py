"""Leaderboard: the published task scores of every model on every suite."""

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    AutomationCondition,
    DagsterInstance,
    MetadataValue,
    RunsFilter,
    asset,
)

from eval_pipelines.catalog.policy import SEVERITIES
from eval_pipelines.core.names import EVALUATION_JOB, PARTITION_TAG
from eval_pipelines.core.partitions import split_partition_key
from eval_pipelines.core.text import markdown_table
from eval_pipelines.results.provenance import Provenance, run_provenance
from eval_pipelines.results.records import PublishedResult, published_partitions, published_results
from eval_pipelines.safety.incident_records import RecordedIncident, partition_incidents
from eval_pipelines.safety.incidents import Incident
from resources.artifact_store import ArtifactStore

IN_CATALOG, NOT_IN_CATALOG = "in catalog", "not in catalog"


def _worst(incidents: list[Incident]) -> str | None:
    return max((i.severity for i in incidents), key=SEVERITIES.index, default=None)


@dataclass(frozen=True)
class Standing:
    """What the leaderboard shows for one partition: a result, how it was obtained, and the
    partition's latest attempt (which may be newer: a limited, failed or running run)."""

    partition: str
    scores: dict
    provenance: Provenance
    latest_attempt: Provenance


def shown_result(
    instance: DagsterInstance, partition: str, catalog_version: str | None
) -> tuple[PublishedResult, Provenance] | None:
    """The result the leaderboard shows for `partition`, with its run's provenance.

    The latest complete (unlimited) result of the catalog's suite version; failing that the
    latest limited one of that version; failing that (only older versions were evaluated)
    the latest of those, complete before limited. For a suite gone from the catalog
    (`catalog_version` None) every version counts. A result's version is the one it published.
    """
    best, best_rank = None, None
    for result in published_results(instance, partition):
        provenance = run_provenance(instance, result.run_id)
        version = result.metadata("task_scores", "suite_version")
        rank = (catalog_version in (None, version), not provenance.limited)
        if rank == (True, True):
            return result, provenance
        if best_rank is None or rank > best_rank:
            best, best_rank = (result, provenance), rank
    return best


def latest_attempt(instance: DagsterInstance, partition: str) -> Provenance | None:
    """The partition's newest evaluate run, whatever became of it."""
    records = instance.get_run_records(
        RunsFilter(job_name=EVALUATION_JOB, tags={PARTITION_TAG: partition}), limit=1
    )
    return run_provenance(instance, records[0].dagster_run.run_id) if records else None


def leaderboard_rows(
    standings: list[Standing],
    catalog_versions: Mapping[str, str],
    incidents_by_partition: dict[str, list[RecordedIncident]] | None = None,
) -> list[dict]:
    """One row per (model, suite): mean over tasks plus each task's mean and n, best first.

    Each row says how its numbers were obtained (`run_id`, `evaluated_at`, `suite_version`,
    `limited` and its overrides, `n` and epochs per task) and how the partition's latest
    attempt ended (`status`, `latest_attempt`). Rows of an older suite version than the
    catalog's are `stale`, and sort after the current ones. Rows of a suite no longer in the
    catalog stay, marked, rather than vanish. A row counts the partition's open incidents
    and their worst severity, and its resolved ones, so a resolution never hides an incident.
    """
    incidents_by_partition = incidents_by_partition or {}
    rows = []
    for standing in standings:
        scores, provenance = standing.scores, standing.provenance
        model_id, suite = split_partition_key(standing.partition)
        means = {t["task"]: t["mean"] for t in scores["tasks"]}
        incidents = incidents_by_partition.get(standing.partition, [])
        open_incidents = [found.incident for found in incidents if found.is_open]
        catalog_version = catalog_versions.get(suite)
        rows.append(
            {
                "model_id": model_id,
                "model": scores["model"],
                "suite": suite,
                "suite_version": scores["suite_version"],
                "suite_status": NOT_IN_CATALOG if catalog_version is None else IN_CATALOG,
                "catalog_version": catalog_version,
                "stale": catalog_version not in (None, scores["suite_version"]),
                # A task without a score makes the whole row an error: a mean over the tasks
                # that did score would pass for the suite's.
                "overall": None if None in means.values() else statistics.fmean(means.values()),
                "tasks": means,
                "n": {t["task"]: t["n"] for t in scores["tasks"]},
                "errors": {t["task"]: t["errors"] for t in scores["tasks"]},
                # Recorded since issue 15 (absent before: the first metric, the suite's sandbox).
                "headline": {t["task"]: t.get("headline") for t in scores["tasks"]},
                "task_sandboxes": {t["task"]: t.get("sandbox") for t in scores["tasks"]},
                # Recorded since issue 9; None for results published before.
                "task_epochs": {t["task"]: t.get("epochs") for t in scores["tasks"]},
                "limited": provenance.limited,
                "sample_limit": provenance.sample_limit,
                "epochs": provenance.epochs,
                "evaluated_at": scores["evaluated_at"],
                "run_id": scores["run_id"],
                "status": standing.latest_attempt.status,
                "latest_attempt": standing.latest_attempt.model_dump(),
                "open_incidents": len(open_incidents),
                "worst_severity": _worst(open_incidents),
                "resolved_incidents": len(incidents) - len(open_incidents),
            }
        )
    return sorted(
        rows, key=lambda r: (r["suite"], r["stale"], -(r["overall"] or 0.0), r["model_id"])
    )


def scope(row: dict) -> str:
    """'complete', or 'LIMITED (the overrides)', of a leaderboard row or task_scores value."""
    if not row["limited"]:
        return "complete"
    overrides = (f"{k}={row[k]}" for k in ("sample_limit", "epochs") if row[k] is not None)
    return f"LIMITED ({', '.join(overrides)})"


def _status(row: dict) -> str:
    attempt = row["latest_attempt"]
    if attempt["run_id"] == row["run_id"]:
        return attempt["status"]
    limited = " limited" if attempt["limited"] else ""
    return f"last attempt{limited} {attempt['status']} ({attempt['run_id'][:8]})"


def _task_cell(row: dict, task: str) -> str:
    if task not in row["tasks"]:
        return ""
    errors = row.get("errors", {}).get(task)
    if row["tasks"][task] is None:
        return f"ERROR: no score ({errors} errored)" if errors else "ERROR: no score"
    notes = [f"n={row['n'][task]}"]
    sandbox = row.get("task_sandboxes", {}).get(task) or ""
    if " in place of " in sandbox:
        notes.append(sandbox)
    return f"{row['tasks'][task]:.3f} ({', '.join(notes)})"


def _cells(row: dict, tasks: list[str]) -> list[str]:
    scores = [_task_cell(row, t) for t in tasks]
    incidents = row["open_incidents"]
    overall = "ERROR" if None in row["tasks"].values() else f"{row['overall']:.3f}"
    return [
        row["model_id"],
        overall,
        *scores,
        row["suite_version"],
        scope(row),
        _status(row),
        row["evaluated_at"][:19],
        row["run_id"][:8],
        f"{incidents} ({row['worst_severity']})" if incidents else "",
        # Rows built before reviews existed have no count.
        str(row.get("resolved_incidents") or ""),
    ]


def display_sections(rows: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, cells) per table to show: one per suite, and stale rows (older suite
    versions) in a table of their own. The UI's markdown and `evalctl leaderboard` print these."""
    sections = []
    for suite in sorted({r["suite"] for r in rows}):
        suite_rows = [r for r in rows if r["suite"] == suite]
        version = suite_rows[0]["catalog_version"]
        groups = (
            [(f"{suite} ({NOT_IN_CATALOG})", suite_rows)]
            if version is None
            else [
                (f"{suite} v{version}", [r for r in suite_rows if not r["stale"]]),
                (
                    f"{suite}: STALE, older versions than the catalog's v{version}",
                    [r for r in suite_rows if r["stale"]],
                ),
            ]
        )
        for title, group in groups:
            if not group:
                continue
            tasks = sorted({t for r in group for t in r["tasks"]})
            header = ["model", "overall", *tasks, "version", "scope", "status", "evaluated",
                      "run", "open incidents", "resolved"]  # fmt: skip
            sections.append((title, header, [_cells(r, tasks) for r in group]))
    return sections


def _markdown(rows: list[dict]) -> str:
    lines = []
    for title, header, cells in display_sections(rows):
        table = markdown_table([dict(zip(header, row, strict=True)) for row in cells], header)
        lines += [f"### {title}", "", table, ""]
    return "\n".join(lines)


# Not `eager()`: that waits for every upstream partition, and most model x suite
# combinations are never evaluated. Refresh whenever any evaluation lands instead, even
# while other evaluations run or are stuck (the leaderboard reads only published results),
# but never two at once. A result that lands while a refresh is requested or running is
# kept pending, not cleared by that request: that run may have read before it landed.
_NEW_RESULTS = AutomationCondition.any_deps_updated()
REFRESH_AFTER_NEW_RESULTS = (
    _NEW_RESULTS.since(
        (AutomationCondition.newly_requested() & ~_NEW_RESULTS)
        | AutomationCondition.initial_evaluation()
    )
    & ~AutomationCondition.in_progress()
).with_label("refresh after new results")


def build_leaderboard(catalog_versions: Mapping[str, str]) -> AssetsDefinition:
    """The leaderboard over every published partition; `catalog_versions` (suite name ->
    version in the catalog) marks current suites and versions."""

    @asset(
        # Not an input: the partitions definition holds only suites that load now, and
        # results of a suite that stopped loading must stay visible. Read from the instance.
        deps=[
            AssetDep("task_scores", partition_mapping=AllPartitionMapping()),
            AssetDep("incidents", partition_mapping=AllPartitionMapping()),
            AssetDep("incident_reviews", partition_mapping=AllPartitionMapping()),
        ],
        group_name="analytics",
        automation_condition=REFRESH_AFTER_NEW_RESULTS,
    )
    def leaderboard(context: AssetExecutionContext, artifacts: ArtifactStore) -> list[dict]:
        """Published task scores for every evaluated model and suite, each marked with its
        open and resolved incidents (read from their announcements and reviews, not the
        `incidents` table, so a mark never waits for that table's refresh)."""
        instance = context.instance
        standings = []
        for key in published_partitions(instance):
            found = shown_result(instance, key, catalog_versions.get(split_partition_key(key)[1]))
            if found is None:
                context.log.warning(f"left out: {key} has no published result")
                continue
            result, provenance = found
            standings.append(
                Standing(
                    key,
                    result.value("task_scores", artifacts),
                    provenance,
                    latest_attempt(instance, key) or provenance,
                )
            )
        incidents = partition_incidents(context.instance, artifacts)
        rows = leaderboard_rows(standings, catalog_versions, incidents)
        context.add_output_metadata(
            {
                "evaluations": len(rows),
                "models": len({r["model_id"] for r in rows}),
                "suites_not_in_catalog": len(
                    {r["suite"] for r in rows if r["suite_status"] == NOT_IN_CATALOG}
                ),
                "with_open_incidents": sum(r["open_incidents"] > 0 for r in rows),
                "resolved_incidents": sum(r["resolved_incidents"] for r in rows),
                "limited": sum(r["limited"] for r in rows),
                "stale": sum(r["stale"] for r in rows),
                "table": MetadataValue.md(_markdown(rows)),
            }
        )
        return rows

    return leaderboard
