"""Jobs over the assets: run an evaluation (one model x suite partition), refresh the
leaderboard, record a partition's incidents, refresh the analytics."""

from dagster import AssetsDefinition, AssetSelection, JobDefinition, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

from eval_pipelines.catalog.launch_config import EvaluationConfig, evaluation_run_config
from eval_pipelines.core.names import (
    ANALYTICS_ASSETS,
    ANALYTICS_JOB,
    EVALUATION_JOB,
    LEADERBOARD_JOB,
    RECORD_INCIDENTS_JOB,
)

# The evaluate job as sensors and schedules target it: built from the assets, or resolved.
EvaluationJob = JobDefinition | UnresolvedAssetJobDefinition


def build_evaluation_job(evaluation: AssetsDefinition) -> UnresolvedAssetJobDefinition:
    # The default run config is what the Launchpad opens with: every field, at its default.
    return define_asset_job(
        EVALUATION_JOB,
        selection=AssetSelection.assets(evaluation),
        config=evaluation_run_config(EvaluationConfig().model_dump()),
        description="Evaluate one model on one suite (pick the model|suite partition).",
        tags={"kind": "evaluation"},
    )


leaderboard_job = define_asset_job(LEADERBOARD_JOB, selection=AssetSelection.assets("leaderboard"))

record_incidents_job = define_asset_job(
    RECORD_INCIDENTS_JOB,
    selection=AssetSelection.assets("incidents"),
    description="Refresh one model|suite partition's incidents table (the safety sensor "
    "launches it per new incident).",
)

# What `evalctl history/compare --refresh` runs in-process; the sensor does it in the UI.
analytics_job = define_asset_job(
    ANALYTICS_JOB,
    selection=AssetSelection.assets(*ANALYTICS_ASSETS),
    description="Append new runs to the evaluation history and rebuild trends, comparison, outcomes.",
)
