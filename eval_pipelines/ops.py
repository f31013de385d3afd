"""The evaluation's ops: prepare -> run each task (one op per task) -> publish.

Each op only needs its inputs and resources, so each can run in its own process or pod
(`k8s_job_executor`); everything passed between them is plain picklable data.

What needs Inspect (validating, running a task) is in `eval_pipelines.evaluate`, imported
when prepare or run-task runs: every process loads the code location, and with it this
module, most without running an evaluation.
"""

import json
from datetime import UTC, datetime

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
from dagster import Field as DagsterField
from dagster._config import ConfigTypeKind, PostProcessingError
from dagster._config.field_utils import _ConfigHasFields
from dagster._config.pythonic_config import infer_schema_from_config_class
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eval_pipelines import resume
from eval_pipelines.catalog import Catalog
from eval_pipelines.k8s import op_k8s_tags
from eval_pipelines.log_viewer import transcript_url
from eval_pipelines.partitions import split_partition_key
from eval_pipelines.specs import ModelSpec, SuiteSpec, TaskSpec, UsageLimits
from eval_pipelines.task_results import SampleRow, TaskScore
from eval_pipelines.versions import code_version, runtime_versions
from resources.artifact_store import ArtifactStore, content_key
from resources.results_io import RESULTS_IO_MANAGER
from resources.sandbox import SandboxBackend

# Run tags set by `prepare_evaluation` once the suite resolved: the suite version that ran,
# and when it started evaluating (read by `eval_pipelines.provenance`).
SUITE_VERSION_TAG = "eval/suite-version"
EVALUATED_AT_TAG = "eval/evaluated-at"


class LimitsConfig(Config):
    """Per-sample limits for this run; unset fields keep the suite's limits."""

    messages: int | None = Field(
        default=None, gt=0, description="Most messages in a sample's conversation (at least 1)."
    )
    tokens: int | None = Field(
        default=None, gt=0, description="Most model tokens a sample may use (at least 1)."
    )
    time_seconds: int | None = Field(
        default=None, gt=0, description="Wall-clock seconds a sample may take (at least 1)."
    )
    working_seconds: int | None = Field(
        default=None,
        gt=0,
        description="Seconds a sample may spend working, waits excluded (at least 1).",
    )


class EvaluationConfig(Config):
    """Launchpad config of an evaluation; the model and suite come from the partition."""

    limits: LimitsConfig = Field(
        default=LimitsConfig(),
        description="Per-sample limits for this run; unset (null) keeps the suite's own.",
    )
    sample_limit: int | None = Field(
        default=None, gt=0, description="Run only the first N samples of each task (at least 1)."
    )
    epochs: int | None = Field(
        default=None, gt=0, description="Override every task's epochs (at least 1)."
    )
    max_samples: int | None = Field(
        default=None, gt=0, description="Samples run concurrently per task (at least 1)."
    )
    resume: bool = Field(
        default=True,
        description="Reuse tasks and samples that a failed or stopped run of this partition, "
        "with the same code and settings, already finished; false re-runs everything.",
    )


class _CheckedShape(_ConfigHasFields):
    """A config class's Dagster schema that also applies its pydantic constraints.

    Dagster's schema knows types, not ranges (`gt=0`): without this an out-of-range value
    passes launch and fails inside the op. Post-processing runs when Dagster resolves the
    run config, before the run exists, and its error names the field.
    """

    def __init__(self, model: type[Config]):
        shape = infer_schema_from_config_class(model).config_type
        super().__init__(
            kind=ConfigTypeKind.STRICT_SHAPE,
            key=f"{shape.key}.{model.__name__}",
            description=model.__doc__,
            fields=shape.fields,
        )
        self.model = model
        self.field_aliases: dict[str, str] = {}

    def post_process(self, value):
        try:
            self.model(**value)
        except ValidationError as exc:
            raise PostProcessingError(
                "; ".join(
                    f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
                )
            ) from None
        return value


def is_limited(sample_limit: int | None, epochs: int | None) -> bool:
    """A run with a `sample_limit` or `epochs` override is not a complete evaluation of its
    suite: its scores must never stand in for a complete run's."""
    return sample_limit is not None or epochs is not None


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
    partition: str
    resume: bool
    fingerprint: str


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
    reused_samples: int = 0
    reused_from_run: str | None = None


@op(
    config_schema=DagsterField(
        _CheckedShape(EvaluationConfig), is_required=False, description=EvaluationConfig.__doc__
    ),
    out={"evaluation": Out(PreparedEvaluation), "tasks": DynamicOut(TaskPlan)},
    tags={**op_k8s_tags("prepare"), "stage": "prepare"},
)
def prepare_evaluation(context: OpExecutionContext, sandbox: SandboxBackend):
    """Resolve the partition's model and suite, load every task, refuse what can't run."""
    from eval_pipelines.evaluate import EvaluationRefused, validate_evaluation

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
            resume.FINGERPRINT_TAG: run_fingerprint,
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


@op(tags={**op_k8s_tags("run-task"), "stage": "run-task"})
def run_eval_task(
    context: OpExecutionContext, plan: TaskPlan, artifacts: ArtifactStore, sandbox: SandboxBackend
) -> TaskRunResult:
    """Run one task through Inspect and store its `.eval` log as an immutable artifact.

    Stops within seconds when the run is stopped (`eval_pipelines.stopping`); what it
    finished is then kept as a partial log, never as a result, and a later run resumes it.
    """
    from eval_pipelines.evaluate import evaluate_task

    return evaluate_task(context, plan, artifacts, sandbox)


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
        # Stored and loaded by the results IO manager: see `resources.results_io`.
        "eval_logs": Out(dict, io_manager_key=RESULTS_IO_MANAGER),
        "sample_results": Out(list, io_manager_key=RESULTS_IO_MANAGER),
        "task_scores": Out(dict, io_manager_key=RESULTS_IO_MANAGER),
    },
    tags={**op_k8s_tags("publish"), "stage": "publish"},
)
def publish_results(
    context: OpExecutionContext,
    evaluation: PreparedEvaluation,
    results: list[TaskRunResult],
    artifacts: ArtifactStore,
):
    """Turn the task runs into the three result assets, each versioned and traceable.

    Readers take a partition's result from the latest run that recorded all three
    (`eval_pipelines.records`), so a run that fails here publishes nothing.
    """
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
    # How each number was obtained: the overrides, and the epochs each task really ran.
    overrides = {"sample_limit": evaluation.sample_limit, "epochs": evaluation.epochs}
    epochs = {t.name: evaluation.epochs or t.epochs for t in suite.tasks}
    score_rows = [{**r.score.model_dump(), "epochs": epochs[r.task]} for r in results]
    scores = {
        **identity,
        "run_id": evaluation.run_id,
        "evaluated_at": evaluation.started_at,
        "limited": is_limited(**overrides),
        **overrides,
        "tasks": score_rows,
    }
    prefix = f"results/model={model.id}/suite={suite.name}/{evaluation.run_id}"

    errored = sum(r["error"] is not None for r in rows)
    outputs = {
        "eval_logs": (
            logs,
            {
                f"log/{task}": MetadataValue.url(transcript_url(entry["uri"]))
                for task, entry in logs.items()
            },
        ),
        "sample_results": (
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
                        [
                            "task",
                            "sample_id",
                            "epoch",
                            "score",
                            "total_tokens",
                            "error",
                            "transcript",
                        ],
                    )
                ),
            },
        ),
        "task_scores": (
            scores,
            {
                # Numeric metadata per task: the UI plots these across materializations.
                **{f"score/{s['task']}": s["mean"] for s in score_rows if s["mean"] is not None},
                "scores": MetadataValue.md(
                    _markdown_table(
                        score_rows,
                        [
                            "task",
                            "mean",
                            "stderr",
                            "ci95_low",
                            "ci95_high",
                            "n",
                            "epochs",
                            "errors",
                        ],
                    )
                ),
                "limited": scores["limited"],
                "overrides": ", ".join(f"{k}={v}" for k, v in overrides.items() if v) or "-",
                # Resume: what this run took over from failed or stopped runs before it.
                "reused_samples": sum(r.reused_samples for r in results),
                "reused_from": ", ".join(
                    sorted({r.reused_from_run for r in results if r.reused_from_run})
                )
                or "-",
            },
        ),
    }

    def write_snapshot(name: str, value: object) -> tuple[DataVersion, str]:
        data = _canonical_json(value)
        version = DataVersion(content_key("", data, "").strip("/"))
        return version, artifacts.put(content_key(f"{prefix}/{name}", data, ".json"), data)

    # All or nothing: every snapshot is written before any output is yielded, and the
    # results IO manager stores nothing, so a failed write records none of the three.
    snapshots = {name: write_snapshot(name, value) for name, (value, _) in outputs.items()}
    for name, (value, extra) in outputs.items():
        version, uri = snapshots[name]
        metadata = {
            **common,
            "data_version": version.value,
            "snapshot": MetadataValue.url(uri),
            **extra,
        }
        yield Output(value, name, data_version=version, metadata=metadata)
