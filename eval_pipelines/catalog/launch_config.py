"""The Launchpad config of an evaluation run, and its place in the evaluate job's run config.

The model and suite come from the run's partition; this is what a user may set per run.
Dagster's schema of it also applies its pydantic constraints, so a bad value is refused at
launch with the field named, before the run exists.
"""

from dagster import Config
from dagster import Field as DagsterField
from dagster._config import ConfigTypeKind, PostProcessingError
from dagster._config.field_utils import _ConfigHasFields
from dagster._config.pythonic_config import infer_schema_from_config_class
from pydantic import Field, ValidationError

from eval_pipelines.core.text import validation_errors


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
            raise PostProcessingError(validation_errors(exc)) from None
        return value


def evaluation_config_field() -> DagsterField:
    """The prepare op's config field: `EvaluationConfig`, checked at launch."""
    return DagsterField(
        _CheckedShape(EvaluationConfig), is_required=False, description=EvaluationConfig.__doc__
    )


def is_limited(sample_limit: int | None, epochs: int | None) -> bool:
    """A run with a `sample_limit` or `epochs` override is not a complete evaluation of its
    suite: its scores must never stand in for a complete run's."""
    return sample_limit is not None or epochs is not None


def evaluation_run_config(config: dict) -> dict:
    """Run config of the evaluate job: `EvaluationConfig` sits on the graph's prepare op."""
    return {"ops": {"evaluation": {"ops": {"prepare_evaluation": {"config": config}}}}}


def evaluation_config_of(run_config: dict) -> EvaluationConfig:
    """The `EvaluationConfig` an evaluate run was launched with (defaults where none given)."""
    ops = run_config.get("ops", {}).get("evaluation", {}).get("ops", {})
    return EvaluationConfig(**(ops.get("prepare_evaluation", {}).get("config") or {}))
