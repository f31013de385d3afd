"""Benchmark programmes: which suites run on which models, and when.

A programme is its own YAML file (`catalog/programmes/*.yaml`, more folders in
`EVAL_PROGRAMME_PATH`), not a block inside a suite: a suite's file is versioned content
(changing it changes what a result means), while when and on which models it runs is an
operational choice that changes without touching results. One programme can also run
several suites together. Each programme becomes one Dagster schedule
(`sensors/programme.py`), whose run requests `sensors/programme_requests.py` builds.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dagster._utils.schedules import is_valid_cron_string
from pydantic import Field, ValidationError, field_validator

from eval_pipelines.catalog.launch_config import EvaluationConfig, evaluation_run_config
from eval_pipelines.catalog.spec_files import Spec
from eval_pipelines.catalog.specs import ModelSpec
from eval_pipelines.core.text import validation_errors

_ID = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class ModelTags(Spec):
    """Select the catalog models carrying any of these tags (`ModelSpec.tags`)."""

    tags: list[str] = Field(min_length=1)


class ProgrammeSpec(Spec):
    """A recurring benchmark: these suites on these models, on a cron schedule."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_]{0,62}$",
        description="The Dagster schedule's name (lowercase letters, digits and '_').",
    )
    description: str = ""
    cron: str = Field(description="Standard 5-field cron, e.g. '0 2 * * *' for 02:00 daily.")
    timezone: str = Field(default="UTC", description="IANA zone the cron is read in.")
    models: Literal["all"] | list[str] | ModelTags = Field(
        description="'all', a list of model ids, or {tags: [..]} to select by model tags."
    )
    suites: list[str] = Field(min_length=1)
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Evaluation config of each run (sample_limit, epochs, limits, ...).",
    )
    executor: Literal["in_process", "multiprocess"] | None = Field(
        default=None,
        description="Executor of each run; unset uses the deployment's default (in-process "
        "is several times faster locally, multiprocess is one process per op, like pods).",
    )
    source_file: Path | None = Field(default=None, exclude=True)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not is_valid_cron_string(value):
            raise ValueError(f"{value!r} is not a valid cron string (e.g. '0 2 * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. UTC, Europe/London)"
            ) from None
        return value

    @field_validator("suites")
    @classmethod
    def _suite_ids(cls, value: list[str]) -> list[str]:
        return _ids(value, "suite")

    @field_validator("models")
    @classmethod
    def _model_ids(cls, value: Any) -> Any:
        return _ids(value, "model") if isinstance(value, list) else value

    @field_validator("config")
    @classmethod
    def _evaluation_config(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            EvaluationConfig(**value)
        except ValidationError as exc:
            raise ValueError(validation_errors(exc)) from None
        return value

    def run_config(self) -> dict:
        """Run config of the evaluate job for each of this programme's runs."""
        executor = {"execution": {"config": {self.executor: {}}}} if self.executor else {}
        return {**evaluation_run_config(self.config), **executor}

    def unknown_references(self, suites: set[str], models: set[str]) -> list[str]:
        """Why the programme cannot run in a catalog with these suites and models."""
        reasons = [f"unknown suite {s!r}" for s in self.suites if s not in suites]
        if isinstance(self.models, list):
            reasons += [f"unknown model {m!r}" for m in self.models if m not in models]
        return reasons

    def selected_models(self, models: Mapping[str, ModelSpec]) -> list[str]:
        """The catalog's models this programme evaluates."""
        if self.models == "all":
            return sorted(models)
        if isinstance(self.models, ModelTags):
            wanted = set(self.models.tags)
            return sorted(m.id for m in models.values() if wanted & set(m.tags))
        return [m for m in self.models if m in models]


def _ids(values: list[str], kind: str) -> list[str]:
    bad = [v for v in values if not re.match(_ID, v)]
    if bad:
        raise ValueError(f"not {kind} ids: {', '.join(map(repr, bad))}")
    if len(set(values)) != len(values):
        raise ValueError(f"{kind}s are listed more than once")
    return values
