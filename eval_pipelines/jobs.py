"""Jobs: run an evaluation (one model x suite partition), refresh the leaderboard, record a
partition's incidents."""

from dagster import AssetsDefinition, AssetSelection, define_asset_job

from eval_pipelines.ops import EvaluationConfig

EVALUATION_JOB = "evaluate"
LEADERBOARD_JOB = "refresh_leaderboard"
RECORD_INCIDENTS_JOB = "record_incidents"


def evaluation_run_config(config: dict) -> dict:
    """Run config of the evaluate job: `EvaluationConfig` sits on the graph's prepare op."""
    return {"ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": config}}}}}


def evaluation_config_of(run_config: dict) -> EvaluationConfig:
    """The `EvaluationConfig` an evaluate run was launched with (defaults where none given)."""
    ops = run_config.get("ops", {}).get("evaluation", {}).get("ops", {})
    return EvaluationConfig(**(ops.get("prepare_evaluation", {}).get("config") or {}))


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
