"""Typed specs for models, suites and evaluation requests.

Specs are pydantic models so that a bad YAML file fails at load time with an error that
names the file, the field and the problem, before anything runs or is written.
"""

from __future__ import annotations

import os
import re
import stat
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eval_pipelines.safety.kinds import Severity
from eval_pipelines.safety.policy import SuiteSafety

# Partition keys: Dagster forbids some characters; keep ids boring and portable.
_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_ENV_VAR_PATTERN = re.compile(r"^[A-Z_][A-Z0-9_]*$")

SpecT = TypeVar("SpecT", bound=BaseModel)


class SpecError(ValueError):
    """A spec file or value is invalid; the message names the source and the field."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GenerationParams(_Spec):
    """Generation settings passed through to Inspect's `GenerateConfig`."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    max_connections: int | None = Field(default=None, gt=0)


class ModelSpec(_Spec):
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


class UsageLimits(_Spec):
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


class SandboxSpec(_Spec):
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


class SandboxMaxima(_Spec):
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


class CapabilityThreshold(_Spec):
    """The score above which a model is taken to have the task's (dangerous) capability."""

    score: float
    use: Literal["mean", "ci95_low"] = Field(
        default="mean", description="Compare the mean, or the 95% CI's lower bound."
    )
    severity: Severity = Field(
        default="warning", description="Severity of the incident a crossing records."
    )


class TaskSpec(_Spec):
    """One Inspect task in a suite, by file (`path.py@name`) or registry name."""

    name: str = Field(pattern=_ID_PATTERN, description="Name of the task within the suite.")
    task: str = Field(
        description="`file.py@task_name` (relative to the suite file) or registry name."
    )
    args: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(default=1, gt=0)
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


class SuiteSpec(_Spec):
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


class EvalRequest(_Spec):
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


def _format_validation_error(error: ValidationError) -> str:
    lines = [f"invalid {error.title}:"]
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  - {field}: {item['msg']}")
    return "\n".join(lines)


# Spec files are a few KiB; anything this big is a mistake (or an attack), not a spec.
MAX_SPEC_BYTES = 1024 * 1024
# YAML nodes after expanding aliases: far above any real suite, far below a "billion laughs".
MAX_SPEC_NODES = 100_000


class SpecFileError(SpecError):
    """A spec file that could not be loaded: its path, why, and the name it declares (if any)."""

    def __init__(self, path: Path, reason: str, declared: str | None = None):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.declared = path, reason, declared


def _read_spec_text(path: Path) -> str:
    """The file's text, refusing what is not a small UTF-8 text file (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SpecFileError(path, "not a regular file")
        with open(fd, "rb") as stream:
            data = stream.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecFileError(path, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_SPEC_BYTES:
        raise SpecFileError(
            path, f"larger than {MAX_SPEC_BYTES // 1024} KiB, the limit for a spec file"
        )
    if b"\0" in data:
        raise SpecFileError(path, "binary file (contains NUL bytes), not YAML")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecFileError(
            path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes in `node` once aliases are expanded (memoized, so linear in the file)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise yaml.YAMLError(f"recursive alias at line {node.start_mark.line + 1}")
    open_nodes.add(id(node))
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    size = 1
    for child in children:
        size += _expanded_size(child, sizes, open_nodes)
        if size > MAX_SPEC_NODES:
            break
    open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size


def _parse_yaml(path: Path, text: str) -> Any:
    """`yaml.safe_load`, refusing alias bombs and recursion before building any object."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, set()) > MAX_SPEC_NODES:
            raise SpecFileError(
                path, f"expands to more than {MAX_SPEC_NODES} YAML nodes (alias bomb?)"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecFileError(path, f"not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise SpecFileError(path, "not valid YAML: nested too deeply") from exc
    finally:
        loader.dispose()


def load_yaml_spec(path: Path, spec_type: type[SpecT], **extra: Any) -> SpecT:
    """Load one YAML file into `spec_type`, raising `SpecFileError` that names file and field."""
    return _spec_from_text(path, _read_spec_text(path), spec_type, tuple(extra.items()))


# Sensors and schedules read the whole catalog every tick: 1,000 model files took 0.4 s to
# parse and validate here (over 2 s on a busy machine), 0.06 s with this cache. Specs are
# frozen, so one parse per file content is shared; a failing file raises again each time.
@lru_cache(maxsize=4096)
def _spec_from_text(path: Path, text: str, spec_type: type[SpecT], extra: tuple) -> SpecT:
    data = _parse_yaml(path, text)
    if not isinstance(data, dict):
        raise SpecFileError(path, f"expected a mapping at the top level, got {type(data).__name__}")
    declared = next((v for k in ("name", "id") if isinstance(v := data.get(k), str)), None)
    try:
        return spec_type.model_validate({**data, **dict(extra)})
    except ValidationError as exc:
        raise SpecFileError(path, _format_validation_error(exc), declared) from exc
