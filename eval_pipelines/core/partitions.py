"""Partitions of the result assets: model (dynamic) x suite (from the catalog)."""

from __future__ import annotations

from dagster import (
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

MODEL_DIMENSION = "model"
SUITE_DIMENSION = "suite"

# Models come and go without a code change, so their partitions are dynamic: the
# catalog sensor and `evalctl run` add them.
model_partitions = DynamicPartitionsDefinition(name="models")


def evaluation_partitions(suite_names: list[str]) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {
            MODEL_DIMENSION: model_partitions,
            SUITE_DIMENSION: StaticPartitionsDefinition(sorted(suite_names)),
        }
    )


def partition_key(model_id: str, suite_name: str) -> MultiPartitionKey:
    return MultiPartitionKey({MODEL_DIMENSION: model_id, SUITE_DIMENSION: suite_name})


def split_partition_key(key: str | MultiPartitionKey) -> tuple[str, str]:
    """(model id, suite name) of an evaluation partition key."""
    if isinstance(key, MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[MODEL_DIMENSION], dims[SUITE_DIMENSION]
    # Dagster joins dimension keys in dimension-name order: model|suite.
    model_id, sep, suite_name = key.partition("|")
    if not sep or not model_id or not suite_name:
        raise ValueError(f"{key!r} is not a 'model|suite' partition key")
    return model_id, suite_name
