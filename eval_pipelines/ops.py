"""The evaluation's ops: prepare -> run each task (one op per task) -> publish.

Each op only needs its inputs and resources, so each can run in its own process or pod
(`k8s_job_executor`); everything passed between them is plain picklable data.
"""

import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from dagster import (
    Config,
    DataVersion,
    DynamicOut,
    DynamicOutput,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Out,
    Output,
    op,
)
from pydantic import BaseModel, ConfigDict, Field

from eval_pipelines import inspect_bridge
from eval_pipelines.catalog import Catalog
from eval_pipelines.inspect_bridge import SampleRow, TaskScore
from eval_pipelines.k8s import op_k8s_tags
from eval_pipelines.log_viewer import EVAL_LOGS, transcript_url
from eval_pipelines.partitions import split_partition_key
from eval_pipelines.specs import ModelSpec, SuiteSpec, TaskSpec, UsageLimits
from eval_pipelines.versions import code_version, runtime_versions
from resources.artifact_store import ArtifactStore, content_key
from resources.sandbox import SandboxBackend


class LimitsConfig(Config):
    """Per-sample limits for this run; unset fields keep the suite's limits."""

    messages: int | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)
    time_seconds: int | None = Field(default=None, gt=0)
    working_seconds: int | None = Field(default=None, gt=0)


class EvaluationConfig(Config):
    """Launchpad config of an evaluation; the model and suite come from the partition."""

    limits: LimitsConfig = LimitsConfig()
    sample_limit: int | None = Field(
        default=None, gt=0, description="Run only the first N samples of each task."
    )
    epochs: int | None = Field(default=None, gt=0, description="Override every task's epochs.")
    max_samples: int | None = Field(
        default=None, gt=0, description="Samples run concurrently per task."
    )


class PreparedEvaluation(BaseModel):
    """Everything later ops need, resolved and validated once."""

    model_config = ConfigDict(frozen=True)

    model: ModelSpec
    suite: SuiteSpec
    run_id: str
    limits_override: UsageLimits
    sample_limit: int | None
    epochs: int | None
    max_samples: int | None
    versions: dict[str, str]
    started_at: str


class TaskPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    evaluation: PreparedEvaluation
    task: TaskSpec


class TaskRunResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    log_uri: str
    inspect_status: str
    rows: list[SampleRow]
    score: TaskScore


EvaluationRefused = (inspect_bridge.SpecError, inspect_bridge.SandboxUnavailableError)


def validate_evaluation(
    catalog: Catalog, model_id: str, suite_name: str, sandbox: SandboxBackend
) -> tuple[ModelSpec, SuiteSpec]:
    """Resolve and check a model x suite before anything runs; raises `EvaluationRefused`.

    Refuses an unknown model or suite, a bad spec file, a task Inspect can't load, a model
    provider that can't be built, and a sandboxed task without an isolating backend.
    """
    suite, model = catalog.suite(suite_name), catalog.model(model_id)
    inspect_bridge.resolve_model(model)
    for spec in suite.tasks:
        task = inspect_bridge.load_task(suite, spec)
        inspect_bridge.check_isolation(suite, spec, task, sandbox)
    return model, suite


def _mapping_key(task_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", task_name)


@op(
    out={"evaluation": Out(PreparedEvaluation), "tasks": DynamicOut(TaskPlan)},
    tags={**op_k8s_tags("prepare"), "stage": "prepare"},
)
def prepare_evaluation(
    context: OpExecutionContext, config: EvaluationConfig, sandbox: SandboxBackend
):
    """Resolve the partition's model and suite, load every task, refuse what can't run."""
    model_id, suite_name = split_partition_key(context.partition_key)
    try:
        model, suite = validate_evaluation(Catalog.default(), model_id, suite_name, sandbox)
    except EvaluationRefused as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc

    evaluation = PreparedEvaluation(
        model=model,
        suite=suite,
        run_id=context.run_id,
        limits_override=UsageLimits(**config.limits.model_dump()),
        sample_limit=config.sample_limit,
        epochs=config.epochs,
        max_samples=config.max_samples,
        versions=runtime_versions(),
        started_at=datetime.now(UTC).isoformat(),
    )
    context.log.info(
        f"Evaluating {model.id} ({model.model}) on {suite.name} v{suite.version}: "
        f"{len(suite.tasks)} task(s) {', '.join(t.name for t in suite.tasks)}"
    )
    yield Output(evaluation, "evaluation")
    for spec in suite.tasks:
        yield DynamicOutput(
            TaskPlan(evaluation=evaluation, task=spec),
            mapping_key=_mapping_key(spec.name),
            output_name="tasks",
        )


@op(tags={**op_k8s_tags("run-task"), "stage": "run-task"})
def run_eval_task(
    context: OpExecutionContext, plan: TaskPlan, artifacts: ArtifactStore, sandbox: SandboxBackend
) -> TaskRunResult:
    """Run one task through Inspect and store its `.eval` log as an immutable artifact."""
    evaluation, spec = plan.evaluation, plan.task
    suite = evaluation.suite
    try:
        task = inspect_bridge.load_task(suite, spec)
        # Checked again here: this op may run in another process or pod than prepare.
        inspect_bridge.check_isolation(suite, spec, task, sandbox)
        model = inspect_bridge.resolve_model(evaluation.model)
    except EvaluationRefused as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc

    context.log.info(f"Task {spec.name}: running {spec.task} with {evaluation.model.model}")
    with tempfile.TemporaryDirectory(prefix="inspect-log-") as log_dir:
        log = inspect_bridge.run_task(
            task,
            model,
            spec,
            suite.task_limits(spec).merged(evaluation.limits_override),
            Path(log_dir),
            sandbox=sandbox.environment(spec.sandbox) if spec.sandbox else None,
            max_samples=evaluation.max_samples,
            sample_limit=evaluation.sample_limit,
            epochs=evaluation.epochs,
            tags=[f"model:{evaluation.model.id}", f"suite:{suite.name}", f"run:{context.run_id}"],
        )
        data = Path(log.location).read_bytes()
    prefix = f"{EVAL_LOGS}/model={evaluation.model.id}/suite={suite.name}/task={spec.name}/{context.run_id}"
    log_uri = artifacts.put(content_key(prefix, data, ".eval"), data)
    context.log.info(f"Task {spec.name}: Inspect status {log.status}; log stored at {log_uri}")
    if log.status != "success":
        message = log.error.message if log.error else f"Inspect finished with status {log.status}"
        raise Failure(
            description=f"Task {spec.name} failed in Inspect: {message}",
            metadata={"eval_log": MetadataValue.url(transcript_url(log_uri))},
        )
    rows = inspect_bridge.sample_rows(spec.name, log)
    score = inspect_bridge.task_score(spec.name, rows)
    context.log.info(
        f"Task {spec.name}: score {score.mean:.3f} over n={score.n} ({score.errors} errored)"
        if score.mean is not None
        else f"Task {spec.name}: no scored samples ({score.errors} errored)"
    )
    return TaskRunResult(
        task=spec.name, log_uri=log_uri, inspect_status=log.status, rows=rows, score=score
    )


def _canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else ("" if value is None else str(value))

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


@op(
    out={
        "eval_logs": Out(dict),
        "sample_results": Out(list),
        "task_scores": Out(dict),
    },
    tags={**op_k8s_tags("publish"), "stage": "publish"},
)
def publish_results(
    context: OpExecutionContext,
    evaluation: PreparedEvaluation,
    results: list[TaskRunResult],
    artifacts: ArtifactStore,
):
    """Turn the task runs into the three result assets, each versioned and traceable."""
    model, suite = evaluation.model, evaluation.suite
    results = sorted(results, key=lambda r: [t.name for t in suite.tasks].index(r.task))
    identity = {
        "model_id": model.id,
        "model": model.model,
        "suite": suite.name,
        "suite_version": suite.version,
    }
    common = {
        **identity,
        **evaluation.versions,
        "code_version": code_version(suite.version),
        "run_id": evaluation.run_id,
    }

    logs = {r.task: {"uri": r.log_uri, "inspect_status": r.inspect_status} for r in results}
    rows = [{**identity, **row.model_dump()} for r in results for row in r.rows]
    scores = {
        **identity,
        "run_id": evaluation.run_id,
        "evaluated_at": evaluation.started_at,
        "tasks": [r.score.model_dump() for r in results],
    }
    prefix = f"results/model={model.id}/suite={suite.name}/{evaluation.run_id}"

    def publish(name: str, value: object, extra: dict) -> Output:
        data = _canonical_json(value)
        version = DataVersion(content_key("", data, "").strip("/"))
        uri = artifacts.put(content_key(f"{prefix}/{name}", data, ".json"), data)
        metadata = {
            **common,
            "data_version": version.value,
            "snapshot": MetadataValue.url(uri),
            **extra,
        }
        return Output(value, name, data_version=version, metadata=metadata)

    yield publish(
        "eval_logs",
        logs,
        {
            f"log/{task}": MetadataValue.url(transcript_url(entry["uri"]))
            for task, entry in logs.items()
        },
    )
    errored = sum(r["error"] is not None for r in rows)
    yield publish(
        "sample_results",
        rows,
        {
            "samples": len(rows),
            "errored_samples": errored,
            "max_error_rate": suite.max_error_rate,
            "preview": MetadataValue.md(
                _markdown_table(
                    [
                        {
                            **r,
                            "transcript": f"[open]({transcript_url(logs[r['task']]['uri'], r['sample_id'], r['epoch'])})",
                        }
                        for r in rows[:20]
                    ],
                    ["task", "sample_id", "epoch", "score", "total_tokens", "error", "transcript"],
                )
            ),
        },
    )
    score_rows = [r.score.model_dump() for r in results]
    yield publish(
        "task_scores",
        scores,
        {
            # Numeric metadata per task: the UI plots these across materializations.
            **{f"score/{s['task']}": s["mean"] for s in score_rows if s["mean"] is not None},
            "scores": MetadataValue.md(
                _markdown_table(
                    score_rows, ["task", "mean", "stderr", "ci95_low", "ci95_high", "n", "errors"]
                )
            ),
        },
    )
