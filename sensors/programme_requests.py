"""The run requests of the benchmark programme's schedules and arrival sensor, built from the
instance's state, so they can be tested and timed without a daemon.

Run keys make every request idempotent: a scheduled tick's runs are keyed by programme,
tick time and partition; an arrival or re-evaluation by partition and suite version, so
each (model, suite, suite version) is requested at most once, whatever restarts in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from dagster import AssetRecordsFilter, DagsterEventType, DagsterInstance, RunRequest

from eval_pipelines.catalog.launch_config import evaluation_run_config
from eval_pipelines.catalog.programme import ProgrammeSpec
from eval_pipelines.catalog.specs import EvalRequest, ModelSpec, SuiteSpec
from eval_pipelines.core.names import RUN_KEY_TAG, TASK_SCORES_ASSET
from eval_pipelines.core.partitions import evaluation_partitions, model_partitions, partition_key
from eval_pipelines.results.records import published_partitions
from eval_pipelines.safety.quarantine import all_states

# Prefix of the run keys that request a (model, suite, suite version) once in all time.
ONCE_PREFIX = "once:"


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
    latest = instance.get_latest_storage_id_by_partition(
        TASK_SCORES_ASSET, DagsterEventType.ASSET_MATERIALIZATION, partitions
    )
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=TASK_SCORES_ASSET, storage_ids=list(latest.values())),
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
