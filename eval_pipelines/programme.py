"""Benchmark programmes: which suites run on which models, and when.

A programme is its own YAML file (`catalog/programmes/*.yaml`, more folders in
`EVAL_PROGRAMME_PATH`), not a block inside a suite: a suite's file is versioned content
(changing it changes what a result means), while when and on which models it runs is an
operational choice that changes without touching results. One programme can also run
several suites together. Each programme becomes one Dagster schedule
(`sensors/programme.py`); the run requests are built here, from the instance's state, so
they can be tested and timed without a daemon.

Run keys make every request idempotent: a scheduled tick's runs are keyed by programme,
tick time and partition; an arrival or re-evaluation by partition and suite version, so
each (model, suite, suite version) is requested at most once, whatever restarts in between.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, RunRequest
from dagster._utils.schedules import is_valid_cron_string
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eval_pipelines.jobs import evaluation_run_config
from eval_pipelines.ops import EvaluationConfig
from eval_pipelines.partitions import evaluation_partitions, model_partitions, partition_key
from eval_pipelines.records import published_partitions
from eval_pipelines.safety.quarantine import all_states
from eval_pipelines.specs import EvalRequest, ModelSpec, SuiteSpec

_ID = r"^[a-z0-9][a-z0-9._-]{0,62}$"
RUN_KEY_TAG = "dagster/run_key"
# Prefix of the run keys that request a (model, suite, suite version) once in all time.
ONCE_PREFIX = "once:"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelTags(_Spec):
    """Select the catalog models carrying any of these tags (`ModelSpec.tags`)."""

    tags: list[str] = Field(min_length=1)


class ProgrammeSpec(_Spec):
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
            raise ValueError(
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            ) from None
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


def used_run_keys(instance: DagsterInstance, prefix: str) -> set[str]:
    """Run keys starting with `prefix` that some run in the instance already carries."""
    return {
        value
        for _, values in instance.get_run_tags(tag_keys=[RUN_KEY_TAG], value_prefix=prefix)
        for value in values
    }


def quarantined_models(instance: DagsterInstance) -> dict[str, str]:
    """Models under quarantine, with why (one read for every model)."""
    return {
        s.model_id: f"quarantined after incident {s.incident_id} ({s.reason})"
        for s in all_states(instance)
        if s.quarantined
    }


def _request(
    run_key: str, model: str, suite: str, tags: dict[str, str], run_config: dict
) -> RunRequest:
    """A run of the evaluate job on (model, suite); `tags` become `eval/<key>` run tags.

    The request carries the partition's tags already, as Dagster would add them: it then
    skips checking each request's dynamic partition with its own query (a thousand queries
    per tick with a thousand models). Callers only request partitions that exist.
    """
    key = partition_key(model, suite)
    return RunRequest(
        run_key=run_key,
        partition_key=key,
        run_config=run_config,
        tags={
            **evaluation_partitions([suite]).get_tags_for_partition_key(key),
            **EvalRequest(model=model, suite=suite, tags=tags).run_tags(),
        },
    )


def _eligible(instance: DagsterInstance, wanted: Iterable[str], log) -> list[str]:
    """`wanted` models that have a partition and are not quarantined (skips are logged)."""
    partitions = set(instance.get_dynamic_partitions(model_partitions.name))
    held = quarantined_models(instance)
    eligible = []
    for model in wanted:
        if model in held:
            log.info(f"skipping model {model}: {held[model]}")
        elif model not in partitions:
            log.info(f"skipping model {model}: no partition yet (the catalog sensor adds it)")
        else:
            eligible.append(model)
    return eligible


def scheduled_requests(
    programme: ProgrammeSpec,
    models: Mapping[str, ModelSpec],
    instance: DagsterInstance,
    tick: datetime,
    log,
) -> list[RunRequest]:
    """One run per (model, suite) of the programme for this tick, minus those already made."""
    prefix = f"{programme.name}@{tick.isoformat()}:"
    used = used_run_keys(instance, prefix)
    requests = []
    for model in _eligible(instance, programme.selected_models(models), log):
        for suite in programme.suites:
            key = f"{prefix}{model}|{suite}"
            if key not in used:
                tags = {"programme": programme.name, "trigger": "schedule"}
                requests.append(_request(key, model, suite, tags, programme.run_config()))
    return requests


def once_key(model: str, suite: SuiteSpec) -> str:
    return f"{ONCE_PREFIX}{model}|{suite.name}@{suite.version}"


def _published_versions(instance: DagsterInstance, partitions: set[str]) -> dict[str, str]:
    """Suite version of each partition's latest result (two queries for any number)."""
    if not partitions:
        return {}
    task_scores = AssetKey("task_scores")
    latest = instance.get_latest_storage_id_by_partition(
        task_scores, DagsterEventType.ASSET_MATERIALIZATION, partitions
    )
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=task_scores, storage_ids=list(latest.values())),
        limit=len(latest),
    ).records
    return {
        str(r.partition_key): str(r.asset_materialization.metadata["suite_version"].value)
        for r in records
        if r.asset_materialization and "suite_version" in r.asset_materialization.metadata
    }


def arrival_requests(
    suites: Mapping[str, SuiteSpec],
    models: Mapping[str, ModelSpec],
    instance: DagsterInstance,
    log,
) -> list[RunRequest]:
    """Runs for models new to an `on_new_model` suite (no result on it yet), and for models
    whose latest result is on another version of a `reevaluate_on_new_version` suite.

    Each is keyed by (model, suite, suite version): requested once, ever.
    """
    arrival = [s for s in suites.values() if s.on_new_model]
    again = [s for s in suites.values() if s.reevaluate_on_new_version]
    if not arrival and not again:
        return []
    eligible = _eligible(instance, sorted(models), log)
    published = set(published_partitions(instance))
    versions = _published_versions(
        instance,
        {k for s in again for m in eligible if (k := partition_key(m, s.name)) in published},
    )
    used = used_run_keys(instance, ONCE_PREFIX)
    wanted: dict[str, RunRequest] = {}
    for model in eligible:
        for suite in arrival:
            if partition_key(model, suite.name) not in published:
                wanted.setdefault(once_key(model, suite), _arrival(model, suite, "arrival"))
        for suite in again:
            version = versions.get(partition_key(model, suite.name))
            if version is not None and version != suite.version:
                log.info(f"re-evaluating {model} on {suite.name}: results are on v{version}, "
                         f"the suite is now v{suite.version}")  # fmt: skip
                wanted.setdefault(once_key(model, suite), _arrival(model, suite, "new-version"))
    return [request for key, request in wanted.items() if key not in used]


def _arrival(model: str, suite: SuiteSpec, trigger: str) -> RunRequest:
    tags = {"trigger": trigger, "suite_version": suite.version}
    return _request(once_key(model, suite), model, suite.name, tags, evaluation_run_config({}))
