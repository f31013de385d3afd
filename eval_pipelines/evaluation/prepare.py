"""The evaluation's first op: resolve the partition's model and suite, refuse what can't run,
and fan out one task plan per task.

What needs Inspect (loading and checking the tasks) is in `inspect_work`, imported when the op
runs: every process loads the code location, and with it this module, most without evaluating.
"""

from datetime import UTC, datetime

from dagster import DynamicOut, DynamicOutput, Failure, OpExecutionContext, Out, Output, op

from eval_pipelines.catalog import Catalog
from eval_pipelines.catalog.launch_config import EvaluationConfig, evaluation_config_field
from eval_pipelines.catalog.specs import UsageLimits
from eval_pipelines.core.names import EVALUATED_AT_TAG, FINGERPRINT_TAG, SUITE_VERSION_TAG
from eval_pipelines.core.partitions import split_partition_key
from eval_pipelines.core.versions import runtime_versions
from eval_pipelines.evaluation.plan import PreparedEvaluation, TaskPlan
from eval_pipelines.execution.k8s import op_k8s_tags
from eval_pipelines.results import resume
from resources.sandbox import SandboxBackend


@op(
    config_schema=evaluation_config_field(),
    out={"evaluation": Out(PreparedEvaluation), "tasks": DynamicOut(TaskPlan)},
    tags={**op_k8s_tags("prepare"), "stage": "prepare"},
)
def prepare_evaluation(context: OpExecutionContext, sandbox: SandboxBackend):
    """Resolve the partition's model and suite, load every task, refuse what can't run."""
    from eval_pipelines.evaluation.inspect_work import EvaluationRefused, validate_evaluation

    # None when a launch gives no run config at all (GraphQL, schedules): every default.
    config = EvaluationConfig(**(context.op_config or {}))
    model_id, suite_name = split_partition_key(context.partition_key)
    try:
        model, suite = validate_evaluation(
            Catalog.default(), model_id, suite_name, sandbox, context.instance
        )
    except EvaluationRefused as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc

    limits_override = UsageLimits(**config.limits.model_dump())
    versions = runtime_versions()
    run_fingerprint = resume.fingerprint(
        {
            "harness": versions["harness_version"],
            "inspect_ai": versions["inspect_ai_version"],
            "model": model.model_dump(),
            "suite": suite.model_dump(),
            "limits": limits_override.model_dump(),
            "sample_limit": config.sample_limit,
            "epochs": config.epochs,
        }
    )
    started_at = datetime.now(UTC).isoformat()
    context.instance.add_run_tags(
        context.run_id,
        {
            FINGERPRINT_TAG: run_fingerprint,
            SUITE_VERSION_TAG: suite.version,
            EVALUATED_AT_TAG: started_at,
        },
    )
    evaluation = PreparedEvaluation(
        model=model,
        suite=suite,
        run_id=context.run_id,
        limits_override=limits_override,
        sample_limit=config.sample_limit,
        epochs=config.epochs,
        max_samples=config.max_samples,
        versions=versions,
        started_at=started_at,
        partition=str(context.partition_key),
        resume=config.resume,
        fingerprint=run_fingerprint,
    )
    context.log.info(
        f"Evaluating {model.id} ({model.model}) on {suite.name} v{suite.version}: "
        f"{len(suite.tasks)} task(s) {', '.join(t.name for t in suite.tasks)}"
    )
    yield Output(evaluation, "evaluation")
    for spec in suite.tasks:
        yield DynamicOutput(
            TaskPlan(evaluation=evaluation, task=spec),
            mapping_key=resume.task_key(spec.name),
            output_name="tasks",
        )
