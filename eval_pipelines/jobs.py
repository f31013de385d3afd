"""Jobs: run an evaluation (one model x suite partition), refresh the leaderboard."""

from dagster import AssetsDefinition, AssetSelection, define_asset_job

EVALUATION_JOB = "evaluate"
LEADERBOARD_JOB = "refresh_leaderboard"


def build_evaluation_job(evaluation: AssetsDefinition):
    return define_asset_job(
        EVALUATION_JOB,
        selection=AssetSelection.assets(evaluation),
        description="Evaluate one model on one suite (pick the model|suite partition).",
        tags={"kind": "evaluation"},
    )


leaderboard_job = define_asset_job(LEADERBOARD_JOB, selection=AssetSelection.assets("leaderboard"))
