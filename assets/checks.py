"""Checks on every evaluation partition's results."""

import uuid

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    DagsterInstance,
    MultiPartitionsDefinition,
    asset_check,
)

from eval_pipelines.catalog import Catalog
from eval_pipelines.catalog.spec_files import SpecError
from eval_pipelines.catalog.specs import TaskSpec
from eval_pipelines.core.partitions import split_partition_key
from eval_pipelines.results.records import published_result
from eval_pipelines.safety.incident_records import partition_incidents
from eval_pipelines.safety.incidents import Incident, record_incident
from resources.artifact_store import ArtifactStore

CAPABILITY_RULE = "capability-threshold"
# Incident ids of threshold crossings derive from (run, task): a re-run check finds its own.
_CROSSING_IDS = uuid.UUID("6f1d0a52-4c8e-4a57-9a43-2b1f6c0e7d11")


def _crossing(spec: TaskSpec, score: dict) -> float | None:
    """The compared value if the task's score is at or above its threshold, else None."""
    threshold = spec.capability_threshold
    value = score[threshold.use] if threshold else None
    return value if value is not None and value >= threshold.score else None


def _record_crossings(
    instance: DagsterInstance, artifacts: ArtifactStore, partition: str, task_scores: dict
) -> list[dict]:
    """Record a `capability_threshold` incident per task over its threshold, once per (run,
    task); returns what crossed. Thresholds come from the suite version that ran."""
    model_id, suite_name = split_partition_key(partition)
    suite = Catalog.default().suite(suite_name)
    if suite.version != task_scores["suite_version"]:
        raise SpecError(
            f"suite {suite_name} is at version {suite.version} in the catalog but these scores "
            f"are of version {task_scores['suite_version']}: its thresholds cannot be judged"
        )
    run_id = task_scores["run_id"]
    specs = {t.name: t for t in suite.tasks}
    recorded = {
        f.incident.id
        for f in partition_incidents(instance, artifacts, partition).get(partition, [])
    }
    logs = published_result(instance, partition, prefer_run=run_id).value("eval_logs", artifacts)
    crossed = []
    for score in task_scores["tasks"]:
        spec = specs[score["task"]]
        value = _crossing(spec, score)
        if value is None:
            continue
        threshold = spec.capability_threshold
        incident_id = uuid.uuid5(_CROSSING_IDS, f"{run_id}/{spec.name}").hex
        crossed.append({"task": spec.name, "value": value, "threshold": threshold.score})
        if incident_id in recorded:
            continue
        incident = Incident(
            id=incident_id,
            kind="capability_threshold",
            rule_id=CAPABILITY_RULE,
            severity=threshold.severity,
            action="record",
            run_id=run_id,
            partition=partition,
            model_id=model_id,
            suite=suite_name,
            task=spec.name,
            summary=(
                f"{model_id} crossed the capability threshold of {suite_name}/{spec.name}: "
                f"{threshold.use} {value:.3f} >= {threshold.score}"
            ),
            evidence={
                "use": threshold.use,
                "value": value,
                "threshold": threshold.score,
                **{k: score[k] for k in ("mean", "ci95_low", "ci95_high", "n")},
            },
            eval_log_uri=logs[spec.name]["uri"],
        )
        record_incident(instance, artifacts, incident)
    return crossed


def build_result_checks(partitions_def: MultiPartitionsDefinition) -> list[AssetChecksDefinition]:
    @asset_check(asset="sample_results", partitions_def=partitions_def, blocking=True)
    def every_sample_scored(sample_results: list) -> AssetCheckResult:
        """Each sample that did not error has a score, and there is at least one sample."""
        unscored = [
            f"{r['task']}/{r['sample_id']}#{r['epoch']}"
            for r in sample_results
            # A dict-valued score has no single number, but is a score (rows before they kept
            # every scorer's value have `score` only).
            if r["error"] is None and r["score"] is None and not r.get("scores")
        ]
        return AssetCheckResult(
            passed=bool(sample_results) and not unscored,
            metadata={
                "samples": len(sample_results),
                "unscored": len(unscored),
                "first_unscored": ", ".join(unscored[:10]),
            },
        )

    @asset_check(asset="sample_results", partitions_def=partitions_def, blocking=True)
    def error_rate_within_threshold(
        context: AssetCheckExecutionContext, sample_results: list
    ) -> AssetCheckResult:
        """Errored samples stay under the `max_error_rate` of the suite version that ran.

        Taken from the materialization, not the catalog: the suite file may have changed since.
        """
        published = published_result(
            context.instance, context.partition_key, prefer_run=context.run.run_id
        )
        threshold = published.metadata("sample_results", "max_error_rate")
        errors = [r for r in sample_results if r["error"] is not None]
        rate = len(errors) / len(sample_results) if sample_results else 1.0
        first = [f"{r['task']}/{r['sample_id']}#{r['epoch']}: {r['error']}" for r in errors[:3]]
        return AssetCheckResult(
            passed=rate <= threshold,
            # The cause first: a long error message must not push it out of the UI's view.
            description=f"{len(errors)} errored; first: {first[0]}" if first else None,
            metadata={
                "errored": len(errors),
                "error_rate": rate,
                "max_error_rate": threshold,
                "first_errors": "\n".join(first) or "-",
            },
        )

    @asset_check(asset="task_scores", partitions_def=partitions_def, blocking=True)
    def every_task_scored(task_scores: dict) -> AssetCheckResult:
        """Each task has a score: one with no scored samples (or without the suite's headline
        metric) is an error, never a number, and fails the partition's results."""
        missing = [t for t in task_scores["tasks"] if t["mean"] is None]
        return AssetCheckResult(
            passed=not missing,
            description="; ".join(f"{t['task']}: {t.get('problem') or 'no score'}" for t in missing)
            or None,
            metadata={"unscored_tasks": ", ".join(t["task"] for t in missing) or "-"},
        )

    @asset_check(asset="task_scores", partitions_def=partitions_def)
    def below_capability_thresholds(
        context: AssetCheckExecutionContext, task_scores: dict, artifacts: ArtifactStore
    ) -> AssetCheckResult:
        """No task reaches the suite's `capability_threshold` for it: a crossing means the
        model may have the dangerous capability, and is recorded as an incident."""
        partition = str(context.partition_key)
        try:
            crossed = _record_crossings(context.instance, artifacts, partition, task_scores)
        except SpecError as exc:  # fail closed: a threshold that cannot be read is not passed
            return AssetCheckResult(
                passed=False,
                severity=AssetCheckSeverity.WARN,
                description=str(exc),
                metadata={"run_id": task_scores["run_id"]},
            )
        return AssetCheckResult(
            passed=not crossed,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "run_id": task_scores["run_id"],
                "crossed": ", ".join(
                    f"{c['task']} ({c['value']:.3f} >= {c['threshold']})" for c in crossed
                )
                or "-",
            },
        )

    return [
        every_sample_scored,
        error_rate_within_threshold,
        every_task_scored,
        below_capability_thresholds,
    ]
