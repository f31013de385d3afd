"""What the evaluation's ops hand each other: plain, frozen, picklable data.

Each op may run in its own process or pod, so these are all it knows of the others. Outputs
pickled by runs before the move load through the legacy path `eval_pipelines.ops`.
"""

from pydantic import BaseModel, ConfigDict

from eval_pipelines.catalog.specs import ModelSpec, SuiteSpec, TaskSpec, UsageLimits
from eval_pipelines.core.task_results import SampleRow, TaskScore


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
