"""State kept as asset observations (incidents, their reviews, quarantine), read back by
replaying them: the one reader that pages through an asset's observations."""

from collections.abc import Iterator

from dagster import AssetKey, AssetObservation, AssetRecordsFilter, DagsterInstance


def observations(
    instance: DagsterInstance, asset_key: AssetKey, partition: str | None = None
) -> Iterator[tuple[int, AssetObservation]]:
    """(storage id, observation) of every observation of `asset_key` (of one `partition`, or
    all), oldest first, page by page: state kept as observations is read by replaying them."""
    records_filter = AssetRecordsFilter(
        asset_key=asset_key, asset_partitions=[partition] if partition else None
    )
    cursor = None
    while True:
        page = instance.fetch_observations(records_filter, limit=500, cursor=cursor, ascending=True)
        for record in page.records:
            if record.asset_observation is not None:
                yield record.storage_id, record.asset_observation
        if not page.has_more:
            return
        cursor = page.cursor
