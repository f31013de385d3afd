"""The benchmark programme in Dagster: a schedule per programme file, and the sensor that
evaluates models on arrival and re-evaluates them on a new suite version."""

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    schedule,
    sensor,
)

from eval_pipelines.catalog import Catalog
from eval_pipelines.catalog.programme import ProgrammeSpec
from eval_pipelines.jobs import EvaluationJob
from sensors.programme_requests import arrival_requests, scheduled_requests


def build_programme_schedule(programme: ProgrammeSpec, job: EvaluationJob) -> ScheduleDefinition:
    """The programme's schedule, stopped until someone starts it (UI or `evalctl schedules`).

    Models are read from the catalog at each tick (they come and go without a code change);
    suites, cron and run config are the programme's as loaded.
    """

    @schedule(
        name=programme.name,
        cron_schedule=programme.cron,
        execution_timezone=programme.timezone,
        job=job,
        default_status=DefaultScheduleStatus.STOPPED,
        description=programme.description or f"Benchmark programme {programme.name}.",
        tags={"eval/programme": programme.name},
    )
    def _programme(context: ScheduleEvaluationContext):
        requests = scheduled_requests(
            programme,
            Catalog.default().models,
            context.instance,
            context.scheduled_execution_time,
            context.log,
        )
        return requests or SkipReason(f"{programme.name}: nothing to run at this tick")

    return _programme


def build_programme_schedules(catalog: Catalog, job: EvaluationJob) -> list[ScheduleDefinition]:
    return [build_programme_schedule(p, job) for p in catalog.programmes.values()]


def build_model_arrival_sensor(job: EvaluationJob, suite_names: set[str]) -> SensorDefinition:
    """Requests `on_new_model` suites for new models and `reevaluate_on_new_version` suites
    for models with results on an older version; `suite_names` are the job's partitions."""

    @sensor(
        name="model_arrival_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def _arrivals(context: SensorEvaluationContext):
        catalog = Catalog.default()
        suites = {n: s for n, s in catalog.suites.items() if n in suite_names}
        requests = arrival_requests(suites, catalog.models, context.instance, context.log)
        return requests or SkipReason("no model is due an arrival or new-version evaluation")

    return _arrivals
