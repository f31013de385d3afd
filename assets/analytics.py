"""Analytics assets: results -> evaluation_history -> score_trends / model_comparison /
evaluation_outcomes. Each stores its table as a Parquet artifact (see
`eval_pipelines.analytics.store`) and records the URI in its materialization metadata.

The tables are built by `eval_pipelines.analytics.tables`, imported when an analytics asset
runs: the code location (loaded by every run worker and step process) needs no pandas.
"""

from types import ModuleType

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    AutomationCondition,
    MaterializeResult,
    asset,
)

from assets.leaderboard import REFRESH_AFTER_NEW_RESULTS
from eval_pipelines.core.names import (
    COMPARISON,
    HISTORY,
    OUTCOMES,
    TRENDS,
)
from resources.artifact_store import ArtifactStore

GROUP = "analytics"


def _tables() -> ModuleType:
    from eval_pipelines.analytics import tables

    return tables


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
    return _tables().evaluation_history(context, artifacts)


_AFTER_HISTORY = AutomationCondition.eager()


@asset(name=TRENDS, group_name=GROUP, deps=[HISTORY], automation_condition=_AFTER_HISTORY)
def score_trends(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
    """Each (model, suite, task) score over time, with the change since the previous run."""
    return _tables().score_trends(context, artifacts)


@asset(name=COMPARISON, group_name=GROUP, deps=[HISTORY], automation_condition=_AFTER_HISTORY)
def model_comparison(context: AssetExecutionContext, artifacts: ArtifactStore) -> MaterializeResult:
    """Every pair of models evaluated on the same samples of a suite: per task, the paired
    difference (a - b) with its 95% CI and whether it is significant, and the runs compared."""
    return _tables().model_comparison(context, artifacts)


@asset(name=OUTCOMES, group_name=GROUP, deps=[HISTORY], automation_condition=_AFTER_HISTORY)
def evaluation_outcomes(
    context: AssetExecutionContext, artifacts: ArtifactStore
) -> MaterializeResult:
    """Per model and suite: the share of runs complete, partial, failed, safety-stopped, canceled."""
    return _tables().evaluation_outcomes(context, artifacts)


def build_analytics_assets() -> list[AssetsDefinition]:
    return [evaluation_history, score_trends, model_comparison, evaluation_outcomes]
