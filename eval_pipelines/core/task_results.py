"""What one task run hands to the publish step: its samples, flattened, and its score.

Plain data, apart from `eval_pipelines.engine.bridge` (which fills it in from an Inspect
log): the ops' types use it, and every process that loads the code location imports the
ops, most without ever running an evaluation or needing Inspect.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict


class SampleRow(BaseModel):
    """One sample x epoch of a task's log, flattened for tables and checks."""

    model_config = ConfigDict(frozen=True)

    task: str
    sample_id: str
    epoch: int
    score: float | None
    score_value: Any = None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    total_time: float | None
    working_time: float | None
    error: str | None
    limit: str | None


class TaskScore(BaseModel):
    """Mean score of a task over its scored samples, with standard error and 95% CI."""

    model_config = ConfigDict(frozen=True)

    task: str
    mean: float | None
    stderr: float | None
    ci95_low: float | None
    ci95_high: float | None
    n: int
    errors: int
