"""Leaderboard: the latest task scores of every model on every suite."""

import statistics

from dagster import (
    AllPartitionMapping,
    AssetExecutionContext,
    AssetIn,
    AutomationCondition,
    MetadataValue,
    asset,
)

from eval_pipelines.partitions import split_partition_key


def leaderboard_rows(task_scores_by_partition: dict[str, dict]) -> list[dict]:
    """One row per (model, suite): mean over tasks plus each task's mean, best first."""
    rows = []
    for key, scores in task_scores_by_partition.items():
        model_id, suite = split_partition_key(key)
        means = {t["task"]: t["mean"] for t in scores["tasks"]}
        scored = [m for m in means.values() if m is not None]
        rows.append(
            {
                "model_id": model_id,
                "model": scores["model"],
                "suite": suite,
                "suite_version": scores["suite_version"],
                "overall": statistics.fmean(scored) if scored else None,
                "tasks": means,
                "evaluated_at": scores["evaluated_at"],
                "run_id": scores["run_id"],
            }
        )
    return sorted(rows, key=lambda r: (r["suite"], -(r["overall"] or 0.0), r["model_id"]))


def _markdown(rows: list[dict]) -> str:
    lines = []
    for suite in sorted({r["suite"] for r in rows}):
        suite_rows = [r for r in rows if r["suite"] == suite]
        tasks = sorted({t for r in suite_rows for t in r["tasks"]})
        lines += [
            f"### {suite}",
            "",
            "| model | overall | " + " | ".join(tasks) + " |",
            "|---|---|" + "---|" * len(tasks),
        ]
        for r in suite_rows:
            cells = [
                f"{r['tasks'].get(t):.3f}" if r["tasks"].get(t) is not None else "" for t in tasks
            ]
            overall = f"{r['overall']:.3f}" if r["overall"] is not None else ""
            lines.append(f"| {r['model_id']} | {overall} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


# Not `eager()`: that waits for every upstream partition, and most model x suite
# combinations are never evaluated. Refresh whenever any evaluation lands instead.
REFRESH_AFTER_NEW_RESULTS = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("refresh after new results")


@asset(
    ins={
        "task_scores": AssetIn(
            partition_mapping=AllPartitionMapping(),
            # Most model x suite combinations are never evaluated; skip them.
            metadata={"allow_missing_partitions": True},
        )
    },
    group_name="analytics",
    automation_condition=REFRESH_AFTER_NEW_RESULTS,
)
def leaderboard(context: AssetExecutionContext, task_scores: dict[str, dict]) -> list[dict]:
    """Latest task scores for every evaluated model and suite."""
    rows = leaderboard_rows(task_scores)
    context.add_output_metadata(
        {
            "evaluations": len(rows),
            "models": len({r["model_id"] for r in rows}),
            "table": MetadataValue.md(_markdown(rows)),
        }
    )
    return rows
