"""Bridge to Inspect: load a suite's tasks, check isolation, run one task, read its log.

We orchestrate Inspect, we do not re-implement it: tasks, solvers, scorers and model
providers are Inspect's. What this adds is fail-closed isolation, usage limits from the
suite, API keys from the environment only, and a flat per-sample summary of the log.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from inspect_ai import Task, eval_async
from inspect_ai.approval import ApprovalPolicy
from inspect_ai.log import EvalLog, EvalSample, read_eval_log_async
from inspect_ai.model import GenerateConfig, Model, get_model
from inspect_ai.review import ReviewPolicy
from inspect_ai.scorer import value_to_float
from inspect_ai.util import SandboxEnvironmentSpec

from eval_pipelines.catalog.spec_files import SpecError
from eval_pipelines.catalog.specs import ModelSpec, SuiteSpec, TaskSpec, UsageLimits

# Defined there; step outputs pickled before they moved still name them here.
from eval_pipelines.core.task_results import SampleRow, TaskScore
from eval_pipelines.engine._private import PreviousTask, init_display_type, load_task_objects

# The bridge's surface for isolation, decided in its own module.
from eval_pipelines.engine.isolation import (  # noqa: F401
    SandboxUnavailableError,
    check_isolation,
    container_images,
    run_sandbox,
)

_to_float = value_to_float()
# Sample errors a task's score carries, with their messages, for the CLI and the checks.
FIRST_ERRORS = 3


class TaskLoadError(SpecError):
    """A suite names an Inspect task that cannot be found or built."""


class ModelResolutionError(SpecError):
    """A model spec names a provider Inspect does not know, or its key is missing."""


class EvalMonitor(Protocol):
    """What watches a run from inside Inspect (`eval_pipelines.safety.monitor.SafetyMonitor`):
    its approval and review policies, active while the run lasts."""

    def active(self) -> AbstractContextManager: ...

    def approval(self, task_policies: list[ApprovalPolicy] | None) -> list[ApprovalPolicy]: ...

    def review(self) -> list[ReviewPolicy]: ...


def task_reference(suite: SuiteSpec, task: TaskSpec) -> str:
    """The spec Inspect loads: file references are resolved against the suite's folder."""
    file_part, at, name = task.task.partition("@")
    if file_part.endswith(".py"):
        path = Path(file_part)
        if not path.is_absolute() and suite.source_dir is not None:
            path = suite.source_dir / path
        if not path.is_file():
            raise TaskLoadError(
                f"suite {suite.name!r}, task {task.name!r}: task file {path} does not exist"
            )
        return f"{path.resolve()}{at}{name}"
    return task.task


def load_task(suite: SuiteSpec, task: TaskSpec) -> Task:
    """Build the Inspect `Task` a suite entry names, or raise `TaskLoadError`."""
    reference = task_reference(suite, task)
    where = f"suite {suite.name!r}, task {task.name!r} ({task.task})"
    try:
        tasks = load_task_objects(reference, task.args)
    except Exception as exc:  # Inspect raises many types here; all mean "cannot build it".
        raise TaskLoadError(f"{where}: cannot load the Inspect task: {exc}") from exc
    if not tasks and (missing := _missing_package(reference)):
        raise TaskLoadError(
            f"{where}: the eval package {missing!r} is not installed in this environment; add "
            f"it with `uv add --group evals {missing}` (locked, kept by every `make` target), "
            "then `make setup`"
        )
    if len(tasks) != 1:
        found = "no Inspect task" if not tasks else f"{len(tasks)} tasks"
        raise TaskLoadError(
            f"{where}: found {found}; name a registered task (package/name) or file.py@task"
        )
    return tasks[0]


def _missing_package(reference: str) -> str | None:
    """The package a registry reference (`package/task`) names, if nothing provides it."""
    package, slash, _ = reference.partition("/")
    if not slash or "@" in reference or reference.endswith(".py"):
        return None
    registered = {e.name for e in entry_points(group="inspect_ai")}
    if package in registered or importlib.util.find_spec(package) is not None:
        return None
    return package


def resolve_model(spec: ModelSpec) -> Model:
    """An Inspect `Model` for a spec; the API key is read from its env var, never stored."""
    api_key: str | None = None
    if spec.api_key_env is not None:
        api_key = os.environ.get(spec.api_key_env)
        if not api_key:
            raise ModelResolutionError(
                f"model {spec.id!r} ({spec.model}) needs its API key in the environment "
                f"variable {spec.api_key_env}, which is not set"
            )
    try:
        return get_model(
            spec.model,
            config=GenerateConfig(**spec.generation.model_dump(exclude_none=True)),
            base_url=spec.base_url,
            api_key=api_key,
            memoize=False,
            **spec.model_args,
        )
    except Exception as exc:  # provider SDK missing, unknown provider, bad args...
        raise ModelResolutionError(f"model {spec.id!r} ({spec.model}): {exc}") from exc


async def run_task(
    task: Task,
    model: Model,
    spec: TaskSpec,
    limits: UsageLimits,
    log_dir: Path,
    *,
    sandbox: SandboxEnvironmentSpec | None,
    max_samples: int | None = None,
    sample_limit: int | None = None,
    epochs: int | None = None,
    tags: list[str] | None = None,
    resume_from: EvalLog | None = None,
    monitor: EvalMonitor | None = None,
) -> EvalLog:
    """Run one task through Inspect's `eval_async()` and return its log, samples included.

    `resume_from`, an unfinished log of the same task and settings, has its completed
    samples reused: only the rest run (Inspect's own retry mechanism, `PreviousTask`).
    Inspect's control server stays off: it captures SIGINT, and stopping is ours
    (`eval_pipelines.execution.stopping`). `monitor` judges every tool call, tool output, model
    output and sandbox event of the run (`eval_pipelines.safety.monitor`).
    """
    # Private: eval_async() has no `display` argument and a worker thread would default to
    # "plain" output into the op's logs. Pinned by tests/test_inspect_contract.py.
    init_display_type("none")
    target: Task | PreviousTask = task
    if resume_from is not None:
        target = PreviousTask(
            id=resume_from.eval.task_id,
            task=task,
            task_args={},
            model=None,
            model_roles=None,
            sandbox=sandbox,
            log=resume_from,
            log_info=None,
        )
    with monitor.active() if monitor else contextlib.nullcontext():
        logs = await eval_async(
            target,
            model=model,
            sandbox=sandbox,
            log_dir=str(log_dir),
            log_format="eval",
            epochs=epochs or spec.epochs,
            limit=sample_limit or spec.limit,
            message_limit=limits.messages,
            token_limit=limits.tokens,
            time_limit=limits.time_seconds,
            working_limit=limits.working_seconds,
            max_samples=max_samples,
            # Sample errors are recorded, not fatal: the error-rate asset check judges them.
            fail_on_error=False,
            tags=tags,
            ctl_server=False,
            approval=monitor.approval(task.approval) if monitor else None,
            review=monitor.review() if monitor else None,
        )
    if not logs:
        raise RuntimeError(f"Inspect returned no log for task {spec.name!r} (was it cancelled?)")
    # Read eagerly while the file exists: the returned log loads its samples lazily from it.
    return await read_eval_log_async(logs[0].location)


def completed_samples(log: EvalLog) -> int:
    """Samples x epochs of a log that finished without error (what a resume can reuse)."""
    return sum(1 for s in log.samples or [] if s.error is None)


def metric_values(log: EvalLog) -> dict[str, float]:
    """Every metric Inspect computed for a task, keyed `score/metric` (`score/reducer/metric`
    where a score is reduced more than one way), in the log's order."""
    scores = log.results.scores if log.results else []
    names = [s.name for s in scores]
    values: dict[str, float] = {}
    for score in scores:
        key = score.name if names.count(score.name) == 1 else f"{score.name}/{score.reducer}"
        for metric in score.metrics.values():
            values[f"{key}/{metric.name}"] = float(metric.value)
    return values


def headline_key(metrics: dict[str, float], wanted: str | None) -> str | None:
    """The metric a task's mean is: the suite's choice, else the first scorer's first metric."""
    if wanted is None:
        return next(iter(metrics), None)
    return wanted if wanted in metrics else None


def _headline_value(sample: EvalSample, key: str | None) -> Any:
    """A sample's value of the headline's score: a dict-valued scorer's value under the score's
    name, where Inspect computed the metric per key."""
    if not sample.scores:
        return None
    score_name = key.split("/", 1)[0] if key else None
    if score_name in sample.scores:
        return sample.scores[score_name].value
    for score in sample.scores.values():
        if isinstance(score.value, dict) and score_name in score.value:
            return score.value[score_name]
    return next(iter(sample.scores.values())).value if key is None else None


def _as_float(value: Any) -> float | None:
    return None if value is None or isinstance(value, dict | list) else _to_float(value)


def sample_rows(task_name: str, log: EvalLog, headline: str | None = None) -> list[SampleRow]:
    """One row per sample x epoch: the headline's value as `score`, every scorer's in `scores`."""
    key = headline_key(metric_values(log), headline)
    rows = []
    for sample in log.samples or []:
        value = _headline_value(sample, key)
        usage = list(sample.model_usage.values())
        rows.append(
            SampleRow(
                task=task_name,
                sample_id=str(sample.id),
                epoch=sample.epoch,
                score=_as_float(value),
                score_value=value,
                scores={name: s.value for name, s in (sample.scores or {}).items()},
                input_tokens=sum(u.input_tokens for u in usage),
                output_tokens=sum(u.output_tokens for u in usage),
                total_tokens=sum(u.total_tokens for u in usage),
                total_time=sample.total_time,
                working_time=sample.working_time,
                error=None if sample.error is None else sample.error.message,
                limit=None if sample.limit is None else sample.limit.type,
            )
        )
    return rows


def task_score(
    task_name: str,
    log: EvalLog,
    rows: list[SampleRow],
    *,
    headline: str | None = None,
    sandbox: str | None = None,
    images: dict[str, str] | None = None,
) -> TaskScore:
    """The task's score as Inspect computed it: every metric, and the headline one as `mean`
    with its `stderr` metric (where the task computes one) and the normal 95% CI from it.

    None when no sample was scored, or the suite names a headline the task does not compute:
    such a task is an error, never a number.
    """
    metrics = metric_values(log)
    key = headline_key(metrics, headline)
    errors = sum(r.error is not None for r in rows)
    scored = sum(r.error is None and r.scores != {} for r in rows)
    mean = metrics[key] if key is not None and scored else None
    stderr_key = f"{key.rsplit('/', 1)[0]}/stderr" if key else None
    stderr = metrics.get(stderr_key) if mean is not None and stderr_key != key else None
    problem = None
    if headline is not None and key is None:
        problem = f"the suite's headline {headline!r} is not among the task's metrics"
    elif not scored:
        problem = "no scored samples" + (f" ({errors} errored)" if errors else "")
    elif key is None:
        problem = "Inspect computed no metrics for the task"
    return TaskScore(
        task=task_name,
        mean=mean,
        stderr=stderr,
        ci95_low=None if stderr is None else mean - 1.96 * stderr,
        ci95_high=None if stderr is None else mean + 1.96 * stderr,
        n=scored,
        errors=errors,
        headline=key,
        metrics=metrics,
        epochs=log.eval.config.epochs,
        reducer=", ".join(log.eval.config.epochs_reducer or []) or None,
        sandbox=sandbox,
        images=images or {},
        problem=problem,
        first_errors=[f"{r.sample_id} (epoch {r.epoch}): {r.error}" for r in rows if r.error][
            :FIRST_ERRORS
        ],
    )
