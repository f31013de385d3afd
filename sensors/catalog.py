"""Keeps the `models` dynamic partitions in step with the model catalog."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from eval_pipelines.catalog import Catalog
from eval_pipelines.core.partitions import model_partitions


def new_model_ids(catalog: Catalog, known: set[str]) -> list[str]:
    return sorted(set(catalog.models) - known)


@sensor(minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING)
def model_catalog_sensor(context: SensorEvaluationContext):
    """Adds a model partition for every model in the catalog; reports files that fail."""
    catalog = Catalog.default()
    known = set(context.instance.get_dynamic_partitions(model_partitions.name))
    added = new_model_ids(catalog, known)
    for error in catalog.problems():
        context.log.warning(f"catalog file skipped: {error}")
    if not added:
        return SkipReason(f"no new models ({len(known)} known)")
    context.log.info(f"adding model partitions: {', '.join(added)}")
    return SensorResult(dynamic_partitions_requests=[model_partitions.build_add_request(added)])
