"""Tables as Parquet artifacts: one code path for the local folder and S3.

Parquet parts are written through the `ArtifactStore`, so they are content-addressed and
immutable like every other artifact; an asset records the URI of its table in its
materialization metadata (`TABLE_METADATA`), and readers resolve it from the instance.
"""

from __future__ import annotations

import io

import pandas as pd
from dagster import AssetKey, DagsterInstance

from resources.artifact_store import ArtifactStore

TABLE_METADATA = "table"


class NotBuiltError(LookupError):
    """An analytics asset has never been materialized on this instance."""


def write_frame(artifacts: ArtifactStore, prefix: str, frame: pd.DataFrame) -> str:
    """Store `frame` as a Parquet artifact under `prefix`; returns its URI."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    return artifacts.store(prefix, data, ".parquet")


def read_frame(
    artifacts: ArtifactStore, uri: str, columns: list[str] | None = None
) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(artifacts.get(uri)), columns=columns)


def latest_table_uri(instance: DagsterInstance, asset: str) -> str | None:
    """The table URI the asset's latest materialization recorded, or None if never built."""
    records = instance.fetch_materializations(AssetKey(asset), limit=1).records
    if not records:
        return None
    entry = records[0].asset_materialization.metadata.get(TABLE_METADATA)
    return None if entry is None else entry.value


def latest_table(instance: DagsterInstance, artifacts: ArtifactStore, asset: str) -> pd.DataFrame:
    """The asset's latest table; raises `NotBuiltError` naming how to build it."""
    uri = latest_table_uri(instance, asset)
    if uri is None:
        raise NotBuiltError(
            f"{asset} has never been built on this instance. Build it with "
            "`evalctl history --refresh ...` / `evalctl compare --refresh ...`, by materializing "
            "the `analytics` group in the UI, or let the `analytics_automation` sensor refresh "
            "it after an evaluation while `evalctl ui` runs."
        )
    return read_frame(artifacts, uri)
