"""The evaluation result assets: one graph of ops materializes all three per partition."""

from dagster import AssetOut, AssetsDefinition, MultiPartitionsDefinition, graph_multi_asset

from eval_pipelines.core.versions import HARNESS_VERSION
from eval_pipelines.evaluation.prepare import prepare_evaluation
from eval_pipelines.evaluation.publish import publish_results
from eval_pipelines.evaluation.run_task import run_eval_task

EVALUATION_GROUP = "evaluation"


def build_evaluation_assets(partitions_def: MultiPartitionsDefinition) -> AssetsDefinition:
    """`eval_logs`, `sample_results` and `task_scores`, partitioned by model x suite.

    All three are stored as snapshots by `publish_results` and read back through the
    results IO manager (set on its outputs), so readers only see one run's complete set.
    """

    @graph_multi_asset(
        name="evaluation",
        partitions_def=partitions_def,
        group_name=EVALUATION_GROUP,
        outs={
            "eval_logs": AssetOut(
                description="Inspect `.eval` logs of each task, stored immutably in the artifact store.",
                code_version=HARNESS_VERSION,
            ),
            "sample_results": AssetOut(
                description="One row per sample and epoch: score, tokens, time, error, limit hit.",
                code_version=HARNESS_VERSION,
            ),
            "task_scores": AssetOut(
                description="Per task: mean score, standard error, 95% CI, n, errors.",
                code_version=HARNESS_VERSION,
            ),
        },
    )
    def evaluation():
        prepared, tasks = prepare_evaluation()
        results = tasks.map(run_eval_task).collect()
        eval_logs, sample_results, task_scores = publish_results(prepared, results)
        return {
            "eval_logs": eval_logs,
            "sample_results": sample_results,
            "task_scores": task_scores,
        }

    return evaluation
