"""The evaluation's middle op, one per task: run it through Inspect (in `inspect_work`)."""

from dagster import OpExecutionContext, op

from eval_pipelines.evaluation.plan import TaskPlan, TaskRunResult
from eval_pipelines.execution.k8s import op_k8s_tags
from resources.artifact_store import ArtifactStore
from resources.sandbox import SandboxBackend


@op(tags={**op_k8s_tags("run-task"), "stage": "run-task"})
def run_eval_task(
    context: OpExecutionContext, plan: TaskPlan, artifacts: ArtifactStore, sandbox: SandboxBackend
) -> TaskRunResult:
    """Run one task through Inspect and store its `.eval` log as an immutable artifact.

    Stops within seconds when the run is stopped (`eval_pipelines.execution.stopping`); what it
    finished is then kept as a partial log, never as a result, and a later run resumes it.
    """
    from eval_pipelines.evaluation.inspect_work import evaluate_task

    return evaluate_task(context, plan, artifacts, sandbox)
