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
    """The headline score's value as a number (None: errored, unscored or not numeric)."""
    score_value: Any = None
    """The headline score's value as the scorer gave it."""
    scores: dict[str, Any] = {}
    """Every scorer's value, as Inspect recorded it (dicts kept whole)."""
    input_tokens: int
    output_tokens: int
    total_tokens: int
    total_time: float | None
    working_time: float | None
    error: str | None
    limit: str | None


class TaskScore(BaseModel):
    """A task's score as Inspect computed it: its headline metric as `mean`, with standard
    error and 95% CI where the task computes a stderr, and every other metric beside it."""

    model_config = ConfigDict(frozen=True)

    task: str
    mean: float | None
    stderr: float | None
    ci95_low: float | None
    ci95_high: float | None
    n: int
    errors: int
    headline: str | None = None
    """Which metric `mean` is (`score/metric`); None before results recorded it."""
    metrics: dict[str, float] = {}
    epochs: int | None = None
    """Epochs the task ran, and the reducer that combined them, as Inspect recorded them."""
    reducer: str | None = None
    sandbox: str | None = None
    """The sandbox its tools ran in, as the platform chose it (None: no sandbox)."""
    images: dict[str, str] = {}
    """Container samples: `project/service` -> the image reference and id that ran."""
    problem: str | None = None
    """Why there is no score (no scored samples, no such headline metric)."""
    first_errors: list[str] = []
    """The first sample errors, with their messages."""
