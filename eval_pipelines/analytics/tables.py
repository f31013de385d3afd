"""The analytics assets' tables, built with pandas (assets/analytics.py defines the assets).

Kept apart so the code location loads without pandas: every run worker, step process and
code server loads the definitions, and pandas alone takes about 1.5 s to import.
"""

from __future__ import annotations

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue

from eval_pipelines.analytics import history, runs, stats
from eval_pipelines.analytics.store import (
    TABLE_METADATA,
    latest_table,
    latest_table_uri,
    read_frame,
    write_frame,
)
from eval_pipelines.core.names import HISTORY
from eval_pipelines.core.text import markdown_table
from resources.artifact_store import ArtifactStore

# Markdown previews stay readable (and metadata small) however many models there are.
PREVIEW_ROWS = 40
# Below this many series, each also gets a numeric entry the UI's Plots tab draws.
PLOTTED_SERIES = 30


def _markdown(frame: pd.DataFrame, columns: list[str]) -> str:
    return markdown_table(frame[columns].to_dict("records"), columns)


def _history_manifest(context: AssetExecutionContext, artifacts: ArtifactStore) -> pd.DataFrame:
    uri = latest_table_uri(context.instance, HISTORY)
    return history.empty_manifest() if uri is None else read_frame(artifacts, uri)


def evaluation_history(
    context: AssetExecutionContext, artifacts: ArtifactStore
) -> MaterializeResult:
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


def score_trends(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
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


def model_comparison(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
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


def evaluation_outcomes(
    context: AssetExecutionContext, artifacts: ArtifactStore
) -> MaterializeResult:
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
