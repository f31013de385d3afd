"""The code location: assets, checks, jobs, sensors and the deployment's resources."""

from __future__ import annotations

import logging
import warnings

from dagster import (
    AssetsDefinition,
    BetaWarning,
    Definitions,
    MultiPartitionsDefinition,
    PreviewWarning,
)

from assets.analytics import build_analytics_assets
from assets.checks import build_result_checks
from assets.evaluation import build_evaluation_assets
from assets.incidents import build_incidents_asset, build_safety_state_assets
from assets.leaderboard import build_leaderboard
from eval_pipelines.catalog import Catalog
from eval_pipelines.core.names import (
    EVALUATION_JOB,
    LEADERBOARD_JOB,
    RESULTS_IO_MANAGER,
)
from eval_pipelines.core.partitions import evaluation_partitions
from eval_pipelines.execution.executors import executor_from_env
from eval_pipelines.jobs import (
    EvaluationJob,
    analytics_job,
    build_evaluation_job,
    leaderboard_job,
    record_incidents_job,
)
from eval_pipelines.results.io_manager import PublishedResultIOManager
from eval_pipelines.safety.jobs import quarantine_job, safety_alert_job
from resources.deployments import resources_for
from sensors.analytics import analytics_automation_sensor
from sensors.catalog import model_catalog_sensor
from sensors.programme import build_model_arrival_sensor, build_programme_schedules
from sensors.safety import build_evaluation_sensors, safety_incident_sensor

logger = logging.getLogger(__name__)

# We knowingly use partitioned asset checks (preview) and Output(data_version=...) (beta).
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=BetaWarning)


def _evaluation(catalog: Catalog, evaluation: AssetsDefinition, job: EvaluationJob) -> Definitions:
    """The evaluation results, their checks and job, and what launches it (programme
    schedules, model arrivals, new catalog models)."""
    partitions_def = evaluation.partitions_def
    return Definitions(
        assets=[evaluation],
        asset_checks=build_result_checks(partitions_def),
        jobs=[job],
        sensors=[model_catalog_sensor, build_model_arrival_sensor(job, set(catalog.suites))],
        schedules=build_programme_schedules(catalog, job),
    )


def _safety(
    partitions_def: MultiPartitionsDefinition, evaluation_job: EvaluationJob
) -> Definitions:
    """Incidents, reviews and quarantine; the jobs and sensors that answer them."""
    return Definitions(
        assets=[build_incidents_asset(partitions_def), *build_safety_state_assets(partitions_def)],
        jobs=[record_incidents_job, safety_alert_job, quarantine_job],
        sensors=[safety_incident_sensor, *build_evaluation_sensors(evaluation_job)],
    )


def _analytics(catalog: Catalog) -> Definitions:
    """The leaderboard and the analytics over every run, kept up to date as results land."""
    return Definitions(
        assets=[
            build_leaderboard({name: s.version for name, s in catalog.suites.items()}),
            *build_analytics_assets(),
        ],
        jobs=[leaderboard_job, analytics_job],
        sensors=[analytics_automation_sensor],
    )


def build_definitions(catalog: Catalog | None = None, resources: dict | None = None) -> Definitions:
    """The code location; `resources` replaces the deployment's resources by key."""
    catalog = catalog or Catalog.default()
    # A broken suite file is reported, not fatal: the UI and daemon must keep running.
    for error in catalog.problems():
        logger.warning("catalog file skipped: %s", error)
    partitions_def = evaluation_partitions(list(catalog.suites))
    evaluation = build_evaluation_assets(partitions_def)
    evaluation_job = build_evaluation_job(evaluation)
    resources = {**resources_for(), **(resources or {})}
    # Results are read back through whichever artifact store is in use.
    results_io = PublishedResultIOManager(artifacts=resources["artifacts"])
    return Definitions.merge(
        _evaluation(catalog, evaluation, evaluation_job),
        _safety(partitions_def, evaluation_job),
        _analytics(catalog),
        Definitions(
            resources={RESULTS_IO_MANAGER: results_io, **resources},
            executor=executor_from_env(),
        ),
    )


defs = build_definitions()


def evaluation_job():
    """Reconstructable handle on the evaluation job (for out-of-process executors)."""
    return defs.resolve_job_def(EVALUATION_JOB)


def leaderboard_job_def():
    return defs.resolve_job_def(LEADERBOARD_JOB)
