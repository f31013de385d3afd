"""Jobs: run an evaluation (one model x suite partition), refresh the leaderboard, record a
partition's incidents."""

from dagster import AssetsDefinition, AssetSelection, define_asset_job

from eval_pipelines.catalog.launch_config import EvaluationConfig, evaluation_run_config
from eval_pipelines.core.names import EVALUATION_JOB, LEADERBOARD_JOB, RECORD_INCIDENTS_JOB


def build_evaluation_job(evaluation: AssetsDefinition):
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
