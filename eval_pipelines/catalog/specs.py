"""Typed specs for models, suites and evaluation requests.

Specs are pydantic models so that a bad YAML file fails at load time with an error that
names the file, the field and the problem, before anything runs or is written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from eval_pipelines.catalog.policy import SuiteSafety
from eval_pipelines.catalog.spec_files import Spec
from eval_pipelines.core.kinds import Severity

# Partition keys: Dagster forbids some characters; keep ids boring and portable.
_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_ENV_VAR_PATTERN = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class GenerationParams(Spec):
    """Generation settings passed through to Inspect's `GenerateConfig`."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    max_connections: int | None = Field(default=None, gt=0)


class ModelSpec(Spec):
    """A model under evaluation: an Inspect model string plus how to reach it.

    The API key is referenced by environment-variable name only; its value is read at run
    time in the op process and is never stored in specs, logs or assets.
    """

    id: str = Field(pattern=_ID_PATTERN, description="Catalog id; the model partition key.")
    model: str = Field(
        description="Inspect model string, e.g. openai/gpt-4o or scripted/reference."
    )
    description: str = ""
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the API key."
    )
    base_url: str | None = None
    generation: GenerationParams = GenerationParams()
    model_args: dict[str, Any] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(pattern=_ID_PATTERN)]] = Field(
        default_factory=list,
        description="Labels a benchmark programme can select models by (`models: {tags: [..]}`).",
    )

    @field_validator("model")
    @classmethod
    def _provider_and_name(cls, value: str) -> str:
        provider, _, name = value.partition("/")
        if not provider or not name:
            raise ValueError(f"{value!r} is not '<provider>/<model name>' (e.g. openai/gpt-4o)")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_var_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_VAR_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not an environment variable name; put the variable's NAME here, "
                "never the key itself"
            )
        return value


class UsageLimits(Spec):
    """Per-sample limits enforced by Inspect; `None` means no limit."""

    messages: int | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)
    time_seconds: int | None = Field(default=None, gt=0, description="Wall-clock limit.")
    working_seconds: int | None = Field(default=None, gt=0, description="Working-time limit.")

    def merged(self, override: UsageLimits | None) -> UsageLimits:
        """Limits with `override`'s set fields taking precedence."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class SandboxSpec(Spec):
    """Isolation and resources of one task's sandbox, the same for every backend.

    Local backends (bubblewrap) enforce these with cgroups, rlimits and a size-limited work
    dir; on Kubernetes they become the sandbox pod's requests/limits and deadline. A suite
    cannot exceed the platform's maxima (`SandboxMaxima`).
    """

    image: str = Field(
        default="eval-sandbox:1.0", description="Container image (Kubernetes backends)."
    )
    cpu: float = Field(default=1.0, gt=0, le=64, description="CPU cores.")
    memory_mb: int = Field(default=512, gt=0, description="Memory, swap included.")
    pids: int = Field(default=128, gt=0, description="Processes and threads at once.")
    disk_mb: int = Field(default=256, gt=0, description="Size of the writable work dir.")
    timeout_seconds: int = Field(default=120, gt=0, description="Wall time of one exec.")
    cpu_seconds: int = Field(default=60, gt=0, description="CPU time of one process.")
    output_kb: int = Field(default=1024, gt=0, description="Output kept per stream of one exec.")
    network: Literal["none"] = Field(default="none", description="Sandboxes have no network.")
    replace_declared: bool = Field(
        default=False,
        description="Run the task's tools here although the task declares a sandbox of its "
        "own (e.g. Inspect's docker): refused when that one has images, builds, extra services "
        "or users this sandbox cannot give, and recorded with the results.",
    )


class SandboxMaxima(Spec):
    """Platform-wide ceilings no suite's sandbox spec may exceed."""

    cpu: float = 4.0
    memory_mb: int = 8192
    pids: int = 1024
    disk_mb: int = 8192
    timeout_seconds: int = 3600
    cpu_seconds: int = 3600
    output_kb: int = 10240

    def violations(self, spec: SandboxSpec) -> list[str]:
        return [
            f"{field} {getattr(spec, field)} exceeds the platform maximum {ceiling}"
            for field, ceiling in self.model_dump().items()
            if getattr(spec, field) > ceiling
        ]


class CapabilityThreshold(Spec):
    """The score above which a model is taken to have the task's (dangerous) capability."""

    score: float
    use: Literal["mean", "ci95_low"] = Field(
        default="mean", description="Compare the mean, or the 95% CI's lower bound."
    )
    severity: Severity = Field(
        default="warning", description="Severity of the incident a crossing records."
    )


class TaskSpec(Spec):
    """One Inspect task in a suite, by file (`path.py@name`) or registry name."""

    name: str = Field(pattern=_ID_PATTERN, description="Name of the task within the suite.")
    task: str = Field(
        description="`file.py@task_name` (relative to the suite file) or registry name."
    )
    args: dict[str, Any] = Field(default_factory=dict)
    epochs: int | None = Field(
        default=None, gt=0, description="Epochs per sample; default: the task's own (often 1)."
    )
    headline: str | None = Field(
        default=None,
        description="The metric the task's score is, as `score/metric` (e.g. `match/accuracy`, "
        "`security/mean`); default: the first scorer's first metric. Every metric is kept.",
    )
    limit: int | None = Field(default=None, gt=0, description="Run only the first N samples.")
    limits: UsageLimits = UsageLimits()
    sandbox: SandboxSpec | None = Field(
        default=None,
        description="The task's tools run in an isolated sandbox: `true` for the defaults, "
        "or a mapping of SandboxSpec fields.",
    )
    capability_threshold: CapabilityThreshold | None = None

    @field_validator("sandbox", mode="before")
    @classmethod
    def _sandbox_shorthand(cls, value: Any) -> Any:
        if value is True:
            return SandboxSpec()
        if value is False:
            return None
        return value


class SuiteSpec(Spec):
    """A versioned set of tasks run together against one model."""

    name: str = Field(pattern=_ID_PATTERN)
    version: str = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        # YAML reads `version: 1` as a number; a version is a label, keep it as text.
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )

    description: str = ""
    tasks: list[TaskSpec] = Field(min_length=1)
    limits: UsageLimits = UsageLimits()
    max_error_rate: float = Field(
        default=0.0, ge=0, le=1, description="Fraction of errored samples the results tolerate."
    )
    safety: SuiteSafety = Field(
        default_factory=lambda: SuiteSafety(),
        description="Rules that tighten the platform's safety baseline for this suite.",
    )
    on_new_model: bool = Field(
        default=False,
        description="Evaluate each model that arrives in the catalog on this suite, once per "
        "suite version (the model_arrival_sensor).",
    )
    reevaluate_on_new_version: bool = Field(
        default=False,
        description="When the version changes, re-evaluate the models with results on an "
        "older version, once each.",
    )
    source_dir: Path | None = Field(default=None, exclude=True)

    @field_validator("tasks")
    @classmethod
    def _unique_task_names(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        names = [t.name for t in tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"task names must be unique; repeated: {', '.join(duplicates)}")
        return tasks

    @property
    def needs_sandbox(self) -> bool:
        return any(t.sandbox is not None for t in self.tasks)

    def task_limits(self, task: TaskSpec) -> UsageLimits:
        return self.limits.merged(task.limits)


class EvalRequest(Spec):
    """One evaluation: a model against a suite, with the requester's tags."""

    model: str = Field(pattern=_ID_PATTERN)
    suite: str = Field(pattern=_ID_PATTERN)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _tag_keys(cls, tags: dict[str, str]) -> dict[str, str]:
        bad = [k for k in tags if not re.match(r"^[A-Za-z0-9_.-]{1,63}$", k)]
        if bad:
            raise ValueError(f"tag keys may use letters, digits, '_', '.', '-': {', '.join(bad)}")
        return tags

    def run_tags(self) -> dict[str, str]:
        """Dagster run tags naming model, suite and the requester's tags (for search; the
        queue's limits key on the partition's own tags)."""
        return {
            "eval/model": self.model,
            "eval/suite": self.suite,
            **{f"eval/{k}": v for k, v in self.tags.items()},
        }
