"""The evaluation ops' work that needs Inspect: validate a model x suite, run one task.

The ops themselves are defined in `prepare` and `run_task`, which import this module only when
one of them runs. Kept apart so the code location loads without Inspect: every code server,
run worker and step process loads the definitions, most never run an evaluation, and
inspect_ai alone takes seconds to import. Importing this module (through
`eval_pipelines.safety.monitor`) registers the safety monitor's hooks, approver and reviewer
with Inspect, before any evaluation of the process starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterInstance, Failure, MetadataValue, OpExecutionContext, get_dagster_logger
from inspect_ai.log import EvalLog, read_eval_log

from eval_pipelines.catalog import Catalog
from eval_pipelines.catalog.specs import ModelSpec, SuiteSpec, TaskSpec
from eval_pipelines.core.log_viewer import EVAL_LOGS, transcript_url
from eval_pipelines.engine import bridge as inspect_bridge
from eval_pipelines.evaluation.plan import PreparedEvaluation, TaskPlan, TaskRunResult
from eval_pipelines.execution.stopping import EvaluationStopped, RunWatch, run_until_stopped
from eval_pipelines.results import resume
from eval_pipelines.safety.monitor import DagsterRunControl, MonitorScope, SafetyMonitor
from eval_pipelines.safety.quarantine import ModelQuarantined, check_not_quarantined
from resources.artifact_store import ArtifactStore
from resources.sandbox import SandboxBackend

EvaluationRefused = (
    inspect_bridge.SpecError,
    inspect_bridge.SandboxUnavailableError,
    ModelQuarantined,
)


def validate_evaluation(
    catalog: Catalog,
    model_id: str,
    suite_name: str,
    sandbox: SandboxBackend,
    instance: DagsterInstance,
) -> tuple[ModelSpec, SuiteSpec]:
    """Resolve and check a model x suite before anything runs; raises `EvaluationRefused`.

    Refuses an unknown model or suite, a bad spec file, a task Inspect can't load, a model
    provider that can't be built, a sandboxed task without an isolating backend, and a
    model under quarantine (`evalctl quarantine`).
    """
    suite, model = catalog.suite(suite_name), catalog.model(model_id)
    check_not_quarantined(instance, model.id)
    inspect_bridge.resolve_model(model)
    for spec in suite.tasks:
        task = inspect_bridge.load_task(suite, spec)
        inspect_bridge.check_isolation(suite, spec, task, sandbox)
    return model, suite


def evaluate_task(
    context: OpExecutionContext, plan: TaskPlan, artifacts: ArtifactStore, sandbox: SandboxBackend
) -> TaskRunResult:
    """The work of `eval_pipelines.evaluation.run_task.run_eval_task` (see there)."""
    evaluation, spec = plan.evaluation, plan.task
    suite = evaluation.suite
    try:
        task = inspect_bridge.load_task(suite, spec)
        # Checked again here: this op may run in another process or pod than prepare.
        runs_in = inspect_bridge.check_isolation(suite, spec, task, sandbox)
        model = inspect_bridge.resolve_model(evaluation.model)
    except EvaluationRefused as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc

    task_key = resume.task_key(spec.name)
    checkpoint = _checkpoint(context, evaluation, task_key)
    log_dir = resume.inflight_dir(context.run_id, task_key)
    log_dir.mkdir(parents=True, exist_ok=True)
    previous = _load_checkpoint_log(checkpoint, artifacts, log_dir) if checkpoint else None
    if checkpoint is not None and previous is not None and checkpoint.status == "done":
        context.log.info(
            f"Task {spec.name}: reusing its finished log from run {checkpoint.run_id} "
            f"({checkpoint.log_uri}); nothing to run"
        )
        resume.discard_inflight(context.run_id, task_key)
        return _task_result(
            spec, checkpoint.log_uri, previous, checkpoint.run_id, runs_in, reused=True
        )

    reused = inspect_bridge.completed_samples(previous) if previous is not None else 0
    context.log.info(
        f"Task {spec.name}: running {spec.task} with {evaluation.model.model}"
        + (
            f", resuming run {checkpoint.run_id}: {reused} finished sample(s) reused"
            if previous
            else ""
        )
    )
    with RunWatch(context.instance, context.run_id) as watch:
        monitor = SafetyMonitor(
            suite.safety.policy(),
            MonitorScope(
                context.run_id,
                evaluation.partition,
                evaluation.model.id,
                suite.name,
                spec.name,
                # "bwrap", "container": the first word of what check_isolation chose.
                sandbox=runs_in.split()[0] if runs_in else None,
            ),
            context.instance,
            artifacts,
            DagsterRunControl(context.instance, context.run_id, watch.stop),
        )
        try:
            log = run_until_stopped(
                lambda: inspect_bridge.run_task(
                    task,
                    model,
                    spec,
                    suite.task_limits(spec).merged(evaluation.limits_override),
                    log_dir,
                    sandbox=inspect_bridge.run_sandbox(task, spec, sandbox),
                    max_samples=evaluation.max_samples,
                    sample_limit=evaluation.sample_limit,
                    epochs=evaluation.epochs,
                    tags=[
                        f"model:{evaluation.model.id}",
                        f"suite:{suite.name}",
                        f"run:{context.run_id}",
                    ],
                    resume_from=previous,
                    monitor=monitor,
                ),
                watch,
            )
        except BaseException as exc:
            try:
                audit_uri = _close_monitor(context, evaluation, spec.name, monitor, artifacts)
            except Exception as failed:  # the stop (or failure) is what must surface
                context.log.error(f"Task {spec.name}: audit trail not stored ({failed})")
                audit_uri = None
            _keep_partial(context, evaluation, spec.name, task_key, artifacts, audit_uri)
            if watch.parent_died:
                # Nobody is left to record this step: end the process rather than linger.
                context.log.error(f"Task {spec.name}: {watch.reason}; exiting")
                os._exit(1)
            if isinstance(exc, EvaluationStopped):
                context.log.warning(f"Task {spec.name}: stopped ({exc.reason})")
            raise
        audit_uri = _close_monitor(context, evaluation, spec.name, monitor, artifacts)

    data = Path(log.location).read_bytes()
    if log.status != "success":
        uri = _store_partial(
            context, evaluation, spec.name, task_key, artifacts, data, log, audit_uri
        )
        message = log.error.message if log.error else f"Inspect finished with status {log.status}"
        raise Failure(
            description=f"Task {spec.name} failed in Inspect: {message}",
            metadata={"partial_eval_log": MetadataValue.url(transcript_url(uri))},
        )
    prefix = _task_log_prefix(evaluation, spec.name, context.run_id)
    log_uri = artifacts.store(prefix, data, ".eval")
    resume.record(
        context.instance,
        context.run_id,
        task_key,
        resume.TaskCheckpoint(
            status="done", log_uri=log_uri, samples=len(log.samples or []), audit_uri=audit_uri
        ),
    )
    resume.discard_inflight(context.run_id, task_key)
    if checkpoint is not None and checkpoint.samples < 0:  # salvaged from a killed run
        resume.discard_inflight(checkpoint.run_id, task_key)
    context.log.info(f"Task {spec.name}: Inspect status {log.status}; log stored at {log_uri}")
    return _task_result(
        spec,
        log_uri,
        log,
        checkpoint.run_id if checkpoint else None,
        runs_in,
        reused=False,
        reused_samples=reused,
        images=inspect_bridge.container_images(task),
    )


def _task_log_prefix(evaluation: PreparedEvaluation, task_name: str, run_id: str) -> str:
    return f"{EVAL_LOGS}/model={evaluation.model.id}/suite={evaluation.suite.name}/task={task_name}/{run_id}"


def _close_monitor(
    context: OpExecutionContext,
    evaluation: PreparedEvaluation,
    task_name: str,
    monitor: SafetyMonitor,
    artifacts: ArtifactStore,
) -> str:
    """End the task's monitoring and store its audit trail (every sandbox event and verdict)
    beside the task's logs; returns its URI, which the task's checkpoint tag carries."""
    monitor.close()
    data = monitor.audit_jsonl()
    prefix = f"{_task_log_prefix(evaluation, task_name, context.run_id)}/audit"
    uri = artifacts.store(prefix, data, ".jsonl")
    context.log.info(f"Task {task_name}: audit trail ({len(monitor.audit)} entries) at {uri}")
    return uri


def _task_result(
    spec: TaskSpec,
    log_uri: str,
    log: EvalLog,
    source_run: str | None,
    sandbox: str | None,
    *,
    reused: bool,
    reused_samples: int = 0,
    images: dict[str, str] | None = None,
) -> TaskRunResult:
    rows = inspect_bridge.sample_rows(spec.name, log, spec.headline)
    score = inspect_bridge.task_score(
        spec.name, log, rows, headline=spec.headline, sandbox=sandbox, images=images
    )
    logger = get_dagster_logger()
    if score.mean is not None:
        logger.info(
            f"Task {spec.name}: {score.headline} {score.mean:.3f} over n={score.n} "
            f"({score.errors} errored)"
        )
    else:
        logger.error(f"Task {spec.name}: no score: {score.problem}")
    for error in score.first_errors:
        logger.warning(f"Task {spec.name}: sample {error}")
    return TaskRunResult(
        task=spec.name,
        log_uri=log_uri,
        inspect_status=log.status,
        rows=rows,
        score=score,
        reused_samples=len(rows) if reused else reused_samples,
        reused_from_run=source_run if (reused or reused_samples) else None,
    )


def _checkpoint(
    context: OpExecutionContext, evaluation: PreparedEvaluation, task_key: str
) -> resume.TaskCheckpoint | None:
    if not evaluation.resume:
        return None
    runs = resume.unfinished_predecessors(
        context.instance, evaluation.partition, evaluation.fingerprint, context.run_id
    )
    return resume.find_checkpoint(runs, task_key)


def _load_checkpoint_log(
    checkpoint: resume.TaskCheckpoint, artifacts: ArtifactStore, log_dir: Path
) -> EvalLog | None:
    """The checkpoint's log, samples included, or None if it cannot be read (then run afresh)."""
    try:
        if checkpoint.log_uri.startswith("file://") and checkpoint.samples < 0:
            path = Path(checkpoint.log_uri.removeprefix("file://"))
        else:
            path = log_dir / "previous" / Path(checkpoint.log_uri).name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(artifacts.get(checkpoint.log_uri))
        return read_eval_log(str(path))
    except Exception as exc:  # a log cut short by a crash: nothing reusable in it
        get_dagster_logger().warning(
            f"cannot reuse {checkpoint.log_uri} from run {checkpoint.run_id}: {exc}"
        )
        return None


def _keep_partial(
    context: OpExecutionContext,
    evaluation: PreparedEvaluation,
    task_name: str,
    task_key: str,
    artifacts: ArtifactStore,
    audit_uri: str | None,
) -> None:
    """After a stop: keep what Inspect finished as a partial log (never a result)."""
    log_dir = resume.inflight_dir(context.run_id, task_key)
    logs = sorted(log_dir.glob("*.eval"))
    try:
        if logs:
            data = logs[-1].read_bytes()
            _store_partial(
                context,
                evaluation,
                task_name,
                task_key,
                artifacts,
                data,
                read_eval_log(str(logs[-1])),
                audit_uri,
            )
    except Exception as exc:  # keep the in-flight folder: a later run can still salvage it
        context.log.warning(f"Task {task_name}: partial log not kept ({exc})")
        return
    resume.discard_inflight(context.run_id, task_key)


def _store_partial(
    context: OpExecutionContext,
    evaluation: PreparedEvaluation,
    task_name: str,
    task_key: str,
    artifacts: ArtifactStore,
    data: bytes,
    log: EvalLog,
    audit_uri: str | None,
) -> str:
    # Beside the task's logs, so the log viewer shows what happened before the stop.
    prefix = f"{_task_log_prefix(evaluation, task_name, context.run_id)}/partial"
    uri = artifacts.store(prefix, data, ".eval")
    samples = inspect_bridge.completed_samples(log)
    resume.record(
        context.instance,
        context.run_id,
        task_key,
        resume.TaskCheckpoint(status="partial", log_uri=uri, samples=samples, audit_uri=audit_uri),
    )
    context.log.info(
        f"Task {task_name}: partial log ({log.status}, {samples} finished sample(s)) kept at "
        f"{uri}; not a result"
    )
    return uri
