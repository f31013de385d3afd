"""Looking up result materializations in the Dagster instance."""

from dagster import AssetKey, AssetMaterialization, AssetRecordsFilter, DagsterInstance


def materialization(
    instance: DagsterInstance, asset: str, partition: str, run_id: str | None = None
) -> AssetMaterialization:
    """The latest materialization of `asset` for `partition` (by `run_id` if given)."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=20
    ).records
    matching = [r for r in records if run_id is None or r.run_id == run_id]
    if not matching:
        raise LookupError(f"no materialization of {asset} for {partition} (run {run_id})")
    return matching[0].asset_materialization
