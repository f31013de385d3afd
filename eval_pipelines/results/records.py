"""The published result of an evaluation partition, resolved from the Dagster instance.

A partition's result is three assets written by one publish step. Their materializations
are three event-log writes, so a crash between them could record some and not others;
every reader therefore takes the latest run that recorded all three, and never mixes runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from dagster import (
    AssetMaterialization,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
)

from eval_pipelines.core.names import QUARANTINED_TAG, RESULT_ASSETS, TASK_SCORES_ASSET
from resources.artifact_store import ArtifactStore


@dataclass(frozen=True)
class PublishedResult:
    """One run's complete set of result materializations for one partition."""

    partition: str
    run_id: str
    materializations: dict[str, AssetMaterialization]

    def metadata(self, asset: str, name: str):
        return self.materializations[asset].metadata[name].value

    def value(self, asset: str, artifacts: ArtifactStore):
        """The asset's value, read from the immutable snapshot the run wrote."""
        return json.loads(artifacts.get(self.metadata(asset, "snapshot")))


def run_result(instance: DagsterInstance, partition: str, run_id: str) -> PublishedResult | None:
    """`run_id`'s result for `partition`, or None unless it recorded all three assets."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records
    found = {
        m.asset_key.to_user_string(): m
        for m in (r.asset_materialization for r in records)
        if m is not None and m.partition == partition
    }
    if not all(asset in found for asset in RESULT_ASSETS):
        return None
    return PublishedResult(partition, run_id, {a: found[a] for a in RESULT_ASSETS})


def published_result(
    instance: DagsterInstance, partition: str, prefer_run: str | None = None
) -> PublishedResult:
    """The partition's result: `prefer_run`'s if complete, else the latest complete run's.

    Runs under quarantine (tag `eval/quarantined`, set by the quarantine job) are skipped.
    """
    if prefer_run and (result := run_result(instance, partition, prefer_run)):
        return result
    result = next(published_results(instance, partition), None)
    if result is None:
        raise LookupError(
            f"no published result for {partition}: no run recorded all of "
            f"{', '.join(RESULT_ASSETS)}"
        )
    return result


def published_results(instance: DagsterInstance, partition: str) -> Iterator[PublishedResult]:
    """Every result of the partition (runs that recorded all three), newest first, quarantined
    runs skipped. Lazy: the leaderboard stops at the first result of the kind it shows."""
    records_filter = AssetRecordsFilter(asset_key=TASK_SCORES_ASSET, asset_partitions=[partition])
    cursor = None
    while True:
        page = instance.fetch_materializations(records_filter, limit=20, cursor=cursor)
        for record in page.records:
            if _quarantined(instance, record.run_id):
                continue
            if result := run_result(instance, partition, record.run_id):
                yield result
        if not page.has_more:
            return
        cursor = page.cursor


def _quarantined(instance: DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and QUARANTINED_TAG in run.tags


def published_partitions(instance: DagsterInstance) -> list[str]:
    """Every partition ever published, including those whose suite or model left the catalog."""
    return sorted(instance.get_materialized_partitions(TASK_SCORES_ASSET))
