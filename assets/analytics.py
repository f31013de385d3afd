"""Analytics assets: results -> evaluation_history -> score_trends / model_comparison /
evaluation_outcomes. Each stores its table as a Parquet artifact (see
`eval_pipelines.analytics.store`) and records the URI in its materialization metadata."""

import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSelection,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)

from assets.leaderboard import REFRESH_AFTER_NEW_RESULTS
from eval_pipelines.analytics import history, runs, stats
from eval_pipelines.analytics.store import (
    TABLE_METADATA,
    latest_table,
    latest_table_uri,
    read_frame,
    write_frame,
)
from resources.artifact_store import ArtifactStore

GROUP = "analytics"
HISTORY, TRENDS, COMPARISON, OUTCOMES = (
    "evaluation_history",
    "score_trends",
    "model_comparison",
    "evaluation_outcomes",
)
ANALYTICS_ASSETS = (HISTORY, TRENDS, COMPARISON, OUTCOMES)
ANALYTICS_JOB = "refresh_analytics"
# Markdown previews stay readable (and metadata small) however many models there are.
PREVIEW_ROWS = 40
# Below this many series, each also gets a numeric entry the UI's Plots tab draws.
PLOTTED_SERIES = 30


def _markdown(frame: pd.DataFrame, columns: list[str]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.3f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |"
        for row in frame[columns].itertuples(index=False)
    ]
    return "\n".join(lines)


def _history_manifest(context: AssetExecutionContext, artifacts: ArtifactStore) -> pd.DataFrame:
    uri = latest_table_uri(context.instance, HISTORY)
    return history.empty_manifest() if uri is None else read_frame(artifacts, uri)


@asset(
    name=HISTORY,
    group_name=GROUP,
    # Not an input: it reads every finished evaluation run from the instance, including
    # runs that published nothing (failed, partial, safety-stopped, canceled).
    deps=[AssetDep("task_scores", partition_mapping=AllPartitionMapping())],
    automation_condition=REFRESH_AFTER_NEW_RESULTS,
)
def evaluation_history(
    context: AssetExecutionContext, artifacts: ArtifactStore
) -> MaterializeResult:
    """One row per task per evaluation run, all runs ever (failed, partial, safety-stopped
    included, with their provenance); append-only: runs already recorded are never rewritten."""
    manifest = _history_manifest(context, artifacts)
    new = runs.finished_runs(context.instance, set(manifest["run_id"]))
    manifest = history.append_runs(
        artifacts, manifest, (runs.run_frames(context.instance, artifacts, r) for r in new)
    )
    return MaterializeResult(
        metadata={
            TABLE_METADATA: MetadataValue.url(
                write_frame(artifacts, f"{history.PREFIX}/manifest", manifest)
            ),
            "runs": len(manifest),
            "new_runs": len(new),
            "models": manifest["model_id"].nunique(),
            "suites": manifest["suite"].nunique(),
            "latest_runs": MetadataValue.md(
                _markdown(
                    manifest.sort_values("evaluated_at", ascending=False).head(PREVIEW_ROWS),
                    [
                        "evaluated_at",
                        "model_id",
                        "suite",
                        "suite_version",
                        "status",
                        "limited",
                        "run_id",
                    ],
                )
            ),
        }
    )


def _manifest(
    context: AssetExecutionContext, artifacts: ArtifactStore, *, quarantined: bool = True
) -> pd.DataFrame:
    """The history's runs; `quarantined=False` leaves out runs under quarantine, whose
    results the trends and comparisons do not use (the history and outcomes keep them)."""
    manifest = latest_table(context.instance, artifacts, HISTORY)
    if quarantined:
        return manifest
    return manifest[~manifest["run_id"].isin(runs.quarantined_runs(context.instance))]


_AFTER_HISTORY = AutomationCondition.eager()


@asset(name=TRENDS, group_name=GROUP, deps=[HISTORY], automation_condition=_AFTER_HISTORY)
def score_trends(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
    """Each (model, suite, task) score over time, with the change since the previous run."""
    trends = stats.score_trends(
        history.load_tasks(artifacts, _manifest(context, artifacts, quarantined=False))
    )
    summary = stats.trends_summary(trends)
    plotted = (
        {f"latest/{r.model_id}|{r.suite}|{r.task}": float(r.latest) for r in summary.itertuples()}
        if len(summary) <= PLOTTED_SERIES
        else {}
    )
    return MaterializeResult(
        metadata={
            TABLE_METADATA: MetadataValue.url(
                write_frame(artifacts, "analytics/score_trends", trends)
            ),
            "series": len(summary),
            "points": len(trends),
            "rising": int((summary["change"] > 0).sum()),
            "falling": int((summary["change"] < 0).sum()),
            "trends": MetadataValue.md(
                _markdown(
                    summary.sort_values("change").head(PREVIEW_ROWS),
                    ["model_id", "suite", "task", "trend", "runs", "first", "latest", "change"],
                )
            ),
            **plotted,
        }
    )


@asset(name=COMPARISON, group_name=GROUP, deps=[HISTORY], automation_condition=_AFTER_HISTORY)
def model_comparison(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
    """Every pair of models evaluated on the same samples of a suite: per task, the paired
    difference (a - b) with its 95% CI and whether it is significant, and the runs compared."""
    table = stats.model_comparison(
        _manifest(context, artifacts, quarantined=False), history.sample_loader(artifacts)
    )
    return MaterializeResult(
        metadata={
            TABLE_METADATA: MetadataValue.url(
                write_frame(artifacts, "analytics/model_comparison", table)
            ),
            "comparisons": len(table),
            "significant": int(table["significant"].sum()),
            "largest_differences": MetadataValue.md(
                _markdown(
                    table.reindex(table["diff"].abs().sort_values(ascending=False).index).head(
                        PREVIEW_ROWS
                    ),
                    [
                        "suite",
                        "task",
                        "model_a",
                        "model_b",
                        "n",
                        "diff",
                        "ci_low",
                        "ci_high",
                        "significant",
                    ],
                )
            ),
        }
    )


@asset(name=OUTCOMES, group_name=GROUP, deps=[HISTORY], automation_condition=_AFTER_HISTORY)
def evaluation_outcomes(
    context: AssetExecutionContext, artifacts: ArtifactStore
) -> MaterializeResult:
    """Per model and suite: the share of runs complete, partial, failed, safety-stopped, canceled."""
    table = stats.outcome_rates(_manifest(context, artifacts))
    return MaterializeResult(
        metadata={
            TABLE_METADATA: MetadataValue.url(
                write_frame(artifacts, "analytics/evaluation_outcomes", table)
            ),
            "runs": int(table["runs"].sum()),
            "outcomes": MetadataValue.md(
                _markdown(
                    table, ["model_id", "suite", "runs", *(f"{o}_rate" for o in stats.OUTCOMES)]
                )
            ),
        }
    )


def build_analytics_assets() -> list[AssetsDefinition]:
    return [evaluation_history, score_trends, model_comparison, evaluation_outcomes]


# What `evalctl history/compare --refresh` runs in-process; the sensor does it in the UI.
analytics_job = define_asset_job(
    ANALYTICS_JOB,
    selection=AssetSelection.assets(*ANALYTICS_ASSETS),
    description="Append new runs to the evaluation history and rebuild trends, comparison, outcomes.",
)
