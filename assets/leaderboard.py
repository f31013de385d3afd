"""Leaderboard: the published task scores of every model on every suite."""

import statistics
from collections.abc import Collection

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    AutomationCondition,
    MetadataValue,
    asset,
)

from assets.incidents import partition_incidents
from eval_pipelines.partitions import split_partition_key
from eval_pipelines.records import published_partitions, published_result
from eval_pipelines.safety.incidents import Incident
from eval_pipelines.safety.policy import SEVERITIES
from resources.artifact_store import ArtifactStore

IN_CATALOG, NOT_IN_CATALOG = "in catalog", "not in catalog"


def _worst(incidents: list[Incident]) -> str | None:
    return max((i.severity for i in incidents), key=SEVERITIES.index, default=None)


def leaderboard_rows(
    task_scores_by_partition: dict[str, dict],
    catalog_suites: Collection[str],
    incidents_by_partition: dict[str, list[Incident]] | None = None,
) -> list[dict]:
    """One row per (model, suite): mean over tasks plus each task's mean, best first.

    Rows of a suite no longer in the catalog stay, marked, rather than vanish. A row counts
    the partition's open incidents (every incident is open: there is no resolution yet) and
    their worst severity.
    """
    incidents_by_partition = incidents_by_partition or {}
    rows = []
    for key, scores in task_scores_by_partition.items():
        model_id, suite = split_partition_key(key)
        means = {t["task"]: t["mean"] for t in scores["tasks"]}
        scored = [m for m in means.values() if m is not None]
        incidents = incidents_by_partition.get(key, [])
        rows.append(
            {
                "model_id": model_id,
                "model": scores["model"],
                "suite": suite,
                "suite_version": scores["suite_version"],
                "suite_status": IN_CATALOG if suite in catalog_suites else NOT_IN_CATALOG,
                "overall": statistics.fmean(scored) if scored else None,
                "tasks": means,
                "evaluated_at": scores["evaluated_at"],
                "run_id": scores["run_id"],
                "open_incidents": len(incidents),
                "worst_severity": _worst(incidents),
            }
        )
    return sorted(rows, key=lambda r: (r["suite"], -(r["overall"] or 0.0), r["model_id"]))


def _markdown(rows: list[dict]) -> str:
    lines = []
    for suite in sorted({r["suite"] for r in rows}):
        suite_rows = [r for r in rows if r["suite"] == suite]
        tasks = sorted({t for r in suite_rows for t in r["tasks"]})
        status = "" if suite_rows[0]["suite_status"] == IN_CATALOG else f" ({NOT_IN_CATALOG})"
        lines += [
            f"### {suite}{status}",
            "",
            "| model | overall | " + " | ".join(tasks) + " | open incidents |",
            "|---|---|" + "---|" * len(tasks) + "---|",
        ]
        for r in suite_rows:
            cells = [
                f"{r['tasks'].get(t):.3f}" if r["tasks"].get(t) is not None else "" for t in tasks
            ]
            overall = f"{r['overall']:.3f}" if r["overall"] is not None else ""
            flag = f"{r['open_incidents']} ({r['worst_severity']})" if r["open_incidents"] else ""
            lines.append(f"| {r['model_id']} | {overall} | " + " | ".join(cells) + f" | {flag} |")
        lines.append("")
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


def build_leaderboard(catalog_suites: Collection[str]) -> AssetsDefinition:
    """The leaderboard over every published partition; `catalog_suites` marks current ones."""

    @asset(
        # Not an input: the partitions definition holds only suites that load now, and
        # results of a suite that stopped loading must stay visible. Read from the instance.
        deps=[
            AssetDep("task_scores", partition_mapping=AllPartitionMapping()),
            AssetDep("incidents", partition_mapping=AllPartitionMapping()),
        ],
        group_name="analytics",
        automation_condition=REFRESH_AFTER_NEW_RESULTS,
    )
    def leaderboard(context: AssetExecutionContext, artifacts: ArtifactStore) -> list[dict]:
        """Published task scores for every evaluated model and suite, each marked with its
        open incidents (read from their announcements, not the `incidents` table, so a
        mark never waits for that table's refresh)."""
        scores = {}
        for key in published_partitions(context.instance):
            try:
                scores[key] = published_result(context.instance, key).value(
                    "task_scores", artifacts
                )
            except LookupError as exc:
                context.log.warning(f"left out: {exc}")
        incidents = {
            key: [found.incident for found in group]
            for key, group in partition_incidents(context.instance, artifacts).items()
        }
        rows = leaderboard_rows(scores, catalog_suites, incidents)
        context.add_output_metadata(
            {
                "evaluations": len(rows),
                "models": len({r["model_id"] for r in rows}),
                "suites_not_in_catalog": len(
                    {r["suite"] for r in rows if r["suite_status"] == NOT_IN_CATALOG}
                ),
                "with_open_incidents": sum(r["open_incidents"] > 0 for r in rows),
                "table": MetadataValue.md(_markdown(rows)),
            }
        )
        return rows

    return leaderboard
